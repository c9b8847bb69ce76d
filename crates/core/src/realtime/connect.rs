//! The websocket URL and handshake, with Realtime's connect-time refusals
//! (PROTOCOLS.md §1.1) mapped to typed errors.

use std::sync::Once;
use std::time::Duration;

use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use url::Url;
use voicemeet_proto::Redacted;
use voicemeet_proto::phoenix::{MAX_FRAME_BYTES, Vsn};

use crate::error::Error;

/// The client side of the socket.
pub(super) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const SERVICE: &str = "realtime";

/// The Realtime websocket URL for a project URL, as supabase-js builds it:
/// `http(s)://host[/prefix]` → `ws(s)://host[/prefix]/realtime/v1/websocket?apikey=..&vsn=..`.
/// It carries the API key, so keep it out of logs.
///
/// # Errors
/// [`Error::InvalidConfig`] if `base` does not parse, is not `http(s)` (or
/// already `ws(s)`), or the key is empty (realtime-js refuses that too).
pub fn websocket_url(base: &str, api_key: &str, vsn: Vsn) -> Result<Url, Error> {
    if api_key.is_empty() {
        return Err(Error::InvalidConfig(
            "an API key is required to connect to Realtime".into(),
        ));
    }
    let mut url =
        Url::parse(base).map_err(|e| Error::InvalidConfig(format!("realtime URL: {e}")))?;
    let scheme = match url.scheme() {
        "http" | "ws" => "ws",
        "https" | "wss" => "wss",
        _ => {
            return Err(Error::InvalidConfig(
                "realtime URL must be http(s) or ws(s)".into(),
            ));
        }
    };
    url.set_scheme(scheme)
        .map_err(|()| Error::InvalidConfig("realtime URL: cannot change the scheme".into()))?;
    let path = format!("{}/realtime/v1/websocket", url.path().trim_end_matches('/'));
    url.set_path(&path);
    url.set_fragment(None);
    url.query_pairs_mut()
        .clear()
        .append_pair("apikey", api_key)
        .append_pair("vsn", vsn.as_str());
    Ok(url)
}

/// One handshake attempt, bounded by `timeout`.
pub(super) async fn connect(url: &Redacted<Url>, timeout: Duration) -> Result<Ws, Error> {
    if url.expose().scheme() == "wss" {
        install_crypto_provider();
    }
    // Realtime's own `max_frame_size`: anything larger is not a message it
    // would send.
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_FRAME_BYTES))
        .max_frame_size(Some(MAX_FRAME_BYTES));
    let handshake =
        tokio_tungstenite::connect_async_with_config(url.expose().as_str(), Some(config), true);
    match tokio::time::timeout(timeout, handshake).await {
        Ok(Ok((ws, _response))) => Ok(ws),
        Ok(Err(err)) => Err(connect_error(err)),
        Err(_) => Err(Error::TimedOut {
            what: "realtime connect",
            after: timeout,
        }),
    }
}

/// tokio-tungstenite builds its rustls config with the process default
/// provider, which rustls cannot pick by itself when more than one provider
/// feature ends up enabled in the app's dependency graph. Installing one
/// first makes that unambiguous; if the app installed its own, that wins.
fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    });
}

fn connect_error(err: WsError) -> Error {
    match err {
        WsError::Http(response) => {
            let status = response.status().as_u16();
            // Realtime refuses with `{"error": "<message>"}`; gateways with
            // `{"message": ..}`.
            let body: Value = response
                .body()
                .as_deref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or(Value::Null);
            let message = ["error", "message"]
                .iter()
                .find_map(|k| body.get(*k).and_then(Value::as_str))
                .map_or_else(|| format!("HTTP {status}"), str::to_owned);
            match status {
                401 | 403 => Error::Unauthorized {
                    code: None,
                    message,
                },
                429 => Error::RateLimited {
                    retry_after: None,
                    message,
                },
                _ => Error::Server {
                    status,
                    code: None,
                    message,
                },
            }
        }
        WsError::Io(err) => Error::Unreachable {
            service: SERVICE,
            detail: err.to_string(),
        },
        WsError::Tls(err) => Error::Unreachable {
            service: SERVICE,
            detail: format!("TLS: {err}"),
        },
        WsError::ConnectionClosed | WsError::AlreadyClosed => Error::Unreachable {
            service: SERVICE,
            detail: "connection closed during the handshake".into(),
        },
        WsError::Url(err) => Error::InvalidConfig(format!("realtime URL: {err}")),
        other => Error::Protocol {
            service: SERVICE,
            detail: format!("websocket handshake: {other}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_as_supabase_js_builds_them() -> Result<(), Error> {
        let cases = [
            (
                "https://abc.supabase.co",
                Vsn::V2,
                "wss://abc.supabase.co/realtime/v1/websocket?apikey=KEY&vsn=2.0.0",
            ),
            (
                "http://127.0.0.1:54321/",
                Vsn::V1,
                "ws://127.0.0.1:54321/realtime/v1/websocket?apikey=KEY&vsn=1.0.0",
            ),
            (
                "https://example.com/proxy/",
                Vsn::V2,
                "wss://example.com/proxy/realtime/v1/websocket?apikey=KEY&vsn=2.0.0",
            ),
        ];
        for (base, vsn, expected) in cases {
            assert_eq!(websocket_url(base, "KEY", vsn)?.as_str(), expected);
        }
        // Keys are query-encoded.
        let url = websocket_url("http://h", "a+b&c", Vsn::V2)?;
        assert_eq!(url.query(), Some("apikey=a%2Bb%26c&vsn=2.0.0"));
        assert!(matches!(
            websocket_url("http://h", "", Vsn::V2),
            Err(Error::InvalidConfig(_))
        ));
        assert!(matches!(
            websocket_url("ftp://h", "k", Vsn::V2),
            Err(Error::InvalidConfig(_))
        ));
        Ok(())
    }
}
