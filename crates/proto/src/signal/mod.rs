//! Our signalling protocol over Supabase Realtime broadcast.
//!
//! Realtime broadcast is fire-and-forget: a message may be dropped,
//! duplicated or reordered, and nobody says so. This module makes call
//! setup reliable on top of it anyway, and is the one place where anything
//! bound for the channel passes the [`privacy`](crate::privacy) checks.
//!
//! - [`Envelope`] is the wire format: one JSON object per broadcast with
//!   event [`EVENT`], versioned (`"v":1`), for one call (`call`), one
//!   negotiation generation (`gen`) and one sequence number (`seq`), holding
//!   a [`Body`]: `offer`, `answer`, a batch of `candidates`,
//!   `end_of_candidates`, `bye` or `ack`. [`encode`] and [`decode`] enforce
//!   strict shapes and the size limits ([`MAX_ENVELOPE_BYTES`] and friends).
//! - [`Session`] is the sans-IO state machine per call: numbering, acks,
//!   retransmission with backoff, give-up, deduplication, generations,
//!   candidate batching, and refusing anything that would leak an address.
//!   The codec itself knows no relay addresses and checks no privacy rule:
//!   encode only what a session's [`Session::poll_transmit`] returned.
//!
//! Start at [`Session`]; its docs describe the run loop.
//!
//! ```
//! use std::time::Duration;
//! use voicemeet_proto::signal::{self, Body, Config, Session};
//!
//! let relay = "203.0.113.7".parse()?;
//! let mut offerer = Session::new(Config::new("m1", vec![relay]))?;
//! let mut answerer = Session::new(Config::new("m1", vec![relay]))?;
//! let now = Duration::ZERO;
//!
//! let sdp = "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nc=IN IP4 0.0.0.0\r\n";
//! offerer.send(Body::Offer { sdp: sdp.to_owned().into() }, now)?;
//! let wire = signal::encode(&offerer.poll_transmit(now).expect("the offer"))?;
//!
//! let delivered = answerer.handle_incoming(signal::decode(&wire)?, now).expect("new");
//! assert!(matches!(delivered.body, Body::Offer { .. }));
//!
//! // The ack goes back after a short delay, and stops the retransmissions.
//! let later = now + signal::ACK_DELAY;
//! let ack = answerer.poll_transmit(later).expect("an ack");
//! assert!(offerer.handle_incoming(ack, later).is_none());
//! assert!(offerer.is_idle());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod envelope;
mod session;

#[cfg(test)]
mod tests;

pub use envelope::{
    Body, CandidateInit, DecodeError, EVENT, Envelope, InvalidEnvelope, Kind, MAX_ACK_SEQS,
    MAX_CALL_ID_BYTES, MAX_CANDIDATE_BYTES, MAX_CANDIDATES_PER_BATCH, MAX_ENVELOPE_BYTES,
    MAX_REASON_BYTES, MAX_SDP_BYTES, MAX_SDP_MID_BYTES, VERSION, decode, decode_value, encode,
    encode_value,
};
pub use session::{
    ACK_DELAY, ACK_REPEATS, CANDIDATE_LINGER, Config, Delivered, GenerationError, INITIAL_RTO,
    MAX_RETRANSMISSIONS, MAX_RTO, MAX_SEQ_AHEAD, Output, SendError, Session, Stats,
};
