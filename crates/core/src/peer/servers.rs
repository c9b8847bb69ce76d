//! Which TURN URLs webrtc-rs 0.17 can relay through, and the relay IPs they
//! name. Plain logic: no sockets (but the host name lookup at the end).

use std::net::IpAddr;

use crate::backend::IceServer;
use crate::error::Error;

use super::TURN_LOOKUP_TIMEOUT;

/// The port of a `turn:` URL without one (RFC 7065 §3.1).
pub const DEFAULT_TURN_PORT: u16 = 3478;

/// Where a usable `turn:` URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TurnHost {
    Ip(IpAddr),
    Name(String),
}

/// The host and port of a `turn:` URL over UDP, or `None` for anything
/// webrtc-rs 0.17 cannot (or, for IPv6, does not) relay through: other
/// schemes, `?transport=tcp`, other query parameters (its URL parser would
/// refuse the whole configuration), IPv6 literals (it binds the relay
/// socket to `0.0.0.0:0`, so relays are IPv4).
pub(crate) fn parse_turn_udp_url(url: &str) -> Option<(TurnHost, u16)> {
    let (scheme, rest) = url.split_once(':')?;
    if !scheme.eq_ignore_ascii_case("turn") {
        return None;
    }
    let (authority, query) = match rest.split_once('?') {
        Some((authority, query)) => (authority, Some(query)),
        None => (rest, None),
    };
    if let Some(query) = query {
        let (key, value) = query.split_once('=')?;
        if !key.eq_ignore_ascii_case("transport") || !value.eq_ignore_ascii_case("udp") {
            return None;
        }
    }
    if authority.starts_with('[') {
        return None;
    }
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (host, port.parse::<u16>().ok().filter(|&p| p != 0)?),
        None => (authority, DEFAULT_TURN_PORT),
    };
    if let Ok(ip) = host.parse::<IpAddr>() {
        return ip.is_ipv4().then_some((TurnHost::Ip(ip), port));
    }
    let is_name_byte = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'.';
    if host.is_empty() || !host.bytes().all(is_name_byte) {
        return None;
    }
    Some((TurnHost::Name(host.to_owned()), port))
}

/// The servers reduced to their usable URLs, with the endpoints those name.
#[derive(Debug, Default)]
pub(crate) struct Usable {
    pub servers: Vec<IceServer>,
    pub endpoints: Vec<(TurnHost, u16)>,
    pub skipped_urls: usize,
}

/// Keeps the usable URLs of entries that have both a username and a
/// credential (one `turn:` URL with an empty one makes webrtc-rs 0.17 abort
/// all relay gathering).
pub(crate) fn usable_servers(servers: &[IceServer]) -> Usable {
    let mut usable = Usable::default();
    for server in servers {
        if server.username.expose().is_empty() || server.credential.expose().is_empty() {
            usable.skipped_urls += server.urls.len();
            continue;
        }
        let mut urls = Vec::new();
        for url in &server.urls {
            match parse_turn_udp_url(url) {
                Some(endpoint) => {
                    urls.push(url.clone());
                    if !usable.endpoints.contains(&endpoint) {
                        usable.endpoints.push(endpoint);
                    }
                }
                None => usable.skipped_urls += 1,
            }
        }
        if !urls.is_empty() {
            usable.servers.push(IceServer {
                urls,
                username: server.username.clone(),
                credential: server.credential.clone(),
            });
        }
    }
    usable
}

/// The relay IPs the usable TURN URLs name as IP literals (host names are
/// left out: [`Peer::new`](super::Peer::new) resolves those). These are the
/// addresses local relay candidates must carry under
/// [`RelayIps::FromUrls`](super::RelayIps::FromUrls).
pub fn relay_ips_from_urls(servers: &[IceServer]) -> Vec<IpAddr> {
    let mut ips = Vec::new();
    for (host, _) in usable_servers(servers).endpoints {
        if let TurnHost::Ip(ip) = host
            && !ips.contains(&ip)
        {
            ips.push(ip);
        }
    }
    ips
}

/// The IPs of all endpoints, resolving host names.
///
/// # Errors
/// [`Error::Unreachable`] if a name does not resolve, [`Error::TimedOut`]
/// after [`TURN_LOOKUP_TIMEOUT`]. Both retryable.
pub(crate) async fn resolve_relay_ips(endpoints: &[(TurnHost, u16)]) -> Result<Vec<IpAddr>, Error> {
    let mut ips = Vec::new();
    for (host, port) in endpoints {
        match host {
            TurnHost::Ip(ip) => ips.push(*ip),
            TurnHost::Name(name) => {
                let lookup = tokio::net::lookup_host((name.as_str(), *port));
                let found = tokio::time::timeout(TURN_LOOKUP_TIMEOUT, lookup)
                    .await
                    .map_err(|_| Error::TimedOut {
                        what: "TURN host name lookup",
                        after: TURN_LOOKUP_TIMEOUT,
                    })?
                    .map_err(|e| Error::Unreachable {
                        service: "turn",
                        detail: format!("host name lookup failed: {e}"),
                    })?;
                ips.extend(found.map(|addr| addr.ip()));
            }
        }
    }
    ips.sort_unstable();
    ips.dedup();
    Ok(ips)
}

#[cfg(test)]
mod tests {
    use voicemeet_proto::Redacted;

    use super::*;

    fn server(urls: &[&str], username: &str, credential: &str) -> IceServer {
        IceServer {
            urls: urls.iter().map(|u| (*u).to_owned()).collect(),
            username: Redacted::new(username.to_owned()),
            credential: Redacted::new(credential.to_owned()),
        }
    }

    #[test]
    fn parses_turn_udp_urls_only() {
        let ip = |s: &str| TurnHost::Ip(s.parse().expect("ip"));
        let name = |s: &str| TurnHost::Name(s.to_owned());
        let cases: &[(&str, Option<(TurnHost, u16)>)] = &[
            (
                "turn:127.0.0.1:3479?transport=udp",
                Some((ip("127.0.0.1"), 3479)),
            ),
            ("TURN:203.0.113.7", Some((ip("203.0.113.7"), 3478))),
            (
                "turn:turn.example.com:53?transport=UDP",
                Some((name("turn.example.com"), 53)),
            ),
            ("turn:turn.example.com?transport=tcp", None),
            ("turns:turn.example.com:5349?transport=tcp", None),
            ("turns:turn.example.com:443", None),
            ("stun:stun.example.com:3478", None),
            ("turn:[2001:db8::1]:3478", None),
            ("turn:127.0.0.1:0", None),
            ("turn:127.0.0.1:99999", None),
            ("turn:127.0.0.1?foo=bar", None),
            ("turn:", None),
            ("turn:bad host", None),
            ("not a url", None),
        ];
        for (url, expected) in cases {
            assert_eq!(&parse_turn_udp_url(url), expected, "{url}");
        }
    }

    #[test]
    fn keeps_usable_urls_of_entries_with_credentials() {
        let servers = [
            server(&["stun:stun.example.com"], "", ""),
            server(
                &[
                    "turn:198.51.100.1:3478?transport=udp",
                    "turn:198.51.100.1:3478?transport=tcp",
                    "turns:turn.example.com:5349",
                    "turn:turn.example.com:53",
                ],
                "1:user",
                "pw",
            ),
            server(&["turn:192.0.2.9"], "1:user", ""),
        ];
        let usable = usable_servers(&servers);
        assert_eq!(usable.servers.len(), 1);
        assert_eq!(
            usable.servers[0].urls,
            [
                "turn:198.51.100.1:3478?transport=udp",
                "turn:turn.example.com:53"
            ]
        );
        assert_eq!(usable.skipped_urls, 4);
        assert_eq!(usable.endpoints.len(), 2);
        assert_eq!(
            relay_ips_from_urls(&servers),
            vec!["198.51.100.1".parse::<IpAddr>().expect("ip")]
        );
    }

    #[tokio::test]
    async fn resolves_names_and_keeps_literals() {
        let endpoints = [
            (TurnHost::Ip("192.0.2.1".parse().expect("ip")), 3478),
            (TurnHost::Name("localhost".to_owned()), 3478),
        ];
        let ips = resolve_relay_ips(&endpoints)
            .await
            .expect("localhost resolves");
        assert!(ips.contains(&"192.0.2.1".parse().expect("ip")));
        assert!(ips.iter().any(IpAddr::is_loopback), "{ips:?}");
    }
}
