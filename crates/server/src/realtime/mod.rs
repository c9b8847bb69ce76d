//! Supabase Realtime, wire-compatible: `/realtime/v1/websocket` (and the
//! self-hosted `/socket/websocket`) speaking Phoenix channels, vsn 1.0.0 and
//! 2.0.0, with broadcast (JSON and binary), presence, private topics and
//! Supabase's limits and error strings. The codec is
//! [`voicemeet_proto::phoenix`]; this module is the socket and channel logic.
//!
//! Start at [`connection`] for what happens to each frame, and [`hub`] for
//! topic fan-out.
//!
//! Private topics are the server's stand-in for Supabase's RLS policies on
//! `realtime.messages`: a user may join `inbox:<their id>`, and any topic
//! granted to them with [`RealtimeState::grant`] (matchmaking grants each
//! match's room to its two users). Everything else private is refused.

pub mod connection;
pub mod hub;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use voicemeet_proto::phoenix::{Message, Vsn};

use crate::clock::unix_now;
use crate::jwt::JwtError;
use crate::state::SharedState;
pub use hub::{Hub, TopicKey, inbox_topic};

/// Phoenix closes a socket after this long without any inbound frame; clients
/// heartbeat every 25 s.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Frames queued for one connection before it counts as not reading and is
/// dropped. Generous for bursts (a presence sync, a trickle of candidates),
/// small enough that a stuck client costs little memory.
pub const OUTBOX_CAPACITY: usize = 256;
/// Initial per-socket read buffer; see [`upgrade`] for why it is small.
pub const WS_READ_BUFFER_BYTES: usize = 4096;
/// Supabase's `max_channels_per_client`.
pub const MAX_CHANNELS_PER_CLIENT: usize = 100;
/// Supabase's per-client presence window: 5 calls per 30 s.
pub const PRESENCE_CALLS_PER_WINDOW: usize = 5;
/// See [`PRESENCE_CALLS_PER_WINDOW`].
pub const PRESENCE_WINDOW: Duration = Duration::from_secs(30);
/// How often joined channels re-check their token's expiry, like Realtime's
/// periodic re-verification (it uses `min(5 min, exp - now)`).
pub const TOKEN_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Limits of the Realtime service; defaults follow Supabase's hosted Free
/// plan where it has one.
#[derive(Debug, Clone)]
pub struct RealtimeLimits {
    /// Largest broadcast or presence payload, in bytes (hosted Free: 256 KB).
    pub max_payload_bytes: usize,
    /// Largest websocket frame accepted at all (Realtime: 5 MB).
    pub max_frame_bytes: usize,
    /// Messages one connection may push per second before the channel it
    /// pushed on is shut down ("Too many messages per second").
    pub max_messages_per_second: u32,
    /// Concurrent websocket connections ("Too many connected users").
    pub max_connections: usize,
    /// A socket with no inbound frame for this long is closed
    /// ([`IDLE_TIMEOUT`], Phoenix's default).
    pub idle_timeout: Duration,
}

impl Default for RealtimeLimits {
    fn default() -> Self {
        Self {
            max_payload_bytes: 256 * 1000,
            max_frame_bytes: voicemeet_proto::phoenix::MAX_FRAME_BYTES,
            max_messages_per_second: 100,
            max_connections: 20_000,
            idle_timeout: IDLE_TIMEOUT,
        }
    }
}

/// Realtime's shared state: the topic hub and the private-topic grants.
#[derive(Debug)]
pub struct RealtimeState {
    /// Limits applied to every connection.
    pub limits: RealtimeLimits,
    hub: Mutex<Hub>,
    grants: RwLock<HashMap<String, HashSet<String>>>,
    next_conn: AtomicU64,
}

impl RealtimeState {
    /// An empty service with these limits.
    pub fn new(limits: RealtimeLimits) -> Self {
        Self {
            limits,
            hub: Mutex::new(Hub::default()),
            grants: RwLock::new(HashMap::new()),
            next_conn: AtomicU64::new(1),
        }
    }

    /// The hub. A panic while holding the lock is a bug elsewhere; the hub's
    /// maps stay consistent per operation, so keep serving.
    pub fn hub(&self) -> MutexGuard<'_, Hub> {
        self.hub.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn next_conn_id(&self) -> hub::ConnId {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    /// Lets `users` join the private topic `realtime:<name>`.
    pub fn grant(&self, name: &str, users: &[&str]) {
        let mut grants = self.grants.write().unwrap_or_else(PoisonError::into_inner);
        let entry = grants.entry(format!("realtime:{name}")).or_default();
        entry.extend(users.iter().map(|u| (*u).to_owned()));
    }

    /// Withdraws every grant on `realtime:<name>`. Channels already joined
    /// stay joined, as with Supabase policies evaluated at join time.
    pub fn revoke(&self, name: &str) {
        let mut grants = self.grants.write().unwrap_or_else(PoisonError::into_inner);
        grants.remove(&format!("realtime:{name}"));
    }

    /// Whether `user` may join the private `topic`.
    pub fn may_join_private(&self, topic: &str, user: Option<&str>) -> bool {
        let Some(user) = user else { return false };
        if topic == inbox_topic(user) {
            return true;
        }
        let grants = self.grants.read().unwrap_or_else(PoisonError::into_inner);
        grants.get(topic).is_some_and(|users| users.contains(user))
    }

    /// Pushes a server-originated message to a private topic's subscribers.
    pub fn publish_private(&self, msg: &Message) {
        let key = TopicKey {
            topic: msg.topic.clone(),
            private: true,
        };
        self.hub().publish(&key, msg);
    }
}

/// The Realtime routes. Mounted outside the gateway's `apikey` check:
/// Realtime checks the key itself and answers with its own error bodies.
pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/realtime/v1/websocket", get(upgrade))
        .route("/socket/websocket", get(upgrade))
}

fn connect_error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

async fn upgrade(
    State(state): State<SharedState>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let Ok(vsn) = Vsn::from_query(params.get("vsn").map(String::as_str)) else {
        return connect_error(StatusCode::BAD_REQUEST, "Unsupported serializer version");
    };
    let token = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .or(params.get("apikey").map(String::as_str))
        .filter(|t| !t.is_empty())
        .map(str::to_owned);
    let Some(token) = token else {
        return connect_error(StatusCode::UNAUTHORIZED, "API key is missing");
    };
    let claims = match state.jwt.verify(&token, unix_now()) {
        Ok(claims) => claims,
        Err(err) => return connect_error(StatusCode::UNAUTHORIZED, &err.to_string()),
    };
    let realtime = &state.realtime;
    if realtime.hub().connection_count() >= realtime.limits.max_connections {
        return connect_error(StatusCode::TOO_MANY_REQUESTS, "Too many connected users");
    }
    let id = realtime.next_conn_id();
    let max_frame = realtime.limits.max_frame_bytes;
    // tungstenite's default 128 KiB read buffer is zero-filled before every
    // read, so all of it stays resident: 1.4 GB for 10,000 idle sockets.
    // Realtime frames are small; 4 KiB grows on demand for the rare big one.
    ws.read_buffer_size(WS_READ_BUFFER_BYTES)
        .max_message_size(max_frame)
        .max_frame_size(max_frame)
        .on_upgrade(move |socket| connection::run(state, id, vsn, token, claims, socket))
}

/// Realtime's join-time reason for a refused token: `Code: message`.
pub fn join_reason(err: JwtError, now: u64) -> String {
    match err {
        JwtError::Expired { expired_at } => {
            format!(
                "InvalidJWTToken: Token has expired {} seconds ago",
                now.saturating_sub(expired_at)
            )
        }
        JwtError::Malformed => "MalformedJWT: The token provided is not a valid JWT".to_owned(),
        JwtError::BadSignature | JwtError::UnsupportedAlgorithm => {
            "JwtSignatureError: Failed to validate JWT signature".to_owned()
        }
        JwtError::MissingClaims => {
            "InvalidJWTToken: Fields `role` and `exp` are required in JWT".to_owned()
        }
    }
}
