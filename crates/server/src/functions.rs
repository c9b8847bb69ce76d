//! Edge functions under `/functions/v1`. One so far:
//!
//! `POST /functions/v1/turn-credentials`, with `Authorization: Bearer <user
//! access token>` and an optional JSON body `{"ttl": <seconds>}`, answers
//! **201 Created** (as Cloudflare's `generate-ice-servers` does) with
//!
//! ```json
//! {"iceServers":[{"urls":["turn:127.0.0.1:3478?transport=udp"],
//!                 "username":"<expiry>:<user id>","credential":"<base64 HMAC-SHA1>"}]}
//! ```
//!
//! so the app parses the hosted (Cloudflare) and local answers with one code
//! path. Only `turn:` URLs are returned: calls are relay-only, so STUN is
//! never needed. The user's session must be live; the credential's lifetime
//! is the configured TTL, or `ttl` when that is shorter (a longer one is
//! capped, never extended).
//!
//! Errors follow the Supabase functions gateway: 401
//! `{"code":401,"message":"Missing authorization header"}` or
//! `{"code":401,"message":"Invalid JWT"}`; a bad body is 400 in the same
//! shape.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use voicemeet_proto::Redacted;

use crate::clock::unix_now;
use crate::config::MAX_TURN_CREDENTIAL_TTL;
use crate::http::bearer_token;
use crate::jwt::{JwtError, ROLE_AUTHENTICATED};
use crate::state::SharedState;
use crate::turn_rest::{self, TurnCredential};

/// Path of the TURN credentials function.
pub const TURN_CREDENTIALS_PATH: &str = "/functions/v1/turn-credentials";

/// What the TURN credentials function needs: the shared secret, the URLs to
/// hand out and the default lifetime.
#[derive(Debug)]
pub struct TurnState {
    secret: Redacted<String>,
    urls: Vec<String>,
    credential_ttl: Duration,
}

impl TurnState {
    /// Credentials for `urls`, signed with `secret`, valid for
    /// `credential_ttl` unless a request asks for less.
    pub fn new(secret: String, urls: Vec<String>, credential_ttl: Duration) -> Self {
        Self {
            secret: Redacted::new(secret),
            urls,
            credential_ttl,
        }
    }

    /// The TURN URLs handed to clients.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// Mints a credential for `user_id` expiring at `expires_at`.
    pub fn mint(&self, user_id: &str, expires_at: u64) -> TurnCredential {
        turn_rest::mint(self.secret.expose(), user_id, expires_at)
    }
}

/// Why the function refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FunctionError {
    /// No `Authorization: Bearer` header.
    #[error("Missing authorization header")]
    MissingAuthorization,
    /// The bearer token does not verify (the cause is kept for logs; clients
    /// get the gateway's generic message). Retryable after refreshing the
    /// session when the cause is expiry.
    #[error("Invalid JWT")]
    InvalidJwt(JwtError),
    /// A valid token that is not a signed-in user's (e.g. the anon key).
    #[error("A signed-in user's access token is required")]
    NotAUser,
    /// The token's session was revoked (refresh token reuse) or is unknown.
    #[error("Invalid JWT")]
    SessionRevoked,
    /// The body is neither empty nor `{"ttl": <1..=172800>}`.
    #[error("Body must be empty or {{\"ttl\": <seconds, 1 to {max}>}}", max = MAX_TURN_CREDENTIAL_TTL.as_secs())]
    BadRequest,
}

impl IntoResponse for FunctionError {
    fn into_response(self) -> Response {
        let status = match self {
            Self::BadRequest => StatusCode::BAD_REQUEST,
            Self::MissingAuthorization
            | Self::InvalidJwt(_)
            | Self::NotAUser
            | Self::SessionRevoked => StatusCode::UNAUTHORIZED,
        };
        let body = json!({ "code": status.as_u16(), "message": self.to_string() });
        (status, Json(body)).into_response()
    }
}

/// The functions routes, to be merged into [`crate::http::router`].
pub fn routes() -> Router<SharedState> {
    Router::new().route(TURN_CREDENTIALS_PATH, post(turn_credentials))
}

#[derive(Debug, Default, Deserialize)]
struct CredentialsRequest {
    ttl: Option<u64>,
}

/// Cloudflare's `generate-ice-servers` response.
#[derive(Debug, Serialize)]
struct IceServersResponse {
    #[serde(rename = "iceServers")]
    ice_servers: Vec<IceServer>,
}

#[derive(Debug, Serialize)]
struct IceServer {
    urls: Vec<String>,
    username: String,
    credential: String,
}

async fn turn_credentials(
    State(state): State<SharedState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<IceServersResponse>), FunctionError> {
    let token = bearer_token(&headers).ok_or(FunctionError::MissingAuthorization)?;
    let now = unix_now();
    let claims = state.jwt.verify(token, now).map_err(|err| {
        tracing::debug!(reason = %err, "turn-credentials: bearer token refused");
        FunctionError::InvalidJwt(err)
    })?;
    let user_id = match claims.sub {
        Some(sub) if claims.role == ROLE_AUTHENTICATED && !sub.is_empty() => sub,
        _ => return Err(FunctionError::NotAUser),
    };
    if let Some(session_id) = &claims.session_id
        && !state.auth.is_session_active(session_id)
    {
        return Err(FunctionError::SessionRevoked);
    }

    let request: CredentialsRequest = if body.iter().all(u8::is_ascii_whitespace) {
        CredentialsRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|_| FunctionError::BadRequest)?
    };
    let ttl = match request.ttl {
        None => state.turn.credential_ttl,
        Some(secs) if (1..=MAX_TURN_CREDENTIAL_TTL.as_secs()).contains(&secs) => {
            Duration::from_secs(secs).min(state.turn.credential_ttl)
        }
        Some(_) => return Err(FunctionError::BadRequest),
    };

    let credential = state.turn.mint(&user_id, now + ttl.as_secs());
    tracing::debug!(ttl_secs = ttl.as_secs(), "TURN credential minted");
    Ok((
        StatusCode::CREATED,
        Json(IceServersResponse {
            ice_servers: vec![IceServer {
                urls: state.turn.urls.clone(),
                username: credential.username,
                credential: credential.credential,
            }],
        }),
    ))
}
