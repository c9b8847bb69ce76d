//! GoTrue-compatible anonymous auth under `/auth/v1`:
//!
//! - `POST /auth/v1/signup` with empty `email` and `phone`: anonymous sign-in.
//! - `POST /auth/v1/token?grant_type=refresh_token` with `{"refresh_token"}`:
//!   rotate the session's refresh token and mint a new access token.
//! - `GET /auth/v1/user` with `Authorization: Bearer <access token>`.
//!
//! Request and response shapes are GoTrue's (PROTOCOLS.md §2), errors too
//! (see [`error`]). The gateway's `apikey` check runs before these handlers.

pub mod error;
pub mod rate_limit;
pub mod store;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, Uri};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use self::error::{ApiVersion, AuthError, AuthRejection};
use self::rate_limit::RateLimiter;
use self::store::{Issued, RefreshError, SessionStore, User};
use crate::clock::{rfc3339, unix_now};
use crate::config::RateLimit;
use crate::http::{ClientIp, bearer_token};
use crate::jwt::{AUDIENCE_AUTHENTICATED, Claims, ROLE_AUTHENTICATED};
use crate::state::SharedState;

/// The provider GoTrue records for anonymous users.
const ANONYMOUS_PROVIDER: &str = "anonymous";
/// Authenticator assurance level of a fresh anonymous session.
const AAL1: &str = "aal1";
/// The only grant this server supports on `/token`.
const GRANT_REFRESH_TOKEN: &str = "refresh_token";

/// The auth module's state: sessions and the sign-up limiter.
#[derive(Debug)]
pub struct AuthState {
    // A plain mutex: every critical section is a few map operations with no
    // await, and each leaves the store consistent, so a poisoned lock (a
    // panic elsewhere while holding it) still guards valid data.
    store: Mutex<SessionStore>,
    signup_limiter: Option<Mutex<RateLimiter>>,
    access_token_ttl: Duration,
}

impl AuthState {
    /// Empty state issuing access tokens valid for `access_token_ttl`.
    pub fn new(access_token_ttl: Duration, signup_rate_limit: Option<RateLimit>) -> Self {
        Self {
            store: Mutex::new(SessionStore::new()),
            signup_limiter: signup_rate_limit.map(|limit| Mutex::new(RateLimiter::new(limit))),
            access_token_ttl,
        }
    }

    /// Whether `session_id` (a `session_id` claim) names a live session.
    /// Other modules use it to refuse access tokens of revoked sessions.
    pub fn is_session_active(&self, session_id: &str) -> bool {
        Uuid::parse_str(session_id).is_ok_and(|id| self.store().is_session_active(&id))
    }

    /// Whether `user_id` (a `sub` claim) names an existing user.
    pub fn user_exists(&self, user_id: &str) -> bool {
        Uuid::parse_str(user_id).is_ok_and(|id| self.store().user(&id).is_some())
    }

    fn store(&self) -> MutexGuard<'_, SessionStore> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn allow_signup(&self, ip: IpAddr, now: u64) -> bool {
        self.signup_limiter.as_ref().is_none_or(|limiter| {
            limiter
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .try_acquire(ip, now)
        })
    }
}

/// The auth routes, to be merged into [`crate::http::router`].
pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/auth/v1/signup", post(signup))
        .route("/auth/v1/token", post(token))
        .route("/auth/v1/user", get(user))
}

/// `POST /auth/v1/signup` body. Unknown fields (`gotrue_meta_security`,
/// `code_challenge`, ...) are ignored like GoTrue does.
#[derive(Debug, Default, Deserialize)]
struct SignupBody {
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    phone: Option<String>,
    /// Becomes `user_metadata`.
    #[serde(default)]
    data: Option<Map<String, Value>>,
}

#[derive(Debug, Deserialize)]
struct RefreshBody {
    #[serde(default)]
    refresh_token: String,
}

#[derive(Debug, Deserialize)]
struct TokenQuery {
    grant_type: Option<String>,
}

/// GoTrue's `AccessTokenResponse`.
#[derive(Debug, Serialize)]
struct AccessTokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
    expires_at: u64,
    refresh_token: String,
    user: UserJson,
}

/// GoTrue's user object, for an anonymous user.
#[derive(Debug, Serialize)]
struct UserJson {
    id: Uuid,
    aud: &'static str,
    role: &'static str,
    email: &'static str,
    phone: &'static str,
    last_sign_in_at: String,
    app_metadata: Value,
    user_metadata: Map<String, Value>,
    identities: Vec<Value>,
    created_at: String,
    updated_at: String,
    is_anonymous: bool,
}

fn app_metadata() -> Value {
    json!({ "provider": ANONYMOUS_PROVIDER, "providers": [ANONYMOUS_PROVIDER] })
}

impl From<&User> for UserJson {
    fn from(user: &User) -> Self {
        Self {
            id: user.id,
            aud: AUDIENCE_AUTHENTICATED,
            role: ROLE_AUTHENTICATED,
            email: "",
            phone: "",
            last_sign_in_at: rfc3339(user.last_sign_in_at),
            app_metadata: app_metadata(),
            user_metadata: user.user_metadata.clone(),
            identities: Vec::new(),
            created_at: rfc3339(user.created_at),
            updated_at: rfc3339(user.updated_at),
            is_anonymous: true,
        }
    }
}

async fn signup(
    State(state): State<SharedState>,
    version: ApiVersion,
    ClientIp(ip): ClientIp,
    body: axum::body::Bytes,
) -> Result<Json<AccessTokenResponse>, AuthRejection> {
    let body: SignupBody = serde_json::from_slice(&body)
        .map_err(|err| AuthError::BadJson(err.to_string()).for_version(version))?;
    if body.email.as_deref().is_some_and(|e| !e.is_empty()) {
        return Err(AuthError::EmailProviderDisabled.for_version(version));
    }
    if body.phone.as_deref().is_some_and(|p| !p.is_empty()) {
        return Err(AuthError::PhoneProviderDisabled.for_version(version));
    }
    let now = unix_now();
    // Without connection info (a router driven in-process) all callers share
    // one bucket.
    let ip = ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    if !state.auth.allow_signup(ip, now) {
        tracing::info!("anonymous sign-up refused: rate limit");
        return Err(AuthError::RateLimited.for_version(version));
    }
    let issued = state
        .auth
        .store()
        .sign_up_anonymous(body.data.unwrap_or_default(), now);
    tracing::debug!("anonymous user signed up");
    Ok(Json(access_token_response(&state, issued, now)))
}

async fn token(
    State(state): State<SharedState>,
    version: ApiVersion,
    uri: Uri,
    body: axum::body::Bytes,
) -> Result<Json<AccessTokenResponse>, AuthRejection> {
    let grant_type = Query::<TokenQuery>::try_from_uri(&uri)
        .ok()
        .and_then(|Query(q)| q.grant_type);
    if grant_type.as_deref() != Some(GRANT_REFRESH_TOKEN) {
        return Err(AuthError::UnsupportedGrantType.for_version(version));
    }
    let body: RefreshBody = serde_json::from_slice(&body)
        .map_err(|err| AuthError::BadJson(err.to_string()).for_version(version))?;
    let now = unix_now();
    let result = state.auth.store().refresh(&body.refresh_token, now);
    let issued = result.map_err(|err| {
        let error = match err {
            RefreshError::NotFound => AuthError::RefreshTokenNotFound,
            RefreshError::AlreadyUsed => {
                tracing::warn!("refresh token reused: session revoked");
                AuthError::RefreshTokenAlreadyUsed
            }
        };
        error.for_version(version)
    })?;
    Ok(Json(access_token_response(&state, issued, now)))
}

async fn user(
    State(state): State<SharedState>,
    version: ApiVersion,
    headers: HeaderMap,
) -> Result<Json<UserJson>, AuthRejection> {
    let reject = |error: AuthError| error.for_version(version);
    let token = bearer_token(&headers).ok_or_else(|| reject(AuthError::NoAuthorization))?;
    let claims = state
        .jwt
        .verify(token, unix_now())
        .map_err(|err| reject(AuthError::BadJwt(err)))?;
    let user_id = claims
        .sub
        .as_deref()
        .and_then(|sub| Uuid::parse_str(sub).ok())
        .ok_or_else(|| reject(AuthError::MissingSub))?;
    let store = state.auth.store();
    let user = store
        .user(&user_id)
        .ok_or_else(|| reject(AuthError::UserNotFound))?;
    if let Some(session_id) = claims.session_id.as_deref()
        && !Uuid::parse_str(session_id).is_ok_and(|id| store.is_session_active(&id))
    {
        return Err(reject(AuthError::SessionNotFound));
    }
    Ok(Json(UserJson::from(user)))
}

/// Mints the access token for `issued` and wraps it in GoTrue's response.
fn access_token_response(state: &SharedState, issued: Issued, now: u64) -> AccessTokenResponse {
    let expires_in = state.auth.access_token_ttl.as_secs();
    let expires_at = now + expires_in;
    let user = UserJson::from(&issued.user);

    let mut extra = Map::new();
    extra.insert("email".into(), Value::from(""));
    extra.insert("phone".into(), Value::from(""));
    extra.insert("app_metadata".into(), app_metadata());
    extra.insert(
        "user_metadata".into(),
        Value::Object(issued.user.user_metadata.clone()),
    );
    extra.insert("aal".into(), Value::from(AAL1));
    extra.insert(
        "amr".into(),
        json!([{ "method": ANONYMOUS_PROVIDER, "timestamp": now }]),
    );
    let claims = Claims {
        sub: Some(issued.user.id.to_string()),
        role: ROLE_AUTHENTICATED.to_owned(),
        exp: expires_at,
        iat: Some(now),
        iss: Some(format!("{}/auth/v1", state.api_url)),
        aud: Some(AUDIENCE_AUTHENTICATED.to_owned()),
        session_id: Some(issued.session_id.to_string()),
        is_anonymous: Some(true),
        extra,
    };

    AccessTokenResponse {
        access_token: state.jwt.sign(&claims),
        token_type: "bearer",
        expires_in,
        expires_at,
        refresh_token: issued.refresh_token.into_inner(),
        user,
    }
}
