//! Matchmaking over PostgREST-shaped RPC: `POST /rest/v1/rpc/<name>` with the
//! user's JWT as `Authorization: Bearer`, JSON in and out, PostgREST's error
//! body (`{code, message, details, hint}`). The production backend mirrors
//! these functions in SQL under the same names and shapes.
//!
//! | RPC | body | answer |
//! |---|---|---|
//! | `join_queue` | `{}` | `{"status":"waiting"}` or `{"status":"matched", match_id, topic, role}` |
//! | `leave_queue` | `{}` | `{"status":"idle","was_waiting":bool}` |
//! | `end_match` | `{"match_id":..}` | `{"status":"ended"}` |
//! | `report_stranger` | `{"match_id":..}` | `{"status":"reported"}` |
//!
//! A user must be listening on their private inbox topic (`inbox:<user id>`)
//! before `join_queue`: that is how they learn of a match without polling,
//! and when the last inbox listener goes away (the app closed or lost its
//! connection) the user leaves the queue and any match at once. The
//! matchmaker itself is the pure [`voicemeet_proto::matchmaking::Matchmaker`];
//! this module holds it in one lock, so every operation is atomic.
//!
//! Inbox messages are broadcasts: `matched` `{match_id, topic, role}`,
//! `match_ended` `{match_id, reason}`, `search_expired` `{waited_ms}`.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use voicemeet_proto::matchmaking::{
    EndReason, Event, JoinStatus, Match, MatchId, Matchmaker, Role, UserId,
};
use voicemeet_proto::phoenix::{Broadcast, Message, Payload};

use crate::clock::unix_now;
use crate::http::bearer_token;
use crate::jwt::ROLE_AUTHENTICATED;
use crate::realtime::inbox_topic;
use crate::state::SharedState;

/// Longest a user waits in the queue before the search is given up and they
/// are told so (`search_expired`); the app can search again.
pub const MAX_WAIT: Duration = Duration::from_secs(10 * 60);
/// How often the expiry sweep runs; expiry is coarse by nature.
pub const EXPIRY_SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// The queue and its clock.
#[derive(Debug)]
pub struct MatchmakingState {
    queue: Mutex<Matchmaker>,
    epoch: Instant,
}

impl Default for MatchmakingState {
    fn default() -> Self {
        Self::new()
    }
}

impl MatchmakingState {
    /// An empty queue.
    pub fn new() -> Self {
        let max_wait_ms = u64::try_from(MAX_WAIT.as_millis()).unwrap_or(u64::MAX);
        Self {
            queue: Mutex::new(Matchmaker::new(max_wait_ms)),
            epoch: Instant::now(),
        }
    }

    /// The matchmaker. Its operations keep it consistent step by step, so a
    /// panic elsewhere while holding the lock does not invalidate it.
    pub fn queue(&self) -> MutexGuard<'_, Matchmaker> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// A room topic's name (without `realtime:`).
pub fn room_name(id: MatchId) -> String {
    format!("room:{id}")
}

fn role_str(role: Role) -> &'static str {
    match role {
        Role::Offerer => "offerer",
        Role::Answerer => "answerer",
    }
}

fn reason_str(reason: EndReason) -> &'static str {
    match reason {
        EndReason::Hangup => "hangup",
        EndReason::Skipped => "skipped",
        EndReason::Disconnected => "disconnected",
        // The reported user hears a plain hang-up: telling them they were
        // reported invites retaliation and teaches abusers nothing useful.
        EndReason::Reported => "hangup",
    }
}

fn match_json(m: &Match, user: &UserId) -> Value {
    json!({
        "match_id": m.id.to_string(),
        "topic": room_name(m.id),
        "role": m.role_of(user).map(role_str),
    })
}

fn notify(state: &SharedState, user: &UserId, event: &str, payload: Value) {
    let msg = Message::broadcast(
        inbox_topic(user.as_str()),
        Payload::Broadcast(Broadcast::json(event, payload)),
    );
    state.realtime.publish_private(&msg);
}

/// Tells users what the matchmaker decided: grants and announces new rooms,
/// revokes ended ones. Called with the queue lock held, so notifications go
/// out in decision order.
fn announce(state: &SharedState, events: impl IntoIterator<Item = Event>) {
    for event in events {
        match event {
            Event::Matched(m) => {
                let room = room_name(m.id);
                state
                    .realtime
                    .grant(&room, &[m.offerer.as_str(), m.answerer.as_str()]);
                for user in m.users() {
                    notify(state, user, "matched", match_json(&m, user));
                }
            }
            Event::PartnerLeft(left) => {
                state.realtime.revoke(&room_name(left.match_id));
                notify(
                    state,
                    &left.notify,
                    "match_ended",
                    json!({ "match_id": left.match_id.to_string(), "reason": reason_str(left.reason) }),
                );
            }
            Event::Expired(expired) => {
                notify(
                    state,
                    &expired.user,
                    "search_expired",
                    json!({ "waited_ms": expired.waited_ms }),
                );
            }
        }
    }
}

/// The user's last inbox listener went away: they can no longer be told of a
/// match, so they leave the queue and any match (the partner is told).
pub fn inbox_closed(state: &SharedState, user: &str) {
    let mut queue = state.matchmaking.queue();
    // Re-check under the queue lock: another connection of the same user may
    // have joined its inbox in between.
    if state.realtime.hub().has_inbox_listener(user) {
        return;
    }
    let left = queue.handle_disconnect(&UserId::new(user));
    announce(state, left.map(Event::PartnerLeft));
}

/// Gives up searches older than [`MAX_WAIT`]; run every
/// [`EXPIRY_SWEEP_INTERVAL`] until shutdown.
pub async fn expiry_task(state: SharedState) {
    let mut tick = tokio::time::interval(EXPIRY_SWEEP_INTERVAL);
    loop {
        tokio::select! {
            () = state.shutdown.cancelled() => return,
            _ = tick.tick() => {
                let now = state.matchmaking.now_ms();
                let mut queue = state.matchmaking.queue();
                let expired = queue.handle_expire(now);
                announce(&state, expired.into_iter().map(Event::Expired));
            }
        }
    }
}

/// The RPC routes.
pub fn routes() -> Router<SharedState> {
    Router::new().route("/rest/v1/rpc/{name}", post(rpc))
}

/// PostgREST's error body.
#[derive(Debug)]
struct RpcError {
    status: StatusCode,
    code: &'static str,
    message: String,
    hint: Option<String>,
}

impl RpcError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            hint: None,
        }
    }

    fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl IntoResponse for RpcError {
    fn into_response(self) -> Response {
        let body = json!({ "code": self.code, "message": self.message, "details": null, "hint": self.hint });
        (self.status, Json(body)).into_response()
    }
}

#[derive(Debug, Deserialize)]
struct MatchArgs {
    match_id: String,
}

async fn rpc(
    State(state): State<SharedState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, RpcError> {
    let user = authenticated_user(&state, &headers, &name)?;
    let args: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(&body).map_err(|_| {
            RpcError::new(StatusCode::BAD_REQUEST, "PGRST102", "Empty or invalid json")
        })?
    };
    match name.as_str() {
        "join_queue" => join_queue(&state, user),
        "leave_queue" => {
            let was_waiting = state.matchmaking.queue().handle_leave(&user);
            Ok(Json(
                json!({ "status": "idle", "was_waiting": was_waiting }),
            ))
        }
        "end_match" => {
            let id = match_id(args)?;
            let mut queue = state.matchmaking.queue();
            let left = queue.handle_end(&user, id).map_err(not_in_match)?;
            announce(&state, left.map(Event::PartnerLeft));
            Ok(Json(json!({ "status": "ended" })))
        }
        "report_stranger" => {
            let id = match_id(args)?;
            let mut queue = state.matchmaking.queue();
            let left = queue.handle_report(&user, id).map_err(not_in_match)?;
            announce(&state, left.map(Event::PartnerLeft));
            Ok(Json(json!({ "status": "reported" })))
        }
        _ => Err(RpcError::new(
            StatusCode::NOT_FOUND,
            "PGRST202",
            format!(
                "Could not find the function public.{name} without parameters in the schema cache"
            ),
        )),
    }
}

fn join_queue(state: &SharedState, user: UserId) -> Result<Json<Value>, RpcError> {
    let mut queue = state.matchmaking.queue();
    // Checked under the queue lock; `inbox_closed` takes the same lock, so a
    // user can never be queued after their last listener left.
    if !state.realtime.hub().has_inbox_listener(user.as_str()) {
        return Err(RpcError::new(
            StatusCode::BAD_REQUEST,
            "P0001",
            "not listening: join your inbox topic before joining the queue",
        )
        .with_hint(format!(
            "subscribe to the private channel inbox:{}",
            user.as_str()
        )));
    }
    let now = state.matchmaking.now_ms();
    let outcome = queue.handle_join(user.clone(), now, &mut random_match_id);
    let answer = match &outcome.status {
        JoinStatus::Matched(m) => {
            let mut answer = match_json(m, &user);
            answer["status"] = "matched".into();
            answer
        }
        JoinStatus::Queued | JoinStatus::AlreadyWaiting => json!({ "status": "waiting" }),
    };
    announce(state, outcome.into_events());
    Ok(Json(answer))
}

fn random_match_id() -> MatchId {
    MatchId::from_u128(rand::random::<u128>())
}

fn match_id(args: Value) -> Result<MatchId, RpcError> {
    let args: MatchArgs = serde_json::from_value(args).map_err(|_| {
        RpcError::new(
            StatusCode::BAD_REQUEST,
            "PGRST202",
            "match_id (text) is required",
        )
    })?;
    args.match_id
        .parse()
        .map_err(|_| RpcError::new(StatusCode::BAD_REQUEST, "22P02", "invalid match_id"))
}

fn not_in_match(_: voicemeet_proto::matchmaking::Error) -> RpcError {
    RpcError::new(
        StatusCode::BAD_REQUEST,
        "P0001",
        "not a participant of that match",
    )
}

fn authenticated_user(
    state: &SharedState,
    headers: &HeaderMap,
    name: &str,
) -> Result<UserId, RpcError> {
    let token = bearer_token(headers).ok_or_else(|| {
        RpcError::new(
            StatusCode::UNAUTHORIZED,
            "42501",
            format!("permission denied for function {name}"),
        )
    })?;
    let claims = state.jwt.verify(token, unix_now()).map_err(|err| {
        let code = if matches!(err, crate::jwt::JwtError::Expired { .. }) {
            "PGRST303"
        } else {
            "PGRST301"
        };
        RpcError::new(StatusCode::UNAUTHORIZED, code, err.to_string())
    })?;
    match claims.sub {
        Some(sub) if claims.role == ROLE_AUTHENTICATED && !sub.is_empty() => {
            if let Some(session) = &claims.session_id
                && !state.auth.is_session_active(session)
            {
                return Err(RpcError::new(
                    StatusCode::UNAUTHORIZED,
                    "PGRST301",
                    "session revoked",
                ));
            }
            Ok(UserId::new(sub))
        }
        _ => Err(RpcError::new(
            StatusCode::UNAUTHORIZED,
            "42501",
            format!("permission denied for function {name}"),
        )),
    }
}
