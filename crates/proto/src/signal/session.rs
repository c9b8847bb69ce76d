//! The per-call reliability layer: sequence numbers, acks, retransmission,
//! deduplication, generations, candidate batching, and the privacy gate.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::IpAddr;
use std::time::Duration;

use super::envelope::{
    self, Body, CandidateInit, Envelope, InvalidEnvelope, Kind, MAX_ACK_SEQS,
    MAX_CANDIDATES_PER_BATCH,
};
use crate::privacy::{self, Violation};

/// First retransmission timeout. A Realtime broadcast crosses the server in
/// tens of milliseconds, and the peer acks after at most [`ACK_DELAY`], so
/// 200 ms rarely retransmits needlessly yet recovers a loss quickly.
pub const INITIAL_RTO: Duration = Duration::from_millis(200);

/// The retransmission timeout doubles up to this cap, so a long outage is
/// probed every 2 s rather than ever more rarely.
pub const MAX_RTO: Duration = Duration::from_secs(2);

/// Retransmissions of one message before it is given up. With
/// [`INITIAL_RTO`] and [`MAX_RTO`] the sends go out at 0, 0.2, 0.6, 1.4, 3,
/// 5, 7, 9 and 11 s and the message is given up at 13 s: long enough to ride
/// out a Realtime reconnect, short enough that the user sees "connection
/// lost" instead of a call that never starts.
pub const MAX_RETRANSMISSIONS: u32 = 8;

/// How long a candidate waits for others to share its envelope. webrtc-rs
/// gathers a relay candidate per TURN URL within a few milliseconds of each
/// other; batching them saves Realtime messages, which the tenant limit
/// counts per message (PROTOCOLS.md §1.12), while 20 ms is nothing next to
/// the TURN allocation that produced them.
pub const CANDIDATE_LINGER: Duration = Duration::from_millis(20);

/// How long a received message waits for others to share its ack (an offer
/// is usually followed by candidates at once). Far below [`INITIAL_RTO`], so
/// the peer does not retransmit for it.
pub const ACK_DELAY: Duration = Duration::from_millis(10);

/// How many ack envelopes repeat each sequence number. An ack is never
/// retransmitted on its own, so repeating recent seqs in the next few acks
/// (at no extra message) makes a single lost ack cost no retransmission.
pub const ACK_REPEATS: u8 = 3;

/// How far ahead of the lowest seq not yet received a message may be. A peer
/// never has more messages in flight than a call's signalling produces, far
/// fewer than this; anything beyond is a bug or an attack, dropped unacked
/// and counted as malformed, which bounds the memory of deduplication.
pub const MAX_SEQ_AHEAD: u64 = 1024;

/// How a [`Session`] is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The match id; envelopes for any other call are dropped.
    pub call: String,
    /// The relay addresses of this side's TURN allocation. Every SDP and
    /// candidate sent is checked against them (see [`privacy`]); if empty,
    /// any relay candidate address passes, but SDP addresses must then be
    /// unspecified.
    pub allowed_relay_ips: Vec<IpAddr>,
    /// The starting negotiation generation.
    pub generation: u32,
    /// See [`INITIAL_RTO`].
    pub initial_rto: Duration,
    /// See [`MAX_RTO`].
    pub max_rto: Duration,
    /// See [`MAX_RETRANSMISSIONS`].
    pub max_retransmissions: u32,
    /// See [`CANDIDATE_LINGER`].
    pub candidate_linger: Duration,
    /// See [`ACK_DELAY`].
    pub ack_delay: Duration,
}

impl Config {
    /// The defaults for a call, starting at generation 0.
    pub fn new(call: impl Into<String>, allowed_relay_ips: Vec<IpAddr>) -> Self {
        Self {
            call: call.into(),
            allowed_relay_ips,
            generation: 0,
            initial_rto: INITIAL_RTO,
            max_rto: MAX_RTO,
            max_retransmissions: MAX_RETRANSMISSIONS,
            candidate_linger: CANDIDATE_LINGER,
            ack_delay: ACK_DELAY,
        }
    }
}

/// A message from the peer, delivered exactly once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The peer's sequence number.
    pub seq: u64,
    /// The generation it was sent in. For candidates this can be *newer*
    /// than [`Session::generation`] when they overtook their restart offer;
    /// buffer them until that offer is applied (PROTOCOLS.md §4.4).
    pub generation: u32,
    /// The message; never [`Body::Ack`].
    pub body: Body,
}

/// Something the session reports to the call engine, drained with
/// [`Session::poll_event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Output {
    /// A message went unacked through every retransmission and was dropped.
    /// The peer or the channel is gone: end the call ("connection lost").
    GaveUp {
        /// Its sequence number.
        seq: u64,
        /// Its kind.
        kind: Kind,
    },
}

/// Counters, for logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Reliable messages sent for the first time.
    pub sent: u64,
    /// Reliable messages the peer acked.
    pub acked: u64,
    /// Retransmissions.
    pub retransmissions: u64,
    /// Messages given up after [`Config::max_retransmissions`].
    pub given_up: u64,
    /// Unacked messages of an older generation dropped because the
    /// generation moved on.
    pub superseded: u64,
    /// Sends and queued candidates refused: privacy violations and broken
    /// limits.
    pub refused: u64,
    /// Messages delivered (each exactly once).
    pub delivered: u64,
    /// Repeats of messages already received: acked again, not delivered.
    pub duplicates: u64,
    /// Messages of a generation this side has left (or an answer to an
    /// offer it never made): acked, dropped.
    pub stale_gen: u64,
    /// Envelopes for another call id: dropped, not acked.
    pub wrong_call: u64,
    /// Payloads that did not decode or broke a rule, and seqs far beyond
    /// [`MAX_SEQ_AHEAD`]: dropped, not acked.
    pub malformed: u64,
}

/// Why the session refused to send something. Nothing was queued. Not
/// retryable: the same input fails the same way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The SDP or candidate would reveal an address: a bug or a
    /// misconfiguration upstream. Drop it and report it.
    #[error("refused by the privacy check: {0}")]
    Privacy(#[from] Violation),
    /// The message breaks an envelope limit.
    #[error("refused: {0}")]
    Invalid(#[from] InvalidEnvelope),
    /// Acks are the session's own business.
    #[error("acks are sent by the session itself")]
    AckIsInternal,
}

/// [`Session::set_generation`] was asked to go back. Not retryable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("generation {requested} is older than the current generation {current}")]
pub struct GenerationError {
    /// The session's generation, unchanged.
    pub current: u32,
    /// The generation asked for.
    pub requested: u32,
}

/// A reliable message not yet acked.
#[derive(Debug)]
struct Unacked {
    generation: u32,
    body: Body,
    /// When it is next due to be (re)transmitted.
    due: Duration,
    /// The wait after the last transmission.
    rto: Duration,
    /// How often it went out so far; 0 until the first transmission.
    transmissions: u32,
}

/// Sequence numbers received: all up to `floor`, plus those in `above`.
#[derive(Debug, Default)]
struct Received {
    floor: u64,
    above: BTreeSet<u64>,
}

impl Received {
    fn contains(&self, seq: u64) -> bool {
        seq <= self.floor || self.above.contains(&seq)
    }

    fn insert(&mut self, seq: u64) {
        self.above.insert(seq);
        while self.above.remove(&(self.floor + 1)) {
            self.floor += 1;
        }
    }
}

/// Reliable signalling for one call over a channel that may drop, duplicate
/// and reorder (a Realtime broadcast). Sans-IO: time is an argument
/// (`now`, a [`Duration`] since any fixed epoch), and the caller moves
/// envelopes to and from the channel.
///
/// - Every message but an ack gets the next sequence number and is
///   retransmitted until acked (RTO [`INITIAL_RTO`] doubling to [`MAX_RTO`]),
///   or given up after [`MAX_RETRANSMISSIONS`] ([`Output::GaveUp`]).
/// - Received messages are acked (batched for [`ACK_DELAY`]) and delivered
///   exactly once, in arrival order; duplicates are acked again.
/// - Candidates are batched ([`Session::queue_candidate`]).
/// - Every SDP and candidate sent passes [`privacy`] first, or is refused.
///
/// # Generations
///
/// The offerer calls [`Session::set_generation`] before an ICE-restart offer;
/// the answerer moves when an offer of a newer generation arrives. Either way
/// the side's own unacked messages of older generations (but a `bye`) are
/// dropped as superseded, and received messages of an older generation are
/// dropped as stale (acked, counted). A `bye` is delivered whatever its
/// generation.
///
/// # Run loop
///
/// After every input (`send`, `queue_candidate`, `end_of_candidates`,
/// `handle_*`, `set_generation`) and whenever the time from
/// [`Session::poll_timeout`] comes: broadcast every envelope
/// [`Session::poll_transmit`] returns until it returns `None`, then handle
/// every [`Session::poll_event`], then sleep until `poll_timeout()`.
#[derive(Debug)]
pub struct Session {
    config: Config,
    generation: u32,
    next_seq: u64,
    unacked: BTreeMap<u64, Unacked>,
    batch: Vec<CandidateInit>,
    batch_due: Option<Duration>,
    acks_pending: BTreeSet<u64>,
    acks_due: Option<Duration>,
    /// Seqs acked recently, with how many acks carried them.
    acks_recent: VecDeque<(u64, u8)>,
    received: Received,
    events: VecDeque<Output>,
    stats: Stats,
}

impl Session {
    /// A session for one call.
    ///
    /// # Errors
    ///
    /// [`InvalidEnvelope::CallId`] if the call id could not be sent.
    pub fn new(config: Config) -> Result<Self, InvalidEnvelope> {
        envelope::validate(&Envelope {
            call: config.call.clone(),
            generation: config.generation,
            seq: 1,
            body: Body::EndOfCandidates,
        })?;
        Ok(Self {
            generation: config.generation,
            config,
            next_seq: 1,
            unacked: BTreeMap::new(),
            batch: Vec::new(),
            batch_due: None,
            acks_pending: BTreeSet::new(),
            acks_due: None,
            acks_recent: VecDeque::new(),
            received: Received::default(),
            events: VecDeque::new(),
            stats: Stats::default(),
        })
    }

    /// The call id.
    pub fn call(&self) -> &str {
        &self.config.call
    }

    /// The current negotiation generation.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// The counters so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Whether nothing is left to do: everything sent was acked or given
    /// up, no candidate waits for its batch and no ack is owed. E.g. after a
    /// `bye`, the channel can be left once this holds.
    pub fn is_idle(&self) -> bool {
        self.unacked.is_empty() && self.batch.is_empty() && self.acks_pending.is_empty()
    }

    /// Replaces the relay addresses checked against, e.g. after a new TURN
    /// allocation for an ICE restart.
    pub fn set_allowed_relay_ips(&mut self, allowed_relay_ips: Vec<IpAddr>) {
        self.config.allowed_relay_ips = allowed_relay_ips;
    }

    /// Moves to a newer generation, before sending an ICE-restart offer.
    /// Unsent candidates and unacked messages of older generations (but a
    /// `bye`) are dropped. Asking for the current generation does nothing.
    ///
    /// # Errors
    ///
    /// [`GenerationError`] if `generation` is older than the current one.
    pub fn set_generation(&mut self, generation: u32) -> Result<(), GenerationError> {
        if generation < self.generation {
            return Err(GenerationError {
                current: self.generation,
                requested: generation,
            });
        }
        if generation > self.generation {
            self.advance_generation(generation);
        }
        Ok(())
    }

    /// Queues a message for reliable delivery in the current generation and
    /// returns its sequence number. An offer's or answer's SDP must pass
    /// [`privacy::check_sdp`], each candidate [`privacy::check_candidate`]
    /// (usually candidates go through [`Session::queue_candidate`] instead).
    /// `EndOfCandidates` is [`Session::end_of_candidates`].
    ///
    /// # Errors
    ///
    /// [`SendError`]; the refusal is counted in [`Stats::refused`] and
    /// nothing is queued.
    pub fn send(&mut self, body: Body, now: Duration) -> Result<u64, SendError> {
        let checked = self.check_outgoing(&body);
        if let Err(error) = checked {
            self.stats.refused += 1;
            return Err(error);
        }
        if matches!(body, Body::EndOfCandidates) {
            self.flush_batch(now);
        }
        Ok(self.enqueue(body, now))
    }

    /// Adds a candidate to the next `candidates` batch. The batch goes out
    /// when it holds [`MAX_CANDIDATES_PER_BATCH`] candidates or
    /// [`Config::candidate_linger`] after its first one, whichever is first.
    ///
    /// The candidate must pass [`privacy::check_candidate`] with the
    /// configured relay addresses as it is: the session never rewrites it.
    /// A caller whose stack fills `raddr` scrubs it first
    /// ([`privacy::scrub_related_address`]).
    ///
    /// # Errors
    ///
    /// [`SendError`]; the refusal is counted in [`Stats::refused`] and the
    /// candidate dropped.
    pub fn queue_candidate(
        &mut self,
        candidate: CandidateInit,
        now: Duration,
    ) -> Result<(), SendError> {
        let checked = envelope::validate_candidate(&candidate)
            .map_err(SendError::from)
            .and_then(|()| {
                privacy::check_candidate(
                    candidate.candidate.expose(),
                    &self.config.allowed_relay_ips,
                )
                .map(drop)
                .map_err(SendError::from)
            });
        if let Err(error) = checked {
            self.stats.refused += 1;
            return Err(error);
        }
        self.batch.push(candidate);
        if self.batch.len() >= MAX_CANDIDATES_PER_BATCH {
            self.flush_batch(now);
        } else if self.batch_due.is_none() {
            self.batch_due = Some(now + self.config.candidate_linger);
        }
        Ok(())
    }

    /// Sends the batched candidates now, then `end_of_candidates`, and
    /// returns the latter's sequence number. It goes out only once every
    /// earlier candidate batch of its generation is acked (or given up), so
    /// the peer never sees it before a candidate it follows.
    pub fn end_of_candidates(&mut self, now: Duration) -> u64 {
        self.flush_batch(now);
        self.enqueue(Body::EndOfCandidates, now)
    }

    /// Handles an envelope from the channel. Returns the message if it is
    /// new for this call and current; acks are consumed here.
    pub fn handle_incoming(&mut self, envelope: Envelope, now: Duration) -> Option<Delivered> {
        if envelope.call != self.config.call {
            self.stats.wrong_call += 1;
            return None;
        }
        if envelope::validate(&envelope).is_err() {
            self.stats.malformed += 1;
            return None;
        }
        let Envelope {
            generation,
            seq,
            body,
            ..
        } = envelope;
        if let Body::Ack { seqs } = &body {
            for seq in seqs {
                if self.unacked.remove(seq).is_some() {
                    self.stats.acked += 1;
                }
            }
            return None;
        }
        if self.received.contains(seq) {
            self.stats.duplicates += 1;
            self.owe_ack(seq, now);
            return None;
        }
        if seq > self.received.floor + MAX_SEQ_AHEAD {
            self.stats.malformed += 1;
            return None;
        }
        self.received.insert(seq);
        self.owe_ack(seq, now);

        let current = match body {
            Body::Bye { .. } => true,
            Body::Offer { .. } if generation > self.generation => {
                self.advance_generation(generation);
                true
            }
            // Newer candidates overtook their restart offer: deliver, the
            // engine buffers them until that offer is applied.
            Body::Candidates { .. } | Body::EndOfCandidates => generation >= self.generation,
            Body::Offer { .. } | Body::Answer { .. } => generation == self.generation,
            Body::Ack { .. } => unreachable!("acks returned above"),
        };
        if !current {
            self.stats.stale_gen += 1;
            return None;
        }
        self.stats.delivered += 1;
        Some(Delivered {
            seq,
            generation,
            body,
        })
    }

    /// Handles a broadcast payload as the Phoenix codec hands it over:
    /// decodes it, counts it as malformed if that fails, then
    /// [`Session::handle_incoming`].
    ///
    /// # Errors
    ///
    /// The [`envelope::DecodeError`], for logging; it is already counted.
    pub fn handle_payload(
        &mut self,
        payload: &serde_json::Value,
        now: Duration,
    ) -> Result<Option<Delivered>, envelope::DecodeError> {
        match envelope::decode_value(payload) {
            Ok(envelope) => Ok(self.handle_incoming(envelope, now)),
            Err(error) => {
                self.stats.malformed += 1;
                Err(error)
            }
        }
    }

    /// The next envelope to broadcast now, if any: owed acks first, then
    /// new messages and retransmissions in sequence order. Also runs the
    /// timers: flushes a lingering candidate batch and gives up messages
    /// whose last retransmission went unacked (see [`Session::poll_event`]).
    pub fn poll_transmit(&mut self, now: Duration) -> Option<Envelope> {
        if self.batch_due.is_some_and(|due| due <= now) {
            self.flush_batch(now);
        }
        self.give_up_expired(now);
        if self.acks_due.is_some_and(|due| due <= now) {
            return Some(self.build_ack(now));
        }
        let seq = self
            .unacked
            .iter()
            .find(|&(&seq, entry)| entry.due <= now && self.may_transmit(seq, entry))
            .map(|(&seq, _)| seq)?;
        let max_rto = self.config.max_rto;
        let entry = self.unacked.get_mut(&seq)?;
        if entry.transmissions == 0 {
            self.stats.sent += 1;
        } else {
            self.stats.retransmissions += 1;
            entry.rto = (entry.rto * 2).min(max_rto);
        }
        entry.transmissions += 1;
        entry.due = now + entry.rto;
        Some(Envelope {
            call: self.config.call.clone(),
            generation: entry.generation,
            seq,
            body: entry.body.clone(),
        })
    }

    /// The next report for the call engine, if any.
    pub fn poll_event(&mut self) -> Option<Output> {
        self.events.pop_front()
    }

    /// When [`Session::poll_transmit`] next has something to do; `None` if
    /// nothing is pending. A time in the past means "now".
    pub fn poll_timeout(&self) -> Option<Duration> {
        let retransmit = self
            .unacked
            .iter()
            .filter(|&(&seq, entry)| self.may_transmit(seq, entry))
            .map(|(_, entry)| entry.due)
            .min();
        [retransmit, self.batch_due, self.acks_due]
            .into_iter()
            .flatten()
            .min()
    }

    fn check_outgoing(&self, body: &Body) -> Result<(), SendError> {
        let allowed = &self.config.allowed_relay_ips;
        match body {
            Body::Ack { .. } => return Err(SendError::AckIsInternal),
            Body::Offer { sdp } | Body::Answer { sdp } => {
                envelope::validate_sdp(sdp.expose())?;
                privacy::check_sdp(sdp.expose(), allowed)?;
            }
            Body::Candidates { list } => {
                envelope::validate_body(body)?;
                for candidate in list {
                    privacy::check_candidate(candidate.candidate.expose(), allowed)?;
                }
            }
            Body::EndOfCandidates | Body::Bye { .. } => envelope::validate_body(body)?,
        }
        let probe = Envelope {
            call: self.config.call.clone(),
            generation: self.generation,
            seq: self.next_seq,
            body: body.clone(),
        };
        if !envelope::fits(&probe) {
            return Err(InvalidEnvelope::TooLarge.into());
        }
        Ok(())
    }

    fn enqueue(&mut self, body: Body, now: Duration) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.unacked.insert(
            seq,
            Unacked {
                generation: self.generation,
                body,
                due: now,
                rto: self.config.initial_rto,
                transmissions: 0,
            },
        );
        seq
    }

    fn flush_batch(&mut self, now: Duration) {
        self.batch_due = None;
        if self.batch.is_empty() {
            return;
        }
        let list = std::mem::take(&mut self.batch);
        // Every candidate passed validate_candidate and the privacy check
        // (printable ASCII without quotes, so no JSON escaping), and there
        // are at most MAX_CANDIDATES_PER_BATCH: the envelope fits.
        self.enqueue(Body::Candidates { list }, now);
    }

    /// An `end_of_candidates` waits for its generation's earlier candidate
    /// batches to be acked before its first transmission.
    fn may_transmit(&self, seq: u64, entry: &Unacked) -> bool {
        if entry.transmissions > 0 || !matches!(entry.body, Body::EndOfCandidates) {
            return true;
        }
        !self.unacked.range(..seq).any(|(_, earlier)| {
            earlier.generation == entry.generation
                && matches!(earlier.body, Body::Candidates { .. })
        })
    }

    fn give_up_expired(&mut self, now: Duration) {
        let limit = self.config.max_retransmissions;
        let expired: Vec<u64> = self
            .unacked
            .iter()
            .filter(|(_, entry)| entry.transmissions > limit && entry.due <= now)
            .map(|(&seq, _)| seq)
            .collect();
        for seq in expired {
            if let Some(entry) = self.unacked.remove(&seq) {
                self.stats.given_up += 1;
                self.events.push_back(Output::GaveUp {
                    seq,
                    kind: entry.body.kind(),
                });
            }
        }
    }

    fn advance_generation(&mut self, generation: u32) {
        self.generation = generation;
        self.batch.clear();
        self.batch_due = None;
        let before = self.unacked.len();
        self.unacked.retain(|_, entry| {
            entry.generation >= generation || matches!(entry.body, Body::Bye { .. })
        });
        self.stats.superseded += (before - self.unacked.len()) as u64;
    }

    fn owe_ack(&mut self, seq: u64, now: Duration) {
        self.acks_pending.insert(seq);
        if self.acks_pending.len() >= MAX_ACK_SEQS {
            self.acks_due = Some(now);
        } else if self.acks_due.is_none() {
            self.acks_due = Some(now + self.config.ack_delay);
        }
    }

    /// One ack envelope: owed seqs first, then recent ones repeated.
    fn build_ack(&mut self, now: Duration) -> Envelope {
        let mut seqs: Vec<u64> = Vec::with_capacity(MAX_ACK_SEQS);
        while seqs.len() < MAX_ACK_SEQS {
            let Some(seq) = self.acks_pending.pop_first() else {
                break;
            };
            seqs.push(seq);
        }
        let fresh = seqs.len();
        // Repeat recent seqs that went out fewer than ACK_REPEATS times.
        self.acks_recent
            .retain(|(seq, _)| !seqs[..fresh].contains(seq));
        for (seq, times) in &mut self.acks_recent {
            if seqs.len() == MAX_ACK_SEQS {
                break;
            }
            seqs.push(*seq);
            *times += 1;
        }
        self.acks_recent
            .extend(seqs[..fresh].iter().map(|&seq| (seq, 1)));
        self.acks_recent.retain(|&(_, times)| times < ACK_REPEATS);
        while self.acks_recent.len() > MAX_ACK_SEQS {
            self.acks_recent.pop_front();
        }
        self.acks_due = if self.acks_pending.is_empty() {
            None
        } else {
            Some(now)
        };
        Envelope {
            call: self.config.call.clone(),
            generation: self.generation,
            seq: 0,
            body: Body::Ack { seqs },
        }
    }
}
