//! The VoiceMeet local backend (the embedded default): one binary that speaks
//! Supabase's HTTP wire protocols on loopback and embeds a TURN relay, so the
//! app has a single code path for hosted Supabase and for this server, and the
//! whole product runs on one machine offline.
//!
//! # What this crate owns
//!
//! - **Auth** ([`auth`]): GoTrue-compatible anonymous sign-up, rotating
//!   single-use refresh tokens and `GET /auth/v1/user`, with Supabase's error
//!   bodies in both API-version shapes. Sessions live in memory.
//! - **JWTs** ([`jwt`]): HS256 signing and verification, shared by every module
//!   that checks a token (auth, functions, Realtime, matchmaking).
//! - **TURN credentials** ([`functions`], [`turn_rest`]): the
//!   `turn-credentials` function answering in Cloudflare's
//!   `generate-ice-servers` shape, with TURN REST (draft-uberti) usernames and
//!   passwords that coturn accepts too.
//! - **The embedded relay** ([`relay`]): the `turn` crate's server with an
//!   [`AuthHandler`](::turn::auth::AuthHandler) for TURN REST credentials.
//! - **Realtime** ([`realtime`]): Supabase Realtime's websocket (Phoenix
//!   channels vsn 1.0.0/2.0.0, binary broadcasts, presence, private topics),
//!   with its limits and error strings.
//! - **Matchmaking** ([`matchmaking`]): the queue as PostgREST-style RPC,
//!   announcing matches on each user's private inbox topic.
//! - **The gateway** ([`http`]): the `apikey` check Supabase's API gateway does
//!   in front of every service, and the composition of module routers.
//!
//! # Where to start
//!
//! [`Server::start`] takes a [`Config`] and returns a [`RunningServer`] with
//! the bound addresses, the anon key and a shutdown handle; `main.rs` is a thin
//! CLI around it, and the integration tests start it on ephemeral ports with
//! [`Config::ephemeral`].
//!
//! # Adding a module (Realtime, matchmaking RPC, ...)
//!
//! 1. Create `src/<module>.rs` with its state type (e.g. `RealtimeState`) and
//!    `pub fn routes() -> axum::Router<SharedState>`.
//! 2. Add a field for the state to [`AppState`] and build it in
//!    [`AppState::new`].
//! 3. Merge `routes()` in [`http::router`]. The gateway's `apikey` check then
//!    applies to it, and handlers can read the verified key's claims through
//!    `Extension<ApiKeyClaims>`; user tokens are checked with
//!    [`JwtKey::verify`](jwt::JwtKey::verify). Long-lived work (websockets)
//!    watches [`AppState::shutdown`] so graceful shutdown can finish.
#![forbid(unsafe_code)]

pub mod auth;
pub mod clock;
pub mod config;
pub mod functions;
pub mod http;
pub mod jwt;
pub mod matchmaking;
pub mod realtime;
pub mod relay;
pub mod secrets;
pub mod server;
pub mod state;
pub mod turn_rest;

pub use config::{Config, ConfigError, RateLimit, TurnConfig, TurnMode};
pub use http::{ApiKeyClaims, router};
pub use server::{RunningServer, Server, ServerError};
pub use state::{AppState, SharedState};
pub use voicemeet_proto as proto;
