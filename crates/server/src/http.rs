//! The HTTP front: [`router`] composes every module's routes behind the
//! checks Supabase's API gateway makes, and small extractors shared by
//! handlers.
//!
//! Like the hosted gateway, every route requires an `apikey` (header or query
//! parameter) that is a JWT signed with our secret and carrying the `anon` or
//! `service_role` role. Otherwise the answer is 401 with the gateway's body:
//! `{"message":"No API key found in request","hint":..}` or
//! `{"message":"Invalid API key","hint":..}`.

use std::net::{IpAddr, SocketAddr};

use axum::Json;
use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::clock::unix_now;
use crate::jwt::{Claims, ROLE_ANON, ROLE_SERVICE};
use crate::state::SharedState;

/// Largest request body accepted. Auth, function and RPC bodies are a few
/// hundred bytes; the limit stops a client from making us buffer megabytes.
pub const MAX_REQUEST_BODY_BYTES: usize = 16 * 1024;

/// Header (and query parameter) carrying the project API key.
pub const API_KEY_HEADER: &str = "apikey";

/// The verified `apikey` of the request, inserted by the gateway check for
/// handlers that care which key was used: `Extension<ApiKeyClaims>`.
#[derive(Clone, Debug)]
pub struct ApiKeyClaims(pub Claims);

/// The whole HTTP API. Each module contributes `routes()`; merge new ones
/// here.
pub fn router(state: SharedState) -> Router {
    Router::new()
        .merge(crate::auth::routes())
        .merge(crate::functions::routes())
        .merge(crate::matchmaking::routes())
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_api_key,
        ))
        // Realtime checks the key itself, with its own error bodies.
        .merge(crate::realtime::routes())
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BODY_BYTES))
        .with_state(state)
}

#[derive(Deserialize)]
struct ApiKeyQuery {
    apikey: Option<String>,
}

/// The gateway's key check, in front of every route.
async fn require_api_key(
    State(state): State<SharedState>,
    mut request: Request,
    next: Next,
) -> Response {
    let from_header = request
        .headers()
        .get(API_KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let key = from_header.or_else(|| {
        Query::<ApiKeyQuery>::try_from_uri(request.uri())
            .ok()
            .and_then(|Query(q)| q.apikey)
    });
    let Some(key) = key.filter(|k| !k.is_empty()) else {
        return gateway_unauthorized(
            "No API key found in request",
            "No `apikey` request header or url param was found.",
        );
    };
    match state.jwt.verify(&key, unix_now()) {
        Ok(claims) if claims.role == ROLE_ANON || claims.role == ROLE_SERVICE => {
            request.extensions_mut().insert(ApiKeyClaims(claims));
            next.run(request).await
        }
        _ => gateway_unauthorized(
            "Invalid API key",
            "Double check your Supabase `anon` or `service_role` API key.",
        ),
    }
}

fn gateway_unauthorized(message: &str, hint: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({ "message": message, "hint": hint })),
    )
        .into_response()
}

/// The token of an `Authorization: Bearer <token>` header (scheme matched
/// case-insensitively), if any.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The client's IP, from the connection (`None` when the router is driven
/// without `into_make_service_with_connect_info`, e.g. in-process tests).
/// Never log it unwrapped: use `Redacted`.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn with_auth(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(value).expect("ascii"),
        );
        headers
    }

    #[test]
    fn bearer_tokens_are_extracted() {
        assert_eq!(bearer_token(&with_auth("Bearer abc.def")), Some("abc.def"));
        assert_eq!(bearer_token(&with_auth("bearer  abc ")), Some("abc"));
        assert_eq!(bearer_token(&with_auth("Basic abc")), None);
        assert_eq!(bearer_token(&with_auth("Bearer ")), None);
        assert_eq!(bearer_token(&with_auth("Bearer")), None);
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }
}
