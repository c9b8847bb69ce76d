//! The state every handler shares: one [`AppState`] behind an `Arc`, with a
//! field per module. A new module adds its own state type as a field here and
//! builds it in [`AppState::new`].

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::auth::AuthState;
use crate::config::Config;
use crate::functions::TurnState;
use crate::jwt::JwtKey;
use crate::matchmaking::MatchmakingState;
use crate::realtime::RealtimeState;

/// What [`crate::router`]'s handlers share.
#[derive(Debug)]
pub struct AppState {
    /// Signs and verifies every JWT (anon key, access tokens).
    pub jwt: JwtKey,
    /// Base URL clients reach this server at (`http://127.0.0.1:54321`); the
    /// `iss` of access tokens is `<api_url>/auth/v1`.
    pub api_url: String,
    /// Auth sessions and limits.
    pub auth: AuthState,
    /// TURN credential minting.
    pub turn: TurnState,
    /// Realtime sockets, topics and private-topic grants.
    pub realtime: RealtimeState,
    /// The matchmaking queue.
    pub matchmaking: MatchmakingState,
    /// Cancelled when the server shuts down. Long-lived handlers (websockets)
    /// must end when it fires, or graceful shutdown waits for them.
    pub shutdown: CancellationToken,
}

/// The handler state type: `State<SharedState>`.
pub type SharedState = Arc<AppState>;

impl AppState {
    /// Builds every module's state. `jwt` and `turn` carry the resolved
    /// secrets (generated ones included); `api_url` is the bound HTTP URL.
    pub fn new(
        config: &Config,
        jwt: JwtKey,
        api_url: String,
        turn: TurnState,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            jwt,
            api_url,
            auth: AuthState::new(config.access_token_ttl, config.signup_rate_limit),
            turn,
            realtime: RealtimeState::new(config.realtime.clone()),
            matchmaking: MatchmakingState::new(),
            shutdown,
        }
    }
}
