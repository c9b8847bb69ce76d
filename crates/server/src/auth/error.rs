//! GoTrue's error responses. The body shape depends on the request's
//! `X-Supabase-Api-Version` header (auth-js always sends `2024-01-01`):
//!
//! - `2024-01-01` or later: `{"code":"<error_code>","message":"..."}`
//! - absent or earlier: `{"code":<http status>,"error_code":"...","msg":"..."}`
//!
//! Either way the `x-sb-error-code` header carries the error code.

use axum::Json;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::jwt::JwtError;

/// Request header selecting the error body shape.
pub const API_VERSION_HEADER: &str = "x-supabase-api-version";
/// Response header carrying the error code.
pub const ERROR_CODE_HEADER: HeaderName = HeaderName::from_static("x-sb-error-code");
/// The first (and so far only) API version, `YYYY-MM-DD`.
pub const API_VERSION_2024_01_01: &str = "2024-01-01";

/// Which error body shape the client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiVersion {
    /// No (or an older) version header: `{"code":400,"error_code":..,"msg":..}`.
    Legacy,
    /// `2024-01-01` or later: `{"code":"..","message":..}`.
    V2024_01_01,
}

impl ApiVersion {
    /// Reads the header value. Dates compare correctly as `YYYY-MM-DD`
    /// strings; anything else is treated as absent.
    pub fn from_header(value: Option<&str>) -> Self {
        match value.map(str::trim) {
            Some(v) if is_iso_date(v) && v >= API_VERSION_2024_01_01 => Self::V2024_01_01,
            _ => Self::Legacy,
        }
    }
}

fn is_iso_date(v: &str) -> bool {
    v.len() == 10
        && v.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        })
}

impl<S: Send + Sync> FromRequestParts<S> for ApiVersion {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::from_header(
            parts
                .headers
                .get(API_VERSION_HEADER)
                .and_then(|v| v.to_str().ok()),
        ))
    }
}

/// An auth request that failed, with GoTrue's status, code and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// 400 `bad_json`: the body is not the expected JSON (an empty body
    /// included). Not retryable.
    #[error("Could not parse request body as JSON: {0}")]
    BadJson(String),
    /// 422 `email_provider_disabled`: only anonymous sign-up exists here.
    #[error("Email signups are disabled")]
    EmailProviderDisabled,
    /// 422 `phone_provider_disabled`: only anonymous sign-up exists here.
    #[error("Phone signups are disabled")]
    PhoneProviderDisabled,
    /// 429 `over_request_rate_limit`: too many sign-ups from this IP.
    /// Retryable later.
    #[error("Request rate limit reached")]
    RateLimited,
    /// 400 `validation_failed`: `grant_type` other than `refresh_token`.
    #[error("unsupported_grant_type")]
    UnsupportedGrantType,
    /// 400 `refresh_token_not_found`: unknown refresh token. Sign in again.
    #[error("Invalid Refresh Token: Refresh Token Not Found")]
    RefreshTokenNotFound,
    /// 400 `refresh_token_already_used`: reuse; the session is revoked. Sign
    /// in again.
    #[error("Invalid Refresh Token: Already Used")]
    RefreshTokenAlreadyUsed,
    /// 401 `no_authorization`: no `Authorization: Bearer` header.
    #[error("This endpoint requires a valid Bearer token")]
    NoAuthorization,
    /// 403 `bad_jwt`: the bearer token does not verify. Retryable after a
    /// refresh when the cause is expiry.
    #[error("invalid JWT: unable to parse or verify signature, {0}")]
    BadJwt(JwtError),
    /// 403 `bad_jwt`: a valid token without a user (`sub`), e.g. the anon key.
    #[error("invalid claim: missing sub claim")]
    MissingSub,
    /// 403 `user_not_found`: the token's user does not exist (server
    /// restarted: state is in memory).
    #[error("User from sub claim in JWT does not exist")]
    UserNotFound,
    /// 403 `session_not_found`: the token's session was revoked or lost.
    #[error("Session from session_id claim in JWT does not exist")]
    SessionNotFound,
}

impl AuthError {
    /// The HTTP status GoTrue answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadJson(_)
            | Self::UnsupportedGrantType
            | Self::RefreshTokenNotFound
            | Self::RefreshTokenAlreadyUsed => StatusCode::BAD_REQUEST,
            Self::EmailProviderDisabled | Self::PhoneProviderDisabled => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::NoAuthorization => StatusCode::UNAUTHORIZED,
            Self::BadJwt(_) | Self::MissingSub | Self::UserNotFound | Self::SessionNotFound => {
                StatusCode::FORBIDDEN
            }
        }
    }

    /// GoTrue's machine-readable error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadJson(_) => "bad_json",
            Self::EmailProviderDisabled => "email_provider_disabled",
            Self::PhoneProviderDisabled => "phone_provider_disabled",
            Self::RateLimited => "over_request_rate_limit",
            Self::UnsupportedGrantType => "validation_failed",
            Self::RefreshTokenNotFound => "refresh_token_not_found",
            Self::RefreshTokenAlreadyUsed => "refresh_token_already_used",
            Self::NoAuthorization => "no_authorization",
            Self::BadJwt(_) | Self::MissingSub => "bad_jwt",
            Self::UserNotFound => "user_not_found",
            Self::SessionNotFound => "session_not_found",
        }
    }

    /// Pairs the error with the shape the request asked for.
    pub fn for_version(self, version: ApiVersion) -> AuthRejection {
        AuthRejection {
            version,
            error: self,
        }
    }
}

/// An [`AuthError`] ready to be rendered in the requested shape.
#[derive(Debug)]
pub struct AuthRejection {
    /// The requested body shape.
    pub version: ApiVersion,
    /// What went wrong.
    pub error: AuthError,
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        let status = self.error.status();
        let code = self.error.code();
        let message = self.error.to_string();
        let body = match self.version {
            ApiVersion::V2024_01_01 => json!({ "code": code, "message": message }),
            ApiVersion::Legacy => {
                json!({ "code": status.as_u16(), "error_code": code, "msg": message })
            }
        };
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(ERROR_CODE_HEADER, HeaderValue::from_static(code));
        if self.version == ApiVersion::V2024_01_01 {
            // GoTrue names the version it answered in; auth-js reads the
            // string `code` only when this header says 2024-01-01 or later.
            headers.insert(
                HeaderName::from_static(API_VERSION_HEADER),
                HeaderValue::from_static(API_VERSION_2024_01_01),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_header_is_read_as_a_date() {
        assert_eq!(ApiVersion::from_header(None), ApiVersion::Legacy);
        assert_eq!(
            ApiVersion::from_header(Some("2024-01-01")),
            ApiVersion::V2024_01_01
        );
        assert_eq!(
            ApiVersion::from_header(Some("2025-06-30")),
            ApiVersion::V2024_01_01
        );
        assert_eq!(
            ApiVersion::from_header(Some("2023-12-31")),
            ApiVersion::Legacy
        );
        assert_eq!(ApiVersion::from_header(Some("latest")), ApiVersion::Legacy);
        assert_eq!(
            ApiVersion::from_header(Some("2024-1-011")),
            ApiVersion::Legacy
        );
    }

    #[test]
    fn statuses_and_codes_match_gotrue() {
        for (error, status, code) in [
            (AuthError::BadJson("eof".into()), 400, "bad_json"),
            (AuthError::RateLimited, 429, "over_request_rate_limit"),
            (
                AuthError::RefreshTokenAlreadyUsed,
                400,
                "refresh_token_already_used",
            ),
            (
                AuthError::RefreshTokenNotFound,
                400,
                "refresh_token_not_found",
            ),
            (AuthError::NoAuthorization, 401, "no_authorization"),
            (AuthError::BadJwt(JwtError::Malformed), 403, "bad_jwt"),
            (
                AuthError::EmailProviderDisabled,
                422,
                "email_provider_disabled",
            ),
        ] {
            assert_eq!(error.status().as_u16(), status, "{error:?}");
            assert_eq!(error.code(), code, "{error:?}");
        }
    }
}
