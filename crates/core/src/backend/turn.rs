//! TURN credentials: Cloudflare's `generate-ice-servers` answer (which our
//! `turn-credentials` function mirrors), parsed generically and reduced to
//! what the peer can use.
//!
//! # Why only `turn:` over UDP
//!
//! Calls are relay-only (`iceTransportPolicy: relay`), so STUN is useless,
//! and webrtc-rs 0.17 gathers relay candidates only from `turn:` URLs whose
//! transport is UDP (`gather_candidates_relay`); `turns:` and
//! `?transport=tcp` URLs are ignored by it with a log line. Worse, one
//! `turn:` URL with an empty username or credential aborts *all* relay
//! gathering, so entries without both are dropped whole. Cloudflare's STUN
//! entry has no username, which is also why its list cannot be deserialized
//! straight into webrtc-rs's `RTCIceServer`. Port 53 is kept: browsers block
//! it, but a native client is not subject to that rule.

use std::time::Duration;

use serde_json::Value;
use voicemeet_proto::Redacted;

use crate::error::Error;

/// Expiries read from usernames further ahead than this are not believed
/// (the username was not a TURN REST timestamp after all). Cloudflare caps
/// credential lifetimes at 48 h; a week leaves room for other providers.
pub const MAX_PLAUSIBLE_TURN_LIFETIME: Duration = Duration::from_secs(7 * 86_400);

/// One ICE server as the peer needs it. `Debug` hides the credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceServer {
    /// `turn:` URLs with UDP transport, in the order the backend gave them.
    pub urls: Vec<String>,
    /// The TURN username (TURN REST: `<expiry>:<user id>`).
    pub username: Redacted<String>,
    /// The TURN password.
    pub credential: Redacted<String>,
}

/// What [`parse_ice_servers`] kept, and how much it dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedIceServers {
    /// Entries with at least one usable URL and both credentials.
    pub servers: Vec<IceServer>,
    /// URLs dropped: STUN, `turns:`, TCP transport, or in an entry without
    /// a username or credential.
    pub skipped_urls: usize,
}

/// TURN credentials ready for the peer, with the time they stop working.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnCredentials {
    /// The usable servers; never empty.
    pub ice_servers: Vec<IceServer>,
    /// When the credentials expire, Unix seconds: the earliest expiry in the
    /// TURN REST usernames, or the fetch time plus the configured TTL when
    /// a username carries none (Cloudflare's are opaque).
    pub expires_at: u64,
}

/// Parses an `{"iceServers": ..}` answer in any of Cloudflare's documented
/// shapes (PROTOCOLS.md §3.1): an array of entries or a single object (the
/// older `credentials/generate`), `urls` as an array or one string (or the
/// legacy `url`), entries with or without `username`/`credential` (STUN
/// has none). Keeps only what webrtc-rs can relay through (see the module
/// docs).
///
/// # Errors
/// [`Error::Protocol`] if there is no `iceServers`, or it or one of its
/// entries has the wrong type. Unknown keys are ignored.
pub fn parse_ice_servers(body: &Value) -> Result<ParsedIceServers, Error> {
    let entries = match body.get("iceServers") {
        Some(Value::Array(entries)) => entries.as_slice(),
        Some(entry @ Value::Object(_)) => std::slice::from_ref(entry),
        Some(_) => return Err(protocol("`iceServers` is neither an array nor an object")),
        None => return Err(protocol("no `iceServers` in the answer")),
    };
    let mut servers = Vec::new();
    let mut skipped_urls = 0;
    for entry in entries {
        let Value::Object(entry) = entry else {
            return Err(protocol("an `iceServers` entry is not an object"));
        };
        let urls: Vec<&str> = match entry.get("urls").or_else(|| entry.get("url")) {
            Some(Value::String(url)) => vec![url.as_str()],
            Some(Value::Array(urls)) => urls
                .iter()
                .map(|u| u.as_str().ok_or_else(|| protocol("a URL is not a string")))
                .collect::<Result<_, _>>()?,
            _ => return Err(protocol("an `iceServers` entry has no `urls`")),
        };
        let text = |key| entry.get(key).and_then(Value::as_str).unwrap_or_default();
        let (username, credential) = (text("username"), text("credential"));
        let (usable, unusable): (Vec<&str>, Vec<&str>) =
            urls.into_iter().partition(|url| is_turn_udp(url));
        skipped_urls += unusable.len();
        if username.is_empty() || credential.is_empty() {
            skipped_urls += usable.len();
            continue;
        }
        if !usable.is_empty() {
            servers.push(IceServer {
                urls: usable.into_iter().map(str::to_owned).collect(),
                username: Redacted::new(username.to_owned()),
                credential: Redacted::new(credential.to_owned()),
            });
        }
    }
    Ok(ParsedIceServers {
        servers,
        skipped_urls,
    })
}

/// Parses an answer into usable credentials, dating them: `now` is the
/// fetch time and `fallback_ttl` the lifetime assumed when no username
/// carries an expiry (both Unix seconds / a duration).
///
/// # Errors
/// As [`parse_ice_servers`], and [`Error::NoUsableTurnServer`] when nothing
/// usable remains.
pub fn turn_credentials_from(
    body: &Value,
    now: u64,
    fallback_ttl: Duration,
) -> Result<TurnCredentials, Error> {
    let parsed = parse_ice_servers(body)?;
    if parsed.skipped_urls > 0 {
        // Counts only: the URLs name the provider's hosts and ports, which
        // the logs do not need.
        tracing::debug!(
            skipped = parsed.skipped_urls,
            kept = parsed.servers.len(),
            "ignored ICE URLs webrtc-rs cannot relay through"
        );
    }
    if parsed.servers.is_empty() {
        return Err(Error::NoUsableTurnServer {
            skipped: parsed.skipped_urls,
        });
    }
    let latest_plausible = now.saturating_add(MAX_PLAUSIBLE_TURN_LIFETIME.as_secs());
    let expires_at = parsed
        .servers
        .iter()
        .filter_map(|s| username_expiry(s.username.expose()))
        .filter(|&at| at > now && at <= latest_plausible)
        .min()
        .unwrap_or_else(|| now.saturating_add(fallback_ttl.as_secs()));
    Ok(TurnCredentials {
        ice_servers: parsed.servers,
        expires_at,
    })
}

/// The expiry of a TURN REST username: `<expiry>:<id>`, or a bare
/// `<expiry>` (both forms of draft-uberti-behave-turn-rest).
pub fn username_expiry(username: &str) -> Option<u64> {
    let stamp = username.split_once(':').map_or(username, |(t, _)| t);
    if stamp.is_empty() || !stamp.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stamp.parse().ok()
}

/// Whether webrtc-rs 0.17 gathers relays from `url`: scheme `turn`
/// (RFC 7065) and transport UDP, which is the default when the URL names
/// none.
pub fn is_turn_udp(url: &str) -> bool {
    let Some((scheme, rest)) = url.split_once(':') else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("turn") {
        return false;
    }
    let Some((_, query)) = rest.split_once('?') else {
        return true;
    };
    let mut transport = None;
    for pair in query.split('&') {
        if let Some((key, value)) = pair.split_once('=')
            && key.eq_ignore_ascii_case("transport")
        {
            transport = Some(value);
        }
    }
    transport.is_none_or(|t| t.eq_ignore_ascii_case("udp"))
}

fn protocol(detail: &str) -> Error {
    Error::Protocol {
        service: "backend",
        detail: format!("TURN credentials: {detail}"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const NOW: u64 = 1_760_000_000;
    const TTL: Duration = Duration::from_secs(3_600);

    fn urls(parsed: &ParsedIceServers) -> Vec<Vec<&str>> {
        parsed
            .servers
            .iter()
            .map(|s| s.urls.iter().map(String::as_str).collect())
            .collect()
    }

    /// The current `generate-ice-servers` document: a STUN entry without a
    /// username, then one TURN entry with six URLs.
    #[test]
    fn current_cloudflare_shape() -> Result<(), Error> {
        let body = json!({
            "iceServers": [
                { "urls": ["stun:stun.cloudflare.com:3478"] },
                { "urls": [
                    "turn:turn.cloudflare.com:3478?transport=udp",
                    "turn:turn.cloudflare.com:443?transport=udp",
                    "turn:turn.cloudflare.com:3478?transport=tcp",
                    "turn:turn.cloudflare.com:80?transport=tcp",
                    "turns:turn.cloudflare.com:5349?transport=tcp",
                    "turns:turn.cloudflare.com:443?transport=tcp"],
                  "username": "bc91b63e2b5d759f8eb9f3b58062439e0a0e15893d76317d833265ad08d6631099ce7c7087caabb31ad3e1c386424e3e",
                  "credential": "ebd71f1d3edbc2b0edae3cd5a6d82284aeb5c3b8fdaa9b8e3bf9cec683e0d45fe9f5b44e5145db3300f06c250a15b4a0" }
            ]
        });
        let parsed = parse_ice_servers(&body)?;
        assert_eq!(
            urls(&parsed),
            [[
                "turn:turn.cloudflare.com:3478?transport=udp",
                "turn:turn.cloudflare.com:443?transport=udp"
            ]]
        );
        assert_eq!(parsed.skipped_urls, 5);
        assert!(parsed.servers[0].username.expose().starts_with("bc91b6"));

        // Cloudflare's usernames are opaque: the configured TTL dates them.
        let creds = turn_credentials_from(&body, NOW, TTL)?;
        assert_eq!(creds.expires_at, NOW + TTL.as_secs());
        Ok(())
    }

    /// One doc version returns a single entry mixing STUN and TURN URLs
    /// (including port 53) with the credentials.
    #[test]
    fn single_mixed_entry() -> Result<(), Error> {
        let body = json!({
            "iceServers": [{
                "urls": [
                    "stun:stun.cloudflare.com:3478",
                    "stun:stun.cloudflare.com:53",
                    "turn:turn.cloudflare.com:3478?transport=udp",
                    "turn:turn.cloudflare.com:53?transport=udp",
                    "turn:turn.cloudflare.com:3478?transport=tcp",
                    "turns:turn.cloudflare.com:5349?transport=tcp"],
                "username": "u", "credential": "p"
            }]
        });
        let parsed = parse_ice_servers(&body)?;
        assert_eq!(
            urls(&parsed),
            [[
                "turn:turn.cloudflare.com:3478?transport=udp",
                "turn:turn.cloudflare.com:53?transport=udp"
            ]]
        );
        assert_eq!(parsed.skipped_urls, 4);
        Ok(())
    }

    /// The older `credentials/generate` endpoint: `iceServers` is one
    /// object, not an array.
    #[test]
    fn old_object_form() -> Result<(), Error> {
        let body = json!({
            "iceServers": {
                "urls": ["stun:stun.cloudflare.com:3478",
                         "turn:turn.cloudflare.com:3478?transport=udp",
                         "turns:turn.cloudflare.com:5349?transport=tcp"],
                "username": "u", "credential": "p"
            }
        });
        let parsed = parse_ice_servers(&body)?;
        assert_eq!(
            urls(&parsed),
            [["turn:turn.cloudflare.com:3478?transport=udp"]]
        );
        assert_eq!(parsed.skipped_urls, 2);
        Ok(())
    }

    /// Our own server's shape: a TURN REST username carries the expiry.
    #[test]
    fn turn_rest_username_dates_the_credentials() -> Result<(), Error> {
        let expiry = NOW + 600;
        let body = json!({ "iceServers": [{
            "urls": "turn:127.0.0.1:3478?transport=udp",
            "username": format!("{expiry}:user-1"), "credential": "p" }] });
        let creds = turn_credentials_from(&body, NOW, TTL)?;
        assert_eq!(creds.expires_at, expiry);
        assert_eq!(
            creds.ice_servers[0].urls,
            ["turn:127.0.0.1:3478?transport=udp"]
        );

        // A timestamp-only username works too; an implausible one does not.
        let body = json!({ "iceServers": [{ "urls": "turn:h", "username": expiry.to_string(), "credential": "p" }] });
        assert_eq!(turn_credentials_from(&body, NOW, TTL)?.expires_at, expiry);
        let far = NOW + MAX_PLAUSIBLE_TURN_LIFETIME.as_secs() + 1;
        let body = json!({ "iceServers": [{ "urls": "turn:h", "username": format!("{far}:x"), "credential": "p" }] });
        assert_eq!(
            turn_credentials_from(&body, NOW, TTL)?.expires_at,
            NOW + TTL.as_secs()
        );
        Ok(())
    }

    #[test]
    fn stun_only_is_no_usable_server() {
        let body = json!({ "iceServers": [{ "urls": ["stun:stun.cloudflare.com:3478"] }] });
        assert!(matches!(
            turn_credentials_from(&body, NOW, TTL),
            Err(Error::NoUsableTurnServer { skipped: 1 })
        ));
        // TURN over UDP without credentials would abort relay gathering.
        let body = json!({ "iceServers": [{ "urls": ["turn:h:3478"], "username": "" }] });
        assert!(matches!(
            turn_credentials_from(&body, NOW, TTL),
            Err(Error::NoUsableTurnServer { skipped: 1 })
        ));
        let body = json!({ "iceServers": [] });
        assert!(matches!(
            turn_credentials_from(&body, NOW, TTL),
            Err(Error::NoUsableTurnServer { skipped: 0 })
        ));
    }

    #[test]
    fn malformed_answers_are_protocol_errors() {
        for body in [
            json!({}),
            json!({ "iceServers": "turn:h" }),
            json!({ "iceServers": [1] }),
            json!({ "iceServers": [{ "username": "u" }] }),
            json!({ "iceServers": [{ "urls": [1] }] }),
        ] {
            assert!(
                matches!(parse_ice_servers(&body), Err(Error::Protocol { .. })),
                "{body}"
            );
        }
    }

    #[test]
    fn url_classification() {
        for url in [
            "turn:h",
            "turn:h:3478",
            "TURN:h:3478?transport=UDP",
            "turn:[::1]:3478?transport=udp",
            "turn:h:3478?foo=bar&transport=udp",
        ] {
            assert!(is_turn_udp(url), "{url}");
        }
        for url in [
            "stun:h:3478",
            "turns:h:5349?transport=tcp",
            "turns:h:443",
            "turn:h:80?transport=tcp",
            "turn:h?transport=tls",
            "h:3478",
            "",
        ] {
            assert!(!is_turn_udp(url), "{url}");
        }
    }

    #[test]
    fn username_expiries() {
        assert_eq!(username_expiry("1599491771:user"), Some(1_599_491_771));
        assert_eq!(username_expiry("1599491771"), Some(1_599_491_771));
        assert_eq!(username_expiry("bc91b63e"), None);
        assert_eq!(username_expiry(":x"), None);
        assert_eq!(username_expiry("+15:x"), None);
    }

    #[test]
    fn debug_hides_credentials() -> Result<(), Error> {
        let body = json!({ "iceServers": [{ "urls": "turn:h", "username": "secret-user", "credential": "secret-pass" }] });
        let printed = format!("{:?}", parse_ice_servers(&body)?);
        assert!(!printed.contains("secret"), "{printed}");
        Ok(())
    }
}
