//! The privacy gate on what the peer hands out, and the buffer for remote
//! candidates that come before their description. Plain logic.

use std::collections::VecDeque;
use std::net::IpAddr;

use voicemeet_proto::privacy::{self, SafeCandidate, Violation};
use voicemeet_proto::signal::CandidateInit;

/// Remote candidates held while their generation's description is missing.
/// Relay-only gathering yields one candidate per TURN URL (a handful per
/// generation); 64 leaves room for a few generations arriving early, while
/// bounding what a misbehaving remote can make us hold. When full, the
/// oldest goes.
pub const MAX_BUFFERED_CANDIDATES: usize = 64;

/// The one check a local candidate passes before it may be signalled:
/// `raddr`/`rport` are scrubbed (webrtc-rs 0.17 writes `raddr 0.0.0.0` and
/// the local port; later lines copy the local address there), then the line
/// must be a UDP relay candidate on an allowed relay IP (any IP if
/// `allowed` is empty).
pub(crate) fn outgoing_candidate_ok(
    line: &str,
    allowed: &[IpAddr],
) -> Result<SafeCandidate, Violation> {
    privacy::check_candidate(&privacy::scrub_related_address(line), allowed)
}

/// The check a local SDP passes before it is returned: `a=candidate` lines
/// scrubbed as in [`outgoing_candidate_ok`], then
/// [`check_sdp`](privacy::check_sdp). Returns the SDP to send.
pub(crate) fn outgoing_sdp_ok(sdp: &str, allowed: &[IpAddr]) -> Result<String, Violation> {
    let mut scrubbed = String::with_capacity(sdp.len());
    for line in sdp.split_inclusive('\n') {
        match line.strip_prefix("a=") {
            Some(value) if value.starts_with(privacy::CANDIDATE_PREFIX) => {
                let (body, ending) = split_line_ending(value);
                scrubbed.push_str("a=");
                scrubbed.push_str(&privacy::scrub_related_address(body));
                scrubbed.push_str(ending);
            }
            _ => scrubbed.push_str(line),
        }
    }
    privacy::check_sdp(&scrubbed, allowed)?;
    Ok(scrubbed)
}

/// Replaces every IP address (or `ip:port`, `[v6]:port`) in `text` with
/// `{REDACTED}`. For the WebRTC stack's error messages, which can quote an
/// SDP line or a candidate; they reach callers' logs as error details.
pub(crate) fn redact_addresses(text: &str) -> String {
    let is_separator = |c: char| c.is_whitespace() || ",;=()\"'<>/".contains(c);
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        let token_len = rest.find(is_separator).unwrap_or(rest.len());
        let (token, tail) = rest.split_at(token_len);
        if is_address(token) {
            out.push_str("{REDACTED}");
        } else {
            out.push_str(token);
        }
        let separator_len = tail.chars().next().map_or(0, char::len_utf8);
        out.push_str(&tail[..separator_len]);
        rest = &tail[separator_len..];
    }
    out
}

fn is_address(token: &str) -> bool {
    let token = token.trim_end_matches(['.', ':']);
    token.parse::<IpAddr>().is_ok()
        || token.parse::<std::net::SocketAddr>().is_ok()
        || token
            .strip_prefix('[')
            .and_then(|t| t.split(']').next())
            .is_some_and(|t| t.parse::<IpAddr>().is_ok())
}

fn split_line_ending(line: &str) -> (&str, &str) {
    let body = line.trim_end_matches(['\r', '\n']);
    (body, &line[body.len()..])
}

/// What [`Peer::add_remote_candidate`](super::Peer::add_remote_candidate)
/// did with a candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RemoteCandidate {
    /// Handed to ICE now: its generation's description is set.
    Added,
    /// Held until the remote description of its generation is set.
    Buffered,
    /// Dropped: its generation was superseded by an ICE restart.
    Stale,
    /// Dropped: not a UDP relay candidate with a harmless `raddr`. The other
    /// side is not relay-only (a bug or a tampered client); its addresses
    /// are not used.
    Refused(Violation),
}

/// What to do with a remote candidate, decided by [`RemoteCandidates`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Disposition {
    AddNow(CandidateInit),
    Buffered,
    Stale,
}

/// Per-generation bookkeeping of remote candidates: which generation is
/// current, whether its remote description is set, and what waits for one.
#[derive(Debug, Default)]
pub(crate) struct RemoteCandidates {
    /// The newest generation either side has moved to.
    current: u32,
    /// The generation whose remote description is set, if any.
    applied: Option<u32>,
    buffered: VecDeque<(u32, CandidateInit)>,
    /// Buffered candidates pushed out by [`MAX_BUFFERED_CANDIDATES`].
    overflowed: u64,
}

impl RemoteCandidates {
    /// A candidate of `generation` arrived.
    pub fn on_candidate(&mut self, candidate: CandidateInit, generation: u32) -> Disposition {
        if generation < self.current {
            return Disposition::Stale;
        }
        if generation == self.current && self.applied == Some(generation) {
            return Disposition::AddNow(candidate);
        }
        if self.buffered.len() >= MAX_BUFFERED_CANDIDATES {
            self.buffered.pop_front();
            self.overflowed += 1;
        }
        self.buffered.push_back((generation, candidate));
        Disposition::Buffered
    }

    /// This side moved to `generation` (an ICE-restart offer, or an offer
    /// of that generation is being applied): older buffered candidates go.
    pub fn advance(&mut self, generation: u32) {
        if generation > self.current {
            self.current = generation;
            self.buffered.retain(|(g, _)| *g >= generation);
        }
    }

    /// The remote description of `generation` is set: returns the buffered
    /// candidates of that generation, in arrival order, to add now.
    pub fn applied(&mut self, generation: u32) -> Vec<CandidateInit> {
        self.advance(generation);
        self.applied = Some(generation);
        let (now, later): (VecDeque<_>, VecDeque<_>) =
            self.buffered.drain(..).partition(|(g, _)| *g == generation);
        self.buffered = later;
        now.into_iter().map(|(_, c)| c).collect()
    }

    /// The newest generation.
    pub fn current(&self) -> u32 {
        self.current
    }

    /// How many are waiting.
    #[cfg(test)]
    pub fn buffered(&self) -> usize {
        self.buffered.len()
    }

    /// How many were pushed out by the capacity bound.
    pub fn overflowed(&self) -> u64 {
        self.overflowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RELAY: &str =
        "candidate:1 1 udp 16777215 203.0.113.7 40001 typ relay raddr 0.0.0.0 rport 52345";

    fn cand(n: u8) -> CandidateInit {
        CandidateInit::new(
            format!("candidate:{n} 1 udp 1 203.0.113.7 4000{n} typ relay"),
            None,
            Some(0),
        )
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn relay_candidates_pass_with_raddr_scrubbed() {
        let safe = outgoing_candidate_ok(RELAY, &[ip("203.0.113.7")]).expect("relay passes");
        assert!(
            safe.as_str().ends_with("raddr 0.0.0.0 rport 0"),
            "{}",
            safe.as_str()
        );
        let leaky = RELAY.replace("raddr 0.0.0.0", "raddr 192.168.1.20");
        let safe = outgoing_candidate_ok(&leaky, &[]).expect("scrubbed");
        assert!(!safe.as_str().contains("192.168"));
    }

    #[test]
    fn non_relay_or_foreign_relay_candidates_fail() {
        let host = "candidate:1 1 udp 2130706431 192.168.1.20 5000 typ host";
        assert!(matches!(
            outgoing_candidate_ok(host, &[]),
            Err(Violation::NotRelay { .. })
        ));
        assert!(matches!(
            outgoing_candidate_ok(RELAY, &[ip("198.51.100.1")]),
            Err(Violation::RelayNotAllowed { .. })
        ));
        let mdns = "candidate:1 1 udp 1 abc.local 5000 typ relay";
        assert!(outgoing_candidate_ok(mdns, &[]).is_err());
    }

    #[test]
    fn sdp_candidate_lines_are_scrubbed_then_checked() {
        let sdp = format!(
            "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
             c=IN IP4 0.0.0.0\r\na={}\r\na=end-of-candidates\r\n",
            RELAY.replace("raddr 0.0.0.0", "raddr 10.0.0.5")
        );
        let out = outgoing_sdp_ok(&sdp, &[ip("203.0.113.7")]).expect("passes once scrubbed");
        assert!(!out.contains("10.0.0.5"));
        assert!(out.contains("raddr 0.0.0.0 rport 0\r\na=end-of-candidates\r\n"));
        assert_eq!(out.lines().count(), sdp.lines().count());
        let leaky = sdp.replace("c=IN IP4 0.0.0.0", "c=IN IP4 192.168.1.20");
        assert!(outgoing_sdp_ok(&leaky, &[ip("203.0.113.7")]).is_err());
    }

    #[test]
    fn error_texts_lose_their_addresses() {
        let cases = [
            (
                "bad line: c=IN IP4 192.168.1.20",
                "bad line: c=IN IP4 {REDACTED}",
            ),
            ("dial 10.0.0.1:3478 failed.", "dial {REDACTED} failed."),
            (
                "peer [2001:db8::1]:9 (fe80::1) gone",
                "peer {REDACTED} ({REDACTED}) gone",
            ),
            ("addr=203.0.113.7,port=9", "addr={REDACTED},port=9"),
            (
                "version 1.2.3 and 12:30 stay",
                "version 1.2.3 and 12:30 stay",
            ),
            ("", ""),
        ];
        for (text, expected) in cases {
            assert_eq!(redact_addresses(text), expected);
        }
        assert!(!redact_addresses(RELAY).contains("203.0.113.7"));
    }

    #[test]
    fn candidates_wait_for_their_description() {
        let mut remote = RemoteCandidates::default();
        assert_eq!(remote.on_candidate(cand(1), 0), Disposition::Buffered);
        assert_eq!(remote.on_candidate(cand(2), 1), Disposition::Buffered);
        assert_eq!(remote.applied(0), vec![cand(1)]);
        assert_eq!(remote.buffered(), 1, "generation 1 still waits");
        assert_eq!(
            remote.on_candidate(cand(3), 0),
            Disposition::AddNow(cand(3))
        );
        assert_eq!(remote.applied(1), vec![cand(2)]);
        assert_eq!(remote.on_candidate(cand(4), 0), Disposition::Stale);
        assert_eq!(remote.current(), 1);
    }

    #[test]
    fn an_ice_restart_offer_drops_the_old_generation() {
        let mut remote = RemoteCandidates::default();
        assert!(remote.applied(0).is_empty());
        // The offerer restarts: gen 1 is current, its answer not set yet.
        remote.advance(1);
        assert_eq!(remote.on_candidate(cand(1), 0), Disposition::Stale);
        assert_eq!(remote.on_candidate(cand(2), 1), Disposition::Buffered);
        assert_eq!(remote.on_candidate(cand(3), 2), Disposition::Buffered);
        remote.advance(2);
        assert_eq!(remote.buffered(), 1, "gen 1 went with the move to gen 2");
        assert_eq!(remote.applied(2), vec![cand(3)]);
    }

    #[test]
    fn the_buffer_is_bounded() {
        let mut remote = RemoteCandidates::default();
        for n in 0..MAX_BUFFERED_CANDIDATES + 3 {
            remote.on_candidate(cand((n % 10) as u8), 0);
        }
        assert_eq!(remote.buffered(), MAX_BUFFERED_CANDIDATES);
        assert_eq!(remote.overflowed(), 3);
    }
}
