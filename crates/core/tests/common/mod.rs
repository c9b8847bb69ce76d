//! Shared helpers for the integration tests: the real local backend started
//! in-process on ephemeral loopback ports, clients for it, and bounded waits.
// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Map, Value};
use voicemeet_core::backend::{BackendClient, BackendConfig};
use voicemeet_core::proto::Redacted;
use voicemeet_core::proto::phoenix::{BroadcastBody, Vsn};
use voicemeet_core::realtime::{Channel, ChannelEvent, RealtimeConfig};
use voicemeet_server::jwt::{Claims, ROLE_AUTHENTICATED};
use voicemeet_server::{Config, RunningServer, Server};

/// A known JWT secret, so a restarted server accepts the old anon key and
/// tests can mint tokens.
pub const JWT_SECRET: &str = "core-test-jwt-secret-core-test-jwt-secret-0123";

/// How long any single expected event may take. Loopback answers in
/// milliseconds; this only turns a hang into a failure.
pub const RECV_TIMEOUT: Duration = Duration::from_secs(10);

/// How long to wait for an event that must *not* come.
pub const QUIET_PERIOD: Duration = Duration::from_millis(300);

/// Ephemeral ports, a known secret, no sign-up limit.
pub fn test_config() -> Config {
    let mut config = Config::ephemeral();
    config.jwt_secret = Some(Redacted::new(JWT_SECRET.to_owned()));
    config.signup_rate_limit = None;
    config
}

pub async fn start(config: Config) -> RunningServer {
    Server::start(config).await.expect("server starts")
}

/// `test_config` bound to a given address (to restart on the same port).
pub fn config_on(addr: SocketAddr) -> Config {
    let mut config = test_config();
    config.http_addr = addr;
    config
}

pub fn backend(server: &RunningServer) -> BackendClient {
    BackendClient::new(backend_config(server)).expect("valid backend config")
}

/// A `Client` of `server` with `audio` as its sound card.
pub fn client(
    server: &RunningServer,
    audio: std::sync::Arc<dyn voicemeet_core::AudioIo>,
) -> (
    voicemeet_core::Client,
    tokio::sync::mpsc::Receiver<voicemeet_core::ClientEvent>,
) {
    voicemeet_core::Client::start(voicemeet_core::ClientConfig::new(
        backend_config(server),
        audio,
    ))
    .expect("client starts")
}

pub fn backend_config(server: &RunningServer) -> BackendConfig {
    BackendConfig::new(server.url.clone(), server.anon_key.clone())
}

pub fn realtime_config(server: &RunningServer, vsn: Vsn) -> RealtimeConfig {
    let mut config = RealtimeConfig::new(server.url.clone(), server.anon_key.clone());
    config.vsn = vsn;
    config
}

/// A user access token signed by the server, expiring `ttl_secs` from now.
pub fn mint_token(server: &RunningServer, sub: &str, ttl_secs: u64) -> String {
    let now = voicemeet_server::clock::unix_now();
    server.state.jwt.sign(&Claims {
        sub: Some(sub.to_owned()),
        role: ROLE_AUTHENTICATED.to_owned(),
        exp: now + ttl_secs,
        iat: Some(now),
        iss: None,
        aud: Some("authenticated".to_owned()),
        session_id: None,
        is_anonymous: Some(true),
        extra: Map::new(),
    })
}

/// The channel's next event, failing the test after [`RECV_TIMEOUT`].
pub async fn next_event(channel: &mut Channel) -> ChannelEvent {
    tokio::time::timeout(RECV_TIMEOUT, channel.recv())
        .await
        .expect("an event within the timeout")
        .expect("the channel is still open")
}

/// The next event, which must be a JSON broadcast: `(event, payload)`.
pub async fn next_broadcast(channel: &mut Channel) -> (String, Value) {
    match next_event(channel).await {
        ChannelEvent::Broadcast {
            event,
            payload: BroadcastBody::Json(payload),
        } => (event, payload),
        other => panic!("expected a JSON broadcast, got {other:?}"),
    }
}

/// Asserts that no event arrives for [`QUIET_PERIOD`].
pub async fn assert_quiet(channel: &mut Channel) {
    if let Ok(event) = tokio::time::timeout(QUIET_PERIOD, channel.recv()).await {
        panic!("expected no event, got {event:?}");
    }
}
