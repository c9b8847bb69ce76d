//! Finding IP address literals in free text, failing safe: anything that
//! merely looks like an address counts as one.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::is_harmless;

/// The first address-like literal in `text` that is neither unspecified nor
/// an allowed relay address.
///
/// - IPv4: a maximal run of digits and dots with four consecutive non-empty
///   groups (`10.0.0.1`, but also `910.0.0.1` or `1.2.3.4.5`). It passes
///   only if the whole run, without leading or trailing dots, is a harmless
///   address.
/// - IPv6: a maximal run of hex digits, colons and dots with at least two
///   colons. It passes only if the whole run is a harmless address.
///
/// So a run that only contains an address (`x10.0.0.1y` does not: `x` ends
/// the run) counts as that address or as a malformed one, never as nothing.
pub(super) fn find_foreign<'a>(text: &'a str, allowed: &[IpAddr]) -> Option<&'a str> {
    let v4 = runs(text, |b| b.is_ascii_digit() || b == b'.').find_map(|run| {
        let run = run.trim_matches('.');
        if !has_four_groups(run) {
            return None;
        }
        match run.parse::<Ipv4Addr>() {
            Ok(ip) if is_harmless(IpAddr::V4(ip), allowed) => None,
            _ => Some(run),
        }
    });
    v4.or_else(|| {
        runs(text, |b| b.is_ascii_hexdigit() || b == b':' || b == b'.').find(|run| {
            run.bytes().filter(|&b| b == b':').count() >= 2
                && !matches!(run.parse::<Ipv6Addr>(), Ok(ip) if is_harmless(IpAddr::V6(ip), allowed))
        })
    })
}

/// Maximal runs of ASCII bytes for which `keep` holds.
fn runs(text: &str, keep: impl Fn(u8) -> bool) -> impl Iterator<Item = &str> {
    text.split(move |c: char| !(c.is_ascii() && keep(c as u8)))
        .filter(|run| !run.is_empty())
}

fn has_four_groups(run: &str) -> bool {
    let mut consecutive = 0;
    for group in run.split('.') {
        consecutive = if group.is_empty() { 0 } else { consecutive + 1 };
        if consecutive == 4 {
            return true;
        }
    }
    false
}
