//! Checking a whole session description before it is signalled.

use std::net::IpAddr;

use super::{CANDIDATE_PREFIX, Violation, check_candidate, is_harmless, literal};
use crate::Redacted;

/// Checks that an SDP may be signalled:
///
/// - every `a=candidate:` line passes [`check_candidate`];
/// - the address of every `c=` line, the `o=` line and every `a=rtcp:`
///   attribute is `0.0.0.0`, `::` or an allowed relay address (webrtc-rs
///   writes `o=- <id> <version> IN IP4 0.0.0.0` and `c=IN IP4 0.0.0.0`);
/// - no other line holds anything that looks like an IPv4 or IPv6 address
///   unless it is unspecified or an allowed relay address. The colon-hex
///   value of `a=fingerprint:` is the one exemption: it is a certificate
///   hash, not an address.
///
/// `a=end-of-candidates` and every other attribute are fine as long as they
/// hold no address. Lines end in `\n` or `\r\n`.
///
/// # Errors
///
/// The first failing line, as [`Violation::InSdp`] with its 1-based number
/// and the rule it broke. The SDP must then not be sent at all.
pub fn check_sdp(sdp: &str, allowed_relay_ips: &[IpAddr]) -> Result<(), Violation> {
    for (index, line) in sdp.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        check_line(line, allowed_relay_ips).map_err(|cause| Violation::InSdp {
            line: index + 1,
            cause: Box::new(cause),
        })?;
    }
    Ok(())
}

fn check_line(line: &str, allowed: &[IpAddr]) -> Result<(), Violation> {
    if let Some(value) = line.strip_prefix("a=")
        && value.starts_with(CANDIDATE_PREFIX)
    {
        // check_candidate covers every field of the line, including the
        // relay address, which is legitimately any IP when `allowed` is empty.
        return check_candidate(value, allowed).map(drop);
    }
    let mut scanned = line;
    if let Some(rest) = line.strip_prefix("c=") {
        connection(rest, allowed)?;
    } else if let Some(rest) = line.strip_prefix("o=") {
        origin(rest, allowed)?;
    } else if let Some(rest) = line.strip_prefix("a=rtcp:") {
        rtcp(rest, allowed)?;
    } else if let Some(rest) = line.strip_prefix("a=fingerprint:") {
        scanned = without_fingerprint(line, rest);
    }
    match literal::find_foreign(scanned, allowed) {
        Some(found) => Err(Violation::AddressLiteral {
            literal: Redacted::new(found.to_owned()),
        }),
        None => Ok(()),
    }
}

/// Whether `address` (an SDP `unicast-address`, possibly with `/ttl`) is an
/// IP address that may be signalled.
fn harmless_address(address: &str, allowed: &[IpAddr]) -> bool {
    let address = address.split('/').next().unwrap_or(address);
    address
        .parse::<IpAddr>()
        .is_ok_and(|ip| is_harmless(ip, allowed))
}

/// `c=<nettype> <addrtype> <connection-address>`
fn connection(rest: &str, allowed: &[IpAddr]) -> Result<(), Violation> {
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    let &[_, _, address] = fields.as_slice() else {
        return Err(Violation::MalformedSdp { what: "c= line" });
    };
    if harmless_address(address, allowed) {
        Ok(())
    } else {
        Err(Violation::ConnectionAddress {
            address: Redacted::new(address.to_owned()),
        })
    }
}

/// `o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>`
fn origin(rest: &str, allowed: &[IpAddr]) -> Result<(), Violation> {
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    let &[_, _, _, _, _, address] = fields.as_slice() else {
        return Err(Violation::MalformedSdp { what: "o= line" });
    };
    if harmless_address(address, allowed) {
        Ok(())
    } else {
        Err(Violation::OriginAddress {
            address: Redacted::new(address.to_owned()),
        })
    }
}

/// `a=rtcp:<port> [<nettype> <addrtype> <connection-address>]` (RFC 3605)
fn rtcp(rest: &str, allowed: &[IpAddr]) -> Result<(), Violation> {
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    match fields.as_slice() {
        [_port] => Ok(()),
        [_port, _, _, address] if harmless_address(address, allowed) => Ok(()),
        [_port, _, _, address] => Err(Violation::RtcpAddress {
            address: Redacted::new((*address).to_owned()),
        }),
        _ => Err(Violation::MalformedSdp {
            what: "a=rtcp line",
        }),
    }
}

/// `a=fingerprint:<hash-func> <XX:XX:…>`: the part of the line to scan for
/// literals. The hash is left out only if it really is colon-separated hex
/// pairs; anything else is scanned like any other attribute.
fn without_fingerprint<'a>(line: &'a str, rest: &str) -> &'a str {
    let Some((_, hash)) = rest.split_once(' ') else {
        return line;
    };
    let is_hash = hash
        .split(':')
        .all(|pair| pair.len() == 2 && pair.bytes().all(|b| b.is_ascii_hexdigit()));
    if is_hash {
        &line[..line.len() - hash.len()]
    } else {
        line
    }
}
