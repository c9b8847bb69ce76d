//! The HTTP client for the Supabase-shaped backend: hosted Supabase (auth,
//! an edge function for TURN credentials, SQL functions for matchmaking) or
//! the local `voicemeet-server`, which answers in the same shapes.
//!
//! One [`BackendClient`] per app. It keeps the anonymous session in a
//! [`SessionStore`] and renews it by itself: every authenticated call goes
//! through [`BackendClient::ensure_session`], and a call refused with 401 is
//! retried once after renewing the session (a refresh, or a new anonymous
//! sign-in when the refresh token is dead). TURN credentials are cached
//! until shortly before they expire.
//!
//! Every request has a named timeout; every failure is a typed
//! [`Error`].

mod matchmaking;
mod session;
mod turn;

use std::sync::Arc;
use std::time::Duration;

use crate::clock::unix_now;

use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use url::Url;
use voicemeet_proto::Redacted;
use voicemeet_proto::matchmaking::MatchId;

pub use self::matchmaking::{
    EVENT_MATCH_ENDED, EVENT_MATCHED, EVENT_SEARCH_EXPIRED, InboxEvent, LeftQueue, MatchInfo,
    QueueStatus, RoomTopic, inbox_topic,
};
pub use self::session::{MemoryStore, Session, SessionStore};
pub use self::turn::{
    IceServer, MAX_PLAUSIBLE_TURN_LIFETIME, ParsedIceServers, TurnCredentials, is_turn_udp,
    parse_ice_servers, turn_credentials_from, username_expiry,
};
use crate::error::{Error, StoreError};

/// Longest wait for a TCP (and TLS) connection to the backend. The OS
/// default is minutes; a backend that does not accept within this is down
/// as far as the user is concerned, and the caller can retry.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Sign-in and refresh: one small GoTrue request each; hosted answers in
/// well under a second, so this only bounds a hang.
pub const AUTH_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The TURN credentials function: an edge function that itself calls
/// Cloudflare, so it gets the same bound as auth (two short hops).
pub const TURN_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Matchmaking RPCs: one short SQL function each.
pub const RPC_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// An access token expiring within this is refreshed before use, so a
/// request or a Realtime join never races the token's expiry.
pub const DEFAULT_REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// TURN credential lifetime asked of the backend, and assumed when the
/// answer does not say (Cloudflare's usernames are opaque). Longer than
/// any call, so credentials never need replacing mid-call, and well under
/// Cloudflare's 48 h cap.
pub const DEFAULT_TURN_CREDENTIAL_TTL: Duration = Duration::from_secs(12 * 3600);
/// Cached TURN credentials are replaced this long before they expire (or
/// at half their lifetime, if that is sooner), so a call never starts on
/// credentials about to die.
pub const TURN_EXPIRY_MARGIN: Duration = Duration::from_secs(5 * 60);
/// Error messages from the backend are cut to this many characters: they
/// end up in logs and UI, and a misbehaving proxy can send whole pages.
const MAX_ERROR_MESSAGE_CHARS: usize = 300;
/// auth-js sends this on every GoTrue request; it selects the error body
/// `{"code","message"}`.
const API_VERSION: (&str, &str) = ("X-Supabase-Api-Version", "2024-01-01");
const SERVICE: &str = "backend";

/// Where the backend is and which project key to use.
#[derive(Debug, Clone)]
pub struct BackendConfig {
    /// The project URL (`SUPABASE_URL`), e.g. `https://<ref>.supabase.co`
    /// or `http://127.0.0.1:54321`.
    pub url: String,
    /// The project's anon (publishable) key.
    pub anon_key: Redacted<String>,
    /// See [`DEFAULT_REFRESH_MARGIN`].
    pub refresh_margin: Duration,
    /// See [`DEFAULT_TURN_CREDENTIAL_TTL`].
    pub turn_credential_ttl: Duration,
}

impl BackendConfig {
    /// A configuration with the default margins.
    pub fn new(url: impl Into<String>, anon_key: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            anon_key: Redacted::new(anon_key.into()),
            refresh_margin: DEFAULT_REFRESH_MARGIN,
            turn_credential_ttl: DEFAULT_TURN_CREDENTIAL_TTL,
        }
    }
}

/// The backend client. Cheap to clone; clones share the session and the
/// TURN cache.
#[derive(Clone)]
pub struct BackendClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base: Url,
    anon_key: Redacted<String>,
    refresh_margin: Duration,
    turn_ttl: Duration,
    store: Arc<dyn SessionStore>,
    /// Held across a whole load-refresh-save: refresh tokens are single
    /// use, and a second concurrent refresh with the same token would make
    /// GoTrue revoke the session.
    session_lock: Mutex<()>,
    /// Held across a fetch, so concurrent callers share one.
    turn_cache: Mutex<Option<CachedTurn>>,
}

#[derive(Debug, Clone)]
struct CachedTurn {
    credentials: TurnCredentials,
    /// Unix seconds after which the credentials are fetched again.
    fresh_until: u64,
}

impl std::fmt::Debug for BackendClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendClient")
            .field("base", &self.inner.base.as_str())
            .finish_non_exhaustive()
    }
}

/// GoTrue's `AccessTokenResponse`, the parts we use.
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    refresh_token: String,
    expires_in: Option<u64>,
    expires_at: Option<u64>,
    user: TokenUser,
}

#[derive(Deserialize)]
struct TokenUser {
    id: String,
}

impl BackendClient {
    /// A client keeping its session in memory only.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a URL that is not `http(s)`.
    pub fn new(config: BackendConfig) -> Result<Self, Error> {
        Self::with_store(config, Arc::new(MemoryStore::new()))
    }

    /// A client keeping its session in `store`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a URL that is not `http(s)`, or if the
    /// TLS setup fails.
    pub fn with_store(config: BackendConfig, store: Arc<dyn SessionStore>) -> Result<Self, Error> {
        let mut base = Url::parse(&config.url)
            .map_err(|e| Error::InvalidConfig(format!("backend URL: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(Error::InvalidConfig(
                "backend URL must be http or https".into(),
            ));
        }
        // `join` resolves against the last segment unless the path ends in
        // a slash; a project URL behind a path prefix must keep its prefix.
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|e| Error::InvalidConfig(format!("HTTP client: {}", error_chain(&e))))?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base,
                anon_key: config.anon_key,
                refresh_margin: config.refresh_margin,
                turn_ttl: config.turn_credential_ttl,
                store,
                session_lock: Mutex::new(()),
                turn_cache: Mutex::new(None),
            }),
        })
    }

    /// A session whose access token is good for at least the refresh
    /// margin: the stored one, refreshed if it expires soon, or a new
    /// anonymous sign-in if there is none or its refresh token was
    /// rejected. The result is saved to the store.
    ///
    /// # Errors
    /// Network and server errors of the refresh or sign-in; a failed
    /// refresh that may be temporary (timeout, 5xx) keeps the stored
    /// session, so a later call can retry it. [`Error::SessionStore`] if
    /// the store fails.
    pub async fn ensure_session(&self) -> Result<Session, Error> {
        let _guard = self.inner.session_lock.lock().await;
        match self.load_session().await? {
            Some(session) if !session.expires_within(self.inner.refresh_margin, unix_now()) => {
                Ok(session)
            }
            Some(session) => self.refresh_or_sign_in(&session).await,
            None => self.sign_in_locked().await,
        }
    }

    /// Renews the session now, whatever its expiry (e.g. after Realtime
    /// reported the token expired): a refresh, or a new sign-in when there
    /// is no session or the refresh token is rejected.
    ///
    /// # Errors
    /// As [`BackendClient::ensure_session`].
    pub async fn refresh_session(&self) -> Result<Session, Error> {
        let _guard = self.inner.session_lock.lock().await;
        match self.load_session().await? {
            Some(session) => self.refresh_or_sign_in(&session).await,
            None => self.sign_in_locked().await,
        }
    }

    /// Signs in as a new anonymous user, replacing any stored session.
    ///
    /// # Errors
    /// Network and server errors of the sign-in, e.g.
    /// [`Error::RateLimited`] (GoTrue allows 30 sign-ins per hour per IP);
    /// [`Error::SessionStore`] if the store fails.
    pub async fn sign_in_anonymously(&self) -> Result<Session, Error> {
        let _guard = self.inner.session_lock.lock().await;
        self.sign_in_locked().await
    }

    /// Forgets the stored session (locally; nothing is sent).
    ///
    /// # Errors
    /// [`Error::SessionStore`] if the store fails.
    pub async fn forget_session(&self) -> Result<(), Error> {
        let _guard = self.inner.session_lock.lock().await;
        self.on_store(|store| store.clear()).await
    }

    /// TURN credentials for the peer, filtered to what webrtc-rs can use
    /// (`turn:` over UDP; see [`parse_ice_servers`]), from the cache while
    /// they are good for more than [`TURN_EXPIRY_MARGIN`].
    ///
    /// # Errors
    /// [`Error::NoUsableTurnServer`] if the backend offers no usable
    /// server; session, network and server errors otherwise.
    pub async fn turn_credentials(&self) -> Result<TurnCredentials, Error> {
        let mut cache = self.inner.turn_cache.lock().await;
        let now = unix_now();
        if let Some(cached) = cache.as_ref()
            && now < cached.fresh_until
        {
            return Ok(cached.credentials.clone());
        }
        let body = json!({ "ttl": self.inner.turn_ttl.as_secs() });
        let answer = self
            .authed_post(
                "functions/v1/turn-credentials",
                &body,
                TURN_REQUEST_TIMEOUT,
                "TURN credentials",
            )
            .await?;
        let credentials = turn_credentials_from(&answer, now, self.inner.turn_ttl)?;
        let lifetime = credentials.expires_at.saturating_sub(now);
        let margin = TURN_EXPIRY_MARGIN.as_secs().min(lifetime / 2);
        *cache = Some(CachedTurn {
            credentials: credentials.clone(),
            fresh_until: credentials.expires_at - margin,
        });
        Ok(credentials)
    }

    /// Drops cached TURN credentials, e.g. after the relay refused them.
    pub async fn forget_turn_credentials(&self) {
        *self.inner.turn_cache.lock().await = None;
    }

    /// `join_queue`: search for a partner. The user's inbox topic
    /// ([`inbox_topic`]) must be joined first; otherwise the backend
    /// answers [`Error::Server`] with status 400 and code `P0001`.
    ///
    /// # Errors
    /// Session, network and server errors.
    pub async fn join_queue(&self) -> Result<QueueStatus, Error> {
        let answer = self.rpc("join_queue", &json!({})).await?;
        matchmaking::queue_status(&answer)
    }

    /// `leave_queue`: stop searching.
    ///
    /// # Errors
    /// Session, network and server errors.
    pub async fn leave_queue(&self) -> Result<LeftQueue, Error> {
        let answer = self.rpc("leave_queue", &json!({})).await?;
        matchmaking::left_queue(&answer)
    }

    /// `end_match`: hang up; the partner hears `match_ended`.
    ///
    /// # Errors
    /// [`Error::Server`] (400, `P0001`) if the user is not in that match;
    /// session, network and server errors.
    pub async fn end_match(&self, match_id: MatchId) -> Result<(), Error> {
        let body = json!({ "match_id": match_id.to_string() });
        let answer = self.rpc("end_match", &body).await?;
        matchmaking::expect_status(&answer, "ended", "end_match")
    }

    /// `report_stranger`: report the partner and end the match.
    ///
    /// # Errors
    /// As [`BackendClient::end_match`].
    pub async fn report_stranger(&self, match_id: MatchId) -> Result<(), Error> {
        let body = json!({ "match_id": match_id.to_string() });
        let answer = self.rpc("report_stranger", &body).await?;
        matchmaking::expect_status(&answer, "reported", "report_stranger")
    }

    async fn rpc(&self, name: &str, body: &Value) -> Result<Value, Error> {
        self.authed_post(
            &format!("rest/v1/rpc/{name}"),
            body,
            RPC_REQUEST_TIMEOUT,
            "matchmaking RPC",
        )
        .await
    }

    /// A POST as the signed-in user; on 401, renews the session once and
    /// tries again (the token may have been revoked server-side, e.g. after
    /// a backend restart).
    async fn authed_post(
        &self,
        path: &str,
        body: &Value,
        timeout: Duration,
        what: &'static str,
    ) -> Result<Value, Error> {
        let session = self.ensure_session().await?;
        match self
            .post(path, Some(&session.access_token), body, timeout, what)
            .await
        {
            Err(Error::Unauthorized { .. }) => {
                tracing::debug!(what, "access token refused; renewing the session once");
                let renewed = self.renew_refused(&session).await?;
                self.post(path, Some(&renewed.access_token), body, timeout, what)
                    .await
            }
            other => other,
        }
    }

    /// Renews a session whose access token the backend refused, unless
    /// another caller already did.
    async fn renew_refused(&self, refused: &Session) -> Result<Session, Error> {
        let _guard = self.inner.session_lock.lock().await;
        match self.load_session().await? {
            Some(current) if current.access_token != refused.access_token => Ok(current),
            Some(current) => self.refresh_or_sign_in(&current).await,
            None => self.sign_in_locked().await,
        }
    }

    /// Call with `session_lock` held.
    async fn refresh_or_sign_in(&self, session: &Session) -> Result<Session, Error> {
        let body = json!({ "refresh_token": session.refresh_token.expose() });
        match self
            .post(
                "auth/v1/token?grant_type=refresh_token",
                None,
                &body,
                AUTH_REQUEST_TIMEOUT,
                "session refresh",
            )
            .await
        {
            Ok(answer) => {
                let renewed = session_from(&answer)?;
                self.save_session(&renewed).await?;
                tracing::debug!("session refreshed");
                Ok(renewed)
            }
            Err(err) if refresh_token_rejected(&err) => {
                // Unknown, already used (which revoked the session) or
                // expired: only a new identity helps.
                tracing::info!(error = %err, "refresh token rejected; signing in anew");
                self.on_store(|store| store.clear()).await?;
                self.sign_in_locked().await
            }
            Err(err) => Err(err),
        }
    }

    /// Call with `session_lock` held.
    async fn sign_in_locked(&self) -> Result<Session, Error> {
        let answer = self
            .post(
                "auth/v1/signup",
                None,
                &json!({ "data": {} }),
                AUTH_REQUEST_TIMEOUT,
                "anonymous sign-in",
            )
            .await?;
        let session = session_from(&answer)?;
        self.save_session(&session).await?;
        tracing::debug!("signed in anonymously");
        Ok(session)
    }

    async fn load_session(&self) -> Result<Option<Session>, Error> {
        self.on_store(|store| store.load()).await
    }

    async fn save_session(&self, session: &Session) -> Result<(), Error> {
        let session = session.clone();
        self.on_store(move |store| store.save(&session)).await
    }

    /// Runs a store call on the blocking pool: keychains may block.
    async fn on_store<T: Send + 'static>(
        &self,
        call: impl FnOnce(&dyn SessionStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, Error> {
        let store = self.inner.store.clone();
        tokio::task::spawn_blocking(move || call(store.as_ref()))
            .await
            .map_err(|_| Error::SessionStore(StoreError::new("session store panicked")))?
            .map_err(Error::SessionStore)
    }

    /// One JSON POST with the project key, and the user's token as bearer
    /// when given (the anon key otherwise, as supabase-js does).
    async fn post(
        &self,
        path: &str,
        bearer: Option<&Redacted<String>>,
        body: &Value,
        timeout: Duration,
        what: &'static str,
    ) -> Result<Value, Error> {
        let url = self
            .inner
            .base
            .join(path)
            .map_err(|e| Error::InvalidConfig(format!("backend URL: {e}")))?;
        let bearer = bearer.unwrap_or(&self.inner.anon_key);
        let response = self
            .inner
            .http
            .post(url)
            .timeout(timeout)
            .header("apikey", self.inner.anon_key.expose())
            .bearer_auth(bearer.expose())
            .header(API_VERSION.0, API_VERSION.1)
            .json(body)
            .send()
            .await
            .map_err(|e| send_error(e, what, timeout))?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| send_error(e, what, timeout))?;
        if status.is_success() {
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(Value::Null);
            }
            return serde_json::from_slice(&bytes).map_err(|_| Error::Protocol {
                service: SERVICE,
                detail: format!("{what}: the answer is not JSON"),
            });
        }
        Err(status_error(status.as_u16(), &headers, &bytes))
    }
}

/// Whether a refresh failure means the refresh token itself is dead
/// (GoTrue: 400 `refresh_token_not_found`, `refresh_token_already_used`,
/// `session_expired`, or older `invalid_grant`; 401/403 from a gateway),
/// rather than the service being unavailable.
fn refresh_token_rejected(err: &Error) -> bool {
    match err {
        Error::Unauthorized { .. } => true,
        Error::Server { status, .. } => (400..500).contains(status),
        _ => false,
    }
}

fn session_from(answer: &Value) -> Result<Session, Error> {
    let token = TokenResponse::deserialize(answer).map_err(|_| Error::Protocol {
        service: SERVICE,
        detail: "auth answer is not an access token response".into(),
    })?;
    let expires_at = match (token.expires_at, token.expires_in) {
        (Some(at), _) => at,
        (None, Some(secs)) => unix_now().saturating_add(secs),
        (None, None) => {
            return Err(Error::Protocol {
                service: SERVICE,
                detail: "auth answer has neither `expires_at` nor `expires_in`".into(),
            });
        }
    };
    Ok(Session {
        access_token: Redacted::new(token.access_token),
        refresh_token: Redacted::new(token.refresh_token),
        expires_at,
        user_id: token.user.id,
    })
}

/// Maps a transport failure. The URL is left out: it says nothing the
/// caller does not know.
fn send_error(err: reqwest::Error, what: &'static str, timeout: Duration) -> Error {
    if err.is_timeout() {
        Error::TimedOut {
            what,
            after: timeout,
        }
    } else {
        Error::Unreachable {
            service: SERVICE,
            detail: error_chain(&err.without_url()),
        }
    }
}

/// Maps an error status and body. Bodies come in several shapes: GoTrue
/// `{"code":"..","message"}` or legacy `{"code":400,"error_code","msg"}`,
/// PostgREST `{"code":"P0001","message","hint"}`, the functions gateway
/// `{"code":401,"message"}`, the API gateway `{"message","hint"}`.
fn status_error(status: u16, headers: &HeaderMap, body: &[u8]) -> Error {
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let text = |key: &str| json.get(key).and_then(Value::as_str).map(str::to_owned);
    let code = headers
        .get("x-sb-error-code")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| text("error_code"))
        .or_else(|| text("code"))
        .or_else(|| text("error"));
    let message = text("message")
        .or_else(|| text("msg"))
        .or_else(|| text("error_description"))
        .or_else(|| text("error"))
        .unwrap_or_else(|| format!("HTTP {status}"));
    let message: String = message.chars().take(MAX_ERROR_MESSAGE_CHARS).collect();
    match status {
        401 | 403 => Error::Unauthorized { code, message },
        429 => Error::RateLimited {
            retry_after: headers
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok())
                .map(Duration::from_secs),
            message,
        },
        _ => Error::Server {
            status,
            code,
            message,
        },
    }
}

/// An error and its sources, `: `-separated (reqwest's own message alone
/// is just "error sending request").
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    #[test]
    fn error_bodies_of_every_shape() {
        let mut headers = HeaderMap::new();
        let gotrue = br#"{"code":"refresh_token_already_used","message":"Invalid Refresh Token: Already Used"}"#;
        let err = status_error(400, &headers, gotrue);
        assert!(
            matches!(&err, Error::Server { status: 400, code: Some(c), .. } if c == "refresh_token_already_used"),
            "{err:?}"
        );
        assert!(refresh_token_rejected(&err));

        let legacy =
            br#"{"code":400,"error_code":"refresh_token_not_found","msg":"Invalid Refresh Token"}"#;
        let err = status_error(400, &headers, legacy);
        assert!(
            matches!(&err, Error::Server { code: Some(c), message, .. } if c == "refresh_token_not_found" && message == "Invalid Refresh Token"),
            "{err:?}"
        );

        let gateway = br#"{"message":"Invalid API key","hint":"Double check"}"#;
        let err = status_error(401, &headers, gateway);
        assert!(
            matches!(&err, Error::Unauthorized { code: None, message } if message == "Invalid API key"),
            "{err:?}"
        );

        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        headers.insert(
            "x-sb-error-code",
            HeaderValue::from_static("over_request_rate_limit"),
        );
        let err = status_error(429, &headers, b"");
        assert!(
            matches!(err, Error::RateLimited { retry_after: Some(d), .. } if d == Duration::from_secs(7))
        );
        assert!(err.is_retryable());

        let err = status_error(502, &HeaderMap::new(), b"<html>bad gateway</html>");
        assert!(
            matches!(&err, Error::Server { status: 502, code: None, message } if message == "HTTP 502")
        );
        assert!(err.is_retryable());
        assert!(!refresh_token_rejected(&err));
    }

    #[test]
    fn token_responses() -> Result<(), Error> {
        let answer = json!({
            "access_token": "a", "token_type": "bearer", "expires_in": 3600, "expires_at": 1_760_000_000u64,
            "refresh_token": "r", "user": {"id": "u1", "is_anonymous": true}
        });
        let session = session_from(&answer)?;
        assert_eq!(session.expires_at, 1_760_000_000);
        assert_eq!(session.user_id, "u1");
        assert_eq!(session.access_token.expose(), "a");

        // Older GoTrue sends only `expires_in`.
        let answer = json!({"access_token": "a", "expires_in": 60, "refresh_token": "r", "user": {"id": "u"}});
        let session = session_from(&answer)?;
        assert!(session.expires_at >= unix_now() + 59);

        assert!(session_from(&json!({"access_token": "a"})).is_err());
        Ok(())
    }

    #[test]
    fn urls_keep_a_path_prefix() -> Result<(), Error> {
        for (base, expected) in [
            (
                "http://127.0.0.1:54321",
                "http://127.0.0.1:54321/auth/v1/signup",
            ),
            (
                "https://x.example/proj",
                "https://x.example/proj/auth/v1/signup",
            ),
            (
                "https://x.example/proj/",
                "https://x.example/proj/auth/v1/signup",
            ),
        ] {
            let client = BackendClient::new(BackendConfig::new(base, "k"))?;
            let url = client.inner.base.join("auth/v1/signup").expect("joins");
            assert_eq!(url.as_str(), expected);
        }
        assert!(matches!(
            BackendClient::new(BackendConfig::new("ftp://x", "k")),
            Err(Error::InvalidConfig(_))
        ));
        assert!(matches!(
            BackendClient::new(BackendConfig::new("not a url", "k")),
            Err(Error::InvalidConfig(_))
        ));
        Ok(())
    }
}
