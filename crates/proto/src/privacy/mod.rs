//! The privacy boundary: nothing that reveals a user's IP address may reach
//! the signalling channel.
//!
//! Every call goes through a TURN relay (`iceTransportPolicy: relay`), so the
//! only addresses a peer ever needs are the relay addresses of the TURN
//! allocation. This module holds the checks that enforce the rule *no code
//! path may put a host or server-reflexive address, or a local IP in
//! `raddr`, into anything sent to the signalling channel*:
//!
//! - [`check_candidate`] accepts one ICE candidate line only if it is a UDP
//!   `typ relay` candidate whose address is one of the allocation's relay
//!   addresses and whose related address (`raddr`) is absent or unspecified.
//! - [`check_sdp`] accepts a session description only if every candidate in
//!   it passes [`check_candidate`], its `c=`, `o=` and `a=rtcp:` addresses
//!   are unspecified (`0.0.0.0`/`::`) or relay addresses, and no other IPv4
//!   or IPv6 literal appears anywhere in it.
//!
//! The signalling [`Session`](crate::signal::Session) runs both on
//! everything it is asked to send and refuses what fails, so the call engine
//! cannot emit a leak even by mistake.
//!
//! # Policy: scrub, then check; never fix silently
//!
//! webrtc-rs 0.17 writes `raddr 0.0.0.0` on relay candidates (its relay
//! socket is bound to `0.0.0.0:0`), but later versions copy the local socket
//! address there (see `MACHINE.md`). A caller that wants to tolerate such a
//! stack runs [`scrub_related_address`] first, *explicitly*, and then the
//! check. The checks themselves never rewrite anything: a failed check means
//! a bug or a misconfiguration, so the value is dropped and the failure
//! reported (counted and logged without the value), never sent.
//!
//! # The allowed relay addresses
//!
//! The caller passes the relay addresses of its TURN allocation, as far as it
//! knows them. If the list is empty, any IP address is accepted as a relay
//! candidate's address (the candidate must still be `typ relay` with a
//! harmless `raddr`), but `c=`, `o=` and `a=rtcp:` lines, and any other
//! literal in an SDP, must then be unspecified.
//!
//! # No addresses in logs
//!
//! A [`Violation`] names the rule that failed. Any value it carries is
//! wrapped in [`Redacted`], so neither its `Display` nor its `Debug` ever
//! prints an address.

mod candidate;
mod literal;
mod sdp;

#[cfg(test)]
mod tests;

use std::net::IpAddr;

use crate::Redacted;

pub use candidate::{
    Address, CANDIDATE_PREFIX, Candidate, CandidateType, SafeCandidate, Transport, check_candidate,
    parse_candidate, scrub_related_address,
};
pub use sdp::check_sdp;

/// Why a candidate or an SDP must not be signalled. Each variant is one rule;
/// none of them prints the offending value. None is retryable: the same input
/// fails the same way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Violation {
    /// The candidate line does not follow the grammar of RFC 8839 §5.1
    /// (as webrtc-rs writes it), so nothing about it can be trusted.
    #[error("malformed candidate: {what}")]
    Malformed {
        /// Which part of the line is wrong.
        what: &'static str,
    },
    /// Only relay candidates may be signalled: host, server-reflexive and
    /// peer-reflexive ones carry the user's own addresses.
    #[error("candidate of type {kind} is not a relay candidate")]
    NotRelay {
        /// The type the candidate has.
        kind: CandidateType,
    },
    /// A TCP candidate (`tcp` transport or a `tcptype`). webrtc-rs 0.17
    /// relays over UDP only, so such a candidate is never a relay of ours.
    #[error("TCP candidates are never signalled")]
    Tcp,
    /// The candidate's address is an mDNS `.local` name: it stands for a
    /// host address on the user's network.
    #[error("candidate address is an mDNS .local name")]
    MdnsAddress {
        /// The name.
        name: Redacted<String>,
    },
    /// The candidate's address is a host name, not the relay's IP address.
    #[error("candidate address is a host name, not an IP address")]
    HostnameAddress {
        /// The name.
        name: Redacted<String>,
    },
    /// The relay candidate's address is not one of the allocation's relay
    /// addresses the caller allowed.
    #[error("relay address is not one of the allowed relay addresses")]
    RelayNotAllowed {
        /// The address.
        address: Redacted<IpAddr>,
    },
    /// The related address (`raddr`) is neither absent nor unspecified, so it
    /// may be the user's local address. Scrub first if that is acceptable
    /// (see [`scrub_related_address`]).
    #[error("related address (raddr) is not unspecified")]
    RelatedAddress {
        /// The related address.
        address: Redacted<Address>,
    },
    /// An IPv4 or IPv6 literal (or something that looks like one) that is
    /// neither unspecified nor an allowed relay address, outside the fields
    /// the other rules cover (e.g. a candidate extension or an SDP
    /// attribute).
    #[error("address literal that is neither unspecified nor an allowed relay address")]
    AddressLiteral {
        /// The literal as written.
        literal: Redacted<String>,
    },
    /// An SDP `c=` line whose address is neither unspecified nor an allowed
    /// relay address.
    #[error("c= connection address is neither unspecified nor an allowed relay address")]
    ConnectionAddress {
        /// The address as written.
        address: Redacted<String>,
    },
    /// An SDP `o=` line whose address is neither unspecified nor an allowed
    /// relay address (webrtc-rs writes `IN IP4 0.0.0.0`).
    #[error("o= origin address is neither unspecified nor an allowed relay address")]
    OriginAddress {
        /// The address as written.
        address: Redacted<String>,
    },
    /// An SDP `a=rtcp:` attribute whose address is neither unspecified nor
    /// an allowed relay address.
    #[error("a=rtcp address is neither unspecified nor an allowed relay address")]
    RtcpAddress {
        /// The address as written.
        address: Redacted<String>,
    },
    /// An SDP `c=`, `o=` or `a=rtcp:` line that does not have the fields its
    /// grammar requires.
    #[error("malformed SDP line: {what}")]
    MalformedSdp {
        /// Which line kind is wrong.
        what: &'static str,
    },
    /// A rule failed on one line of an SDP; `cause` says which.
    #[error("SDP line {line}: {cause}")]
    InSdp {
        /// The 1-based line number.
        line: usize,
        /// The rule that failed on that line.
        cause: Box<Violation>,
    },
}

impl Violation {
    /// The rule that failed, without the SDP line wrapper.
    pub fn root(&self) -> &Violation {
        match self {
            Self::InSdp { cause, .. } => cause.root(),
            Self::Malformed { .. }
            | Self::NotRelay { .. }
            | Self::Tcp
            | Self::MdnsAddress { .. }
            | Self::HostnameAddress { .. }
            | Self::RelayNotAllowed { .. }
            | Self::RelatedAddress { .. }
            | Self::AddressLiteral { .. }
            | Self::ConnectionAddress { .. }
            | Self::OriginAddress { .. }
            | Self::RtcpAddress { .. }
            | Self::MalformedSdp { .. } => self,
        }
    }
}

/// Whether `ip` is one of the `allowed` relay addresses. IPv4-mapped IPv6
/// addresses compare equal to their IPv4 form.
fn is_allowed_relay(ip: IpAddr, allowed: &[IpAddr]) -> bool {
    let ip = ip.to_canonical();
    allowed.iter().any(|a| a.to_canonical() == ip)
}

/// Whether `ip` may appear in anything signalled outside a candidate's own
/// address: the unspecified address, or an allowed relay address.
fn is_harmless(ip: IpAddr, allowed: &[IpAddr]) -> bool {
    ip.to_canonical().is_unspecified() || is_allowed_relay(ip, allowed)
}
