//! The peer seam: one relay-only WebRTC audio connection.
//!
//! [`Peer::new`] returns the handle and its one event stream. Every call
//! goes through a TURN relay, always: the ICE transport policy is `relay`,
//! mDNS candidates are off, and nothing but relay candidates is ever
//! gathered. On top of that, every candidate and description the peer hands
//! out has passed the [privacy checks](voicemeet_proto::privacy) first
//! (scrub `raddr`, then check); anything that fails is dropped and reported
//! as [`PeerEvent::PrivacyViolation`] or
//! [`Error::PrivacyViolation`](crate::Error::PrivacyViolation),
//! never emitted.
//!
//! # Roles and generations
//!
//! The matchmaker assigns roles (PROTOCOLS.md §4.6): only the
//! [`Role::Offerer`] creates offers, including ICE-restart offers; the
//! [`Role::Answerer`] only answers. No perfect negotiation, no rollback.
//!
//! Each negotiation has a generation, which the signalling envelope carries
//! (`gen`): 0 for the first offer, and one more for every ICE restart.
//! Descriptions ([`Sdp`]) and candidates carry it. Remote candidates that
//! arrive before the remote description of their generation are buffered and
//! added right after it is set; candidates of older generations are dropped.
//!
//! # Run loop
//!
//! ```text
//!  offerer                               answerer
//!  create_offer(false) ── Sdp{gen 0} ──► accept_offer ─┐
//!             ◄──────────── Sdp{gen 0} ── (answer) ◄───┘
//!  accept_answer
//!  LocalCandidate{gen} ──────────────► add_remote_candidate(init, gen)
//!  add_remote_candidate ◄─────────────── LocalCandidate{gen}
//!  ... Connected, RemoteAudio(track) on both sides ...
//!  restart_ice() ── Sdp{gen 1} ──► accept_offer ... as above
//! ```
//!
//! # Why the 0.17 line, and where it lives
//!
//! See `docs/decisions/0001-webrtc-0.17.md` and MACHINE.md: 0.17 connects
//! within milliseconds on a relay with the relay acceptance wait set to 0,
//! and its relay candidates carry `raddr 0.0.0.0`. Everything that touches
//! the `webrtc` crate is in `webrtc017.rs`; the rest of this module (URL
//! filtering, candidate buffering, the privacy gate) is plain logic, so a
//! move to the 0.2x line replaces one file.

mod candidates;
mod servers;
mod webrtc017;

use std::net::IpAddr;
use std::time::Duration;

use voicemeet_proto::Redacted;
use voicemeet_proto::privacy::Violation;

use crate::backend::IceServer;

pub use candidates::{MAX_BUFFERED_CANDIDATES, RemoteCandidate};
pub use servers::{DEFAULT_TURN_PORT, relay_ips_from_urls};
pub use voicemeet_proto::signal::CandidateInit;
pub use webrtc017::{
    AudioPacket, GATHERING_SETTLE_TIMEOUT, LocalAudio, OPUS_PAYLOAD_TYPE, Peer, RED_PAYLOAD_TYPE,
    RemoteAudio, RemoteReport,
};

/// How long a connection may take, from the first offer or answer (or an
/// ICE restart) to `Connected`, before [`PeerEvent::ConnectTimeout`]. A
/// relay-to-relay connection on a real network needs a few round trips
/// (TURN allocation, permissions, ICE checks, DTLS): well under 2 s. A wrong
/// TURN credential never fails on its own in webrtc-rs 0.17 (it sits in
/// "checking"), so this bound is what turns it into an error.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Bound on resolving TURN host names to learn the relay IPs (only for
/// URLs that name a host rather than an IP): a DNS answer takes
/// milliseconds; seconds mean the resolver is unreachable.
pub const TURN_LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Capacity of the event stream [`Peer::new`] returns. A call produces a
/// handful of events per negotiation (a few candidates, state changes); 64
/// absorbs a slow consumer. When full, the peer's internal callbacks wait:
/// the consumer must keep reading.
pub const EVENT_CAPACITY: usize = 64;

/// Who creates offers: assigned by the matchmaker (PROTOCOLS.md §4.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Creates every offer, including ICE-restart offers.
    Offerer,
    /// Only answers.
    Answerer,
}

/// Which IP addresses local relay candidates (and any address in the local
/// SDP) may carry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RelayIps {
    /// The IPs of the TURN URLs: IP literals as written, host names resolved
    /// (within [`TURN_LOOKUP_TIMEOUT`]). Right when the relay allocates on
    /// the address clients reach it at: our embedded relay, coturn with
    /// `--relay-ip` (or `--external-ip`) equal to its listening IP.
    #[default]
    FromUrls,
    /// Exactly these IPs (a relay that allocates elsewhere). An empty list
    /// means the same as [`AnyAddress`](Self::AnyAddress).
    Exactly(Vec<IpAddr>),
    /// Any IP, as long as the candidate is a UDP relay candidate with an
    /// unspecified `raddr`; SDP addresses must then be unspecified.
    AnyAddress,
}

/// How to build a [`Peer`].
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// The TURN servers. Only `turn:` URLs over UDP are used (webrtc-rs
    /// 0.17 relays through nothing else); `turns:`, `?transport=tcp`, STUN,
    /// IPv6 literal hosts, and entries without a username or credential
    /// are skipped (counted in a debug log, never printed: URLs name hosts).
    pub ice_servers: Vec<IceServer>,
    /// Offerer or answerer.
    pub role: Role,
    /// See [`DEFAULT_CONNECT_TIMEOUT`].
    pub connect_timeout: Duration,
    /// See [`RelayIps`].
    pub relay_ips: RelayIps,
}

impl PeerConfig {
    /// A configuration with the default timeout and relay IPs from the URLs.
    pub fn new(ice_servers: Vec<IceServer>, role: Role) -> Self {
        Self {
            ice_servers,
            role,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            relay_ips: RelayIps::FromUrls,
        }
    }
}

/// A session description of one negotiation generation, checked for
/// privacy if it is ours. `Debug` does not print the SDP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sdp {
    /// The SDP text.
    pub text: Redacted<String>,
    /// The negotiation generation (the signalling envelope's `gen`).
    pub generation: u32,
}

impl Sdp {
    /// A description received over signalling.
    pub fn new(text: impl Into<String>, generation: u32) -> Self {
        Self {
            text: Redacted::new(text.into()),
            generation,
        }
    }
}

/// What a [`Peer`] reports, in order, on the stream from [`Peer::new`]. The
/// stream ends after [`Peer::close`].
#[derive(Debug)]
#[non_exhaustive]
pub enum PeerEvent {
    /// A local candidate to signal to the other side: a UDP relay candidate
    /// on an allowed relay IP with `raddr 0.0.0.0 rport 0`, already checked.
    LocalCandidate {
        /// The candidate, `RTCIceCandidateInit`-shaped (`sdpMid` is left
        /// out: the single audio section is `sdpMLineIndex` 0).
        candidate: CandidateInit,
        /// The generation it belongs to.
        generation: u32,
    },
    /// Gathering of this generation is done: no more local candidates for
    /// it (send `end_of_candidates`). Also comes when gathering found
    /// nothing, e.g. with refused TURN credentials.
    GatheringComplete {
        /// The generation.
        generation: u32,
    },
    /// ICE and DTLS are up: media flows. Comes again after an ICE restart
    /// (or a `Disconnected`) recovers.
    Connected,
    /// Connectivity was lost; ICE may still recover by itself.
    Disconnected,
    /// ICE gave up. The offerer may try [`Peer::restart_ice`].
    Failed,
    /// Not connected within the connect timeout after the first offer or
    /// answer, or after an ICE restart. Reported once per attempt; the peer
    /// keeps trying, so the caller decides (usually: hang up).
    ConnectTimeout {
        /// The timeout that ran out.
        after: Duration,
    },
    /// The other side's audio track: read it with a
    /// [`receive_task`](crate::audio::receive_task).
    RemoteAudio(RemoteAudio),
    /// A local candidate failed the privacy check and was dropped, not
    /// signalled. A bug (or a TURN server handing out unexpected
    /// addresses); the call may still work with the remaining candidates.
    PrivacyViolation {
        /// The rule it broke (prints no address).
        violation: Violation,
        /// The generation the candidate belonged to.
        generation: u32,
    },
}
