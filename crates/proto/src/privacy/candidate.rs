//! ICE candidate lines (RFC 8839 §5.1, as webrtc-rs marshals them):
//! `<foundation> <component> <udp|tcp> <priority> <addr> <port> typ <type>`
//! followed by name/value pairs such as `raddr A rport P`.

use std::net::IpAddr;

use super::{Violation, is_allowed_relay, literal};
use crate::Redacted;

/// The prefix of a candidate attribute's value, as `RTCIceCandidateInit`
/// carries it (`candidate:1 1 udp …`). Parsing accepts lines with or without
/// it.
pub const CANDIDATE_PREFIX: &str = "candidate:";

/// Longest foundation RFC 8839 allows.
const MAX_FOUNDATION_CHARS: usize = 32;

/// The transport of a candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// `udp` (any case).
    Udp,
    /// `tcp` (any case).
    Tcp,
}

/// The type of a candidate: where its address comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CandidateType {
    /// `host`: an address of the user's own interface.
    Host,
    /// `srflx`: the user's public address as a STUN server saw it.
    Srflx,
    /// `prflx`: an address learnt from a connectivity check.
    Prflx,
    /// `relay`: an address of the TURN relay. The only type we signal.
    Relay,
}

impl CandidateType {
    /// The name on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Host => "host",
            Self::Srflx => "srflx",
            Self::Prflx => "prflx",
            Self::Relay => "relay",
        }
    }
}

impl std::fmt::Display for CandidateType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A candidate's connection or related address. Deliberately without
/// `Display`: it is carried inside [`Redacted`] wherever it can be logged.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// An IPv4 or IPv6 address.
    Ip(IpAddr),
    /// An mDNS name ending in `.local`, which browsers use to hide a host
    /// address on the local network.
    Mdns(String),
    /// Any other host name.
    Hostname(String),
}

impl Address {
    fn parse(text: &str) -> Result<Self, Violation> {
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(Self::Ip(ip));
        }
        let is_name_byte = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'.';
        if text.is_empty() || !text.bytes().all(is_name_byte) {
            return Err(Violation::Malformed {
                what: "address is neither an IP address nor a host name",
            });
        }
        let name = text.strip_suffix('.').unwrap_or(text);
        let is_mdns = name.len() >= ".local".len()
            && name.as_bytes()[name.len() - ".local".len()..].eq_ignore_ascii_case(b".local");
        Ok(if is_mdns {
            Self::Mdns(text.to_owned())
        } else {
            Self::Hostname(text.to_owned())
        })
    }
}

/// A parsed candidate line. Addresses and extension values are wrapped in
/// [`Redacted`] so that `Debug` never prints them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Up to 32 ice-chars (`[A-Za-z0-9+/]`).
    pub foundation: String,
    /// 1 (RTP) or 2 (RTCP); anything in 1..=256.
    pub component: u16,
    /// `udp` or `tcp`.
    pub transport: Transport,
    /// The candidate's priority.
    pub priority: u32,
    /// The connection address.
    pub address: Redacted<Address>,
    /// The connection port.
    pub port: u16,
    /// `typ`: host, srflx, prflx or relay.
    pub kind: CandidateType,
    /// `raddr`, if present.
    pub related_address: Option<Redacted<Address>>,
    /// `rport`, if present (present exactly when `raddr` is).
    pub related_port: Option<u16>,
    /// `tcptype`, if present.
    pub tcp_type: Option<String>,
    /// Every other name/value pair, in order (e.g. `generation 0`).
    pub extensions: Vec<(String, Redacted<String>)>,
}

/// A candidate line that passed [`check_candidate`]: the only form of a
/// candidate the signalling session sends. `Debug` does not print the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafeCandidate {
    line: Redacted<String>,
    candidate: Candidate,
}

impl SafeCandidate {
    /// The line exactly as it was checked.
    pub fn as_str(&self) -> &str {
        self.line.expose()
    }

    /// The line exactly as it was checked.
    pub fn into_string(self) -> String {
        self.line.into_inner()
    }

    /// The parsed line.
    pub fn candidate(&self) -> &Candidate {
        &self.candidate
    }
}

/// Every byte of a candidate line is printable ASCII other than `"` and `\`.
/// Real lines are made of SDP tokens, addresses and spaces; this also means
/// a line needs no escaping in JSON, which keeps batch sizes predictable.
fn is_line_byte(b: u8) -> bool {
    (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\'
}

fn is_ice_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/'
}

/// Parses a candidate line, with or without the `candidate:` prefix. This
/// only checks the grammar; [`check_candidate`] applies the privacy rules.
///
/// # Errors
///
/// [`Violation::Malformed`] naming the first part that is wrong.
pub fn parse_candidate(line: &str) -> Result<Candidate, Violation> {
    let malformed = |what| Violation::Malformed { what };
    if !line.bytes().all(is_line_byte) {
        return Err(malformed("character other than printable ASCII"));
    }
    let body = line.strip_prefix(CANDIDATE_PREFIX).unwrap_or(line);
    let tokens: Vec<&str> = body.split_ascii_whitespace().collect();
    let Some((fixed, pairs)) = tokens.split_at_checked(8) else {
        return Err(malformed("fewer than eight fields"));
    };
    let &[
        foundation,
        component,
        transport,
        priority,
        address,
        port,
        typ,
        kind,
    ] = fixed
    else {
        return Err(malformed("fewer than eight fields"));
    };

    if foundation.len() > MAX_FOUNDATION_CHARS || !foundation.bytes().all(is_ice_char) {
        return Err(malformed("foundation"));
    }
    let component = component
        .parse::<u16>()
        .ok()
        .filter(|c| (1..=256).contains(c))
        .ok_or(malformed("component"))?;
    let transport = if transport.eq_ignore_ascii_case("udp") {
        Transport::Udp
    } else if transport.eq_ignore_ascii_case("tcp") {
        Transport::Tcp
    } else {
        return Err(malformed("transport"));
    };
    let priority = priority.parse().map_err(|_| malformed("priority"))?;
    let address = Address::parse(address)?;
    let port = port.parse().map_err(|_| malformed("port"))?;
    if typ != "typ" {
        return Err(malformed("missing `typ`"));
    }
    let kind = match kind {
        "host" => CandidateType::Host,
        "srflx" => CandidateType::Srflx,
        "prflx" => CandidateType::Prflx,
        "relay" => CandidateType::Relay,
        _ => return Err(malformed("candidate type")),
    };

    let mut related_address = None;
    let mut related_port = None;
    let mut tcp_type = None;
    let mut extensions = Vec::new();
    let mut pairs = pairs.chunks_exact(2);
    for pair in pairs.by_ref() {
        let &[name, value] = pair else {
            return Err(malformed("extension without a value"));
        };
        match name {
            "raddr" if related_address.is_some() => return Err(malformed("raddr twice")),
            "raddr" => related_address = Some(Redacted::new(Address::parse(value)?)),
            "rport" if related_port.is_some() => return Err(malformed("rport twice")),
            "rport" => related_port = Some(value.parse().map_err(|_| malformed("rport"))?),
            "tcptype" if tcp_type.is_some() => return Err(malformed("tcptype twice")),
            "tcptype" => tcp_type = Some(value.to_owned()),
            _ => extensions.push((name.to_owned(), Redacted::new(value.to_owned()))),
        }
    }
    if !pairs.remainder().is_empty() {
        return Err(malformed("extension without a value"));
    }
    if related_address.is_some() != related_port.is_some() {
        return Err(malformed("raddr and rport must come together"));
    }

    Ok(Candidate {
        foundation: foundation.to_owned(),
        component,
        transport,
        priority,
        address: Redacted::new(address),
        port,
        kind,
        related_address,
        related_port,
        tcp_type,
        extensions,
    })
}

/// Checks that a candidate line may be signalled: a UDP `typ relay`
/// candidate whose address is one of `allowed_relay_ips` (any IP if the list
/// is empty; never a name), whose `raddr` is absent or unspecified, and
/// whose other fields hold no address literal. Nothing is rewritten; see the
/// [module docs](super) for the scrub-then-check policy.
///
/// # Errors
///
/// The first [`Violation`] found, in this order: grammar, TCP, type, address,
/// related address, other literals.
pub fn check_candidate(
    line: &str,
    allowed_relay_ips: &[IpAddr],
) -> Result<SafeCandidate, Violation> {
    let candidate = parse_candidate(line)?;
    if candidate.transport == Transport::Tcp || candidate.tcp_type.is_some() {
        return Err(Violation::Tcp);
    }
    if candidate.kind != CandidateType::Relay {
        return Err(Violation::NotRelay {
            kind: candidate.kind,
        });
    }
    match candidate.address.expose() {
        Address::Ip(ip) => {
            if !allowed_relay_ips.is_empty() && !is_allowed_relay(*ip, allowed_relay_ips) {
                return Err(Violation::RelayNotAllowed {
                    address: Redacted::new(*ip),
                });
            }
        }
        Address::Mdns(name) => {
            return Err(Violation::MdnsAddress {
                name: Redacted::new(name.clone()),
            });
        }
        Address::Hostname(name) => {
            return Err(Violation::HostnameAddress {
                name: Redacted::new(name.clone()),
            });
        }
    }
    if let Some(related) = &candidate.related_address {
        let harmless =
            matches!(related.expose(), Address::Ip(ip) if ip.to_canonical().is_unspecified());
        if !harmless {
            return Err(Violation::RelatedAddress {
                address: related.clone(),
            });
        }
    }
    for (name, value) in &candidate.extensions {
        for text in [name.as_str(), value.expose().as_str()] {
            if let Some(found) = literal::find_foreign(text, allowed_relay_ips) {
                return Err(Violation::AddressLiteral {
                    literal: Redacted::new(found.to_owned()),
                });
            }
        }
    }
    Ok(SafeCandidate {
        line: Redacted::new(line.to_owned()),
        candidate,
    })
}

/// Rewrites a candidate's `raddr`/`rport` to `0.0.0.0 0`, for callers whose
/// WebRTC stack puts the local socket address there (webrtc-rs 0.20+).
/// Everything else is kept; a line without `raddr`/`rport`, or one too short
/// to be a candidate, comes back unchanged. Run [`check_candidate`] on the
/// result: scrubbing does not make a host or srflx candidate safe.
pub fn scrub_related_address(line: &str) -> String {
    let (prefix, body) = match line.strip_prefix(CANDIDATE_PREFIX) {
        Some(body) => (CANDIDATE_PREFIX, body),
        None => ("", line),
    };
    let mut tokens: Vec<&str> = body.split_ascii_whitespace().collect();
    if tokens.len() < 8 {
        return line.to_owned();
    }
    let mut changed = false;
    let mut name = 8;
    while name + 1 < tokens.len() {
        let replacement = match tokens[name] {
            "raddr" => "0.0.0.0",
            "rport" => "0",
            _ => {
                name += 2;
                continue;
            }
        };
        tokens[name + 1] = replacement;
        changed = true;
        name += 2;
    }
    if changed {
        format!("{prefix}{}", tokens.join(" "))
    } else {
        line.to_owned()
    }
}
