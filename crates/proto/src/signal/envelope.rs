//! The wire format: one JSON envelope per Realtime broadcast.

use std::io;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Redacted;

/// The envelope version this code speaks (`"v":1`). A peer with another
/// version is not understood at all: its envelopes fail to decode.
pub const VERSION: u32 = 1;

/// The broadcast event name every envelope is sent with.
pub const EVENT: &str = "signal";

/// Largest encoded envelope. Hosted Realtime accepts broadcast payloads of
/// 256 KB on the Free plan and 3 MB otherwise (PROTOCOLS.md §1.9, §1.12), and
/// an oversized push is dropped silently; 32 KiB stays far below both even
/// after Phoenix framing, and holds the largest SDP or candidate batch the
/// other limits allow.
pub const MAX_ENVELOPE_BYTES: usize = 32 * 1024;

/// Largest SDP in an offer or answer. An audio-only webrtc-rs offer is about
/// 1.5 KiB; 16 KiB leaves room for more codecs or a video section, and JSON
/// escaping of its line breaks, within [`MAX_ENVELOPE_BYTES`].
pub const MAX_SDP_BYTES: usize = 16 * 1024;

/// Most candidates in one `candidates` envelope. A relay-only peer gathers
/// one or two candidates per TURN URL, so a whole gathering fits one batch;
/// 32 full-length lines (16 KiB) still fit [`MAX_ENVELOPE_BYTES`].
pub const MAX_CANDIDATES_PER_BATCH: usize = 32;

/// Longest candidate line. Real ones are about 100 bytes; RFC 8839
/// extensions and a long foundation stay well under 512.
pub const MAX_CANDIDATE_BYTES: usize = 512;

/// Longest `sdpMid`. webrtc-rs uses `"0"`; browsers use short tokens.
pub const MAX_SDP_MID_BYTES: usize = 32;

/// Longest call (match) id. Match ids are 32 hex digits.
pub const MAX_CALL_ID_BYTES: usize = 64;

/// Longest `bye` reason: a short machine-readable token, not prose.
pub const MAX_REASON_BYTES: usize = 64;

/// Most sequence numbers one `ack` carries, so an ack stays tiny; more
/// pending acks go out in several envelopes.
pub const MAX_ACK_SEQS: usize = 64;

/// One signalling message: what is broadcast with event [`EVENT`]. On the
/// wire: `{"v":1,"call":…,"gen":…,"seq":…,"body":{"type":…,…}}`.
///
/// `seq` numbers a sender's reliable messages from 1; acks, which are not
/// themselves acked, always carry `seq` 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The match id: which call this belongs to.
    pub call: String,
    /// The negotiation generation (`gen` on the wire); the offerer bumps it
    /// on every ICE restart.
    pub generation: u32,
    /// The sender's sequence number; 0 for acks, otherwise from 1 up.
    pub seq: u64,
    /// What the message says.
    pub body: Body,
}

/// The kinds of message. `Debug` redacts SDPs and candidates.
///
/// A `type` this version does not know is a decode error
/// ([`DecodeError::UnknownKind`]), to be counted and dropped: a later version
/// adds kinds by bumping the peer's expectations, never by crashing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// `{"type":"offer","sdp":…}`
    Offer {
        /// The session description.
        sdp: Redacted<String>,
    },
    /// `{"type":"answer","sdp":…}`
    Answer {
        /// The session description.
        sdp: Redacted<String>,
    },
    /// `{"type":"candidates","list":[{candidate,sdpMid,sdpMLineIndex},…]}`:
    /// a batch of trickled candidates, 1 to [`MAX_CANDIDATES_PER_BATCH`].
    Candidates {
        /// The candidates, in gathering order.
        list: Vec<CandidateInit>,
    },
    /// `{"type":"end_of_candidates"}`: the sender gathered all it will for
    /// this generation.
    EndOfCandidates,
    /// `{"type":"bye","reason":…}`: the sender ended the call.
    Bye {
        /// A short machine-readable token such as `hangup` or `skip`.
        reason: String,
    },
    /// `{"type":"ack","seqs":[…]}`: the sender received these sequence
    /// numbers. Sent and consumed by [`Session`](super::Session) only.
    Ack {
        /// 1 to [`MAX_ACK_SEQS`] sequence numbers, none of them 0.
        seqs: Vec<u64>,
    },
}

impl Body {
    /// The kind of this body.
    pub const fn kind(&self) -> Kind {
        match self {
            Self::Offer { .. } => Kind::Offer,
            Self::Answer { .. } => Kind::Answer,
            Self::Candidates { .. } => Kind::Candidates,
            Self::EndOfCandidates => Kind::EndOfCandidates,
            Self::Bye { .. } => Kind::Bye,
            Self::Ack { .. } => Kind::Ack,
        }
    }
}

/// The kind of a [`Body`], without its contents: safe to log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// [`Body::Offer`].
    Offer,
    /// [`Body::Answer`].
    Answer,
    /// [`Body::Candidates`].
    Candidates,
    /// [`Body::EndOfCandidates`].
    EndOfCandidates,
    /// [`Body::Bye`].
    Bye,
    /// [`Body::Ack`].
    Ack,
}

impl Kind {
    /// Every kind, in wire order.
    pub const ALL: [Self; 6] = [
        Self::Offer,
        Self::Answer,
        Self::Candidates,
        Self::EndOfCandidates,
        Self::Bye,
        Self::Ack,
    ];

    /// The `type` on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Offer => "offer",
            Self::Answer => "answer",
            Self::Candidates => "candidates",
            Self::EndOfCandidates => "end_of_candidates",
            Self::Bye => "bye",
            Self::Ack => "ack",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One candidate, shaped like `RTCIceCandidateInit` (PROTOCOLS.md §4.2)
/// without `usernameFragment`: the envelope's `gen` plays its part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CandidateInit {
    /// `candidate:…`; 1 to [`MAX_CANDIDATE_BYTES`] bytes.
    pub candidate: Redacted<String>,
    /// `sdpMid`; at most [`MAX_SDP_MID_BYTES`] bytes.
    pub sdp_mid: Option<String>,
    /// `sdpMLineIndex`.
    pub sdp_mline_index: Option<u16>,
}

impl CandidateInit {
    /// A candidate for the given media section.
    pub fn new(
        candidate: impl Into<String>,
        sdp_mid: Option<String>,
        sdp_mline_index: Option<u16>,
    ) -> Self {
        Self {
            candidate: Redacted::new(candidate.into()),
            sdp_mid,
            sdp_mline_index,
        }
    }
}

/// A rule an envelope breaks; [`encode`] refuses it and [`decode`] rejects
/// it. Not retryable: the envelope must change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidEnvelope {
    /// `call` is empty, longer than [`MAX_CALL_ID_BYTES`], or has characters
    /// other than ASCII letters, digits, `-` and `_`.
    #[error("invalid call id")]
    CallId,
    /// An ack whose `seq` is not 0, or another kind whose `seq` is 0.
    #[error("seq must be 0 for acks and at least 1 otherwise")]
    Seq,
    /// An offer or answer with an empty SDP.
    #[error("empty SDP")]
    EmptySdp,
    /// An SDP longer than [`MAX_SDP_BYTES`].
    #[error("SDP longer than {MAX_SDP_BYTES} bytes")]
    SdpTooLarge,
    /// A `candidates` envelope with no candidates.
    #[error("empty candidate batch")]
    EmptyBatch,
    /// More than [`MAX_CANDIDATES_PER_BATCH`] candidates.
    #[error("more than {MAX_CANDIDATES_PER_BATCH} candidates in one batch")]
    TooManyCandidates,
    /// An empty candidate line (end-of-candidates has its own kind).
    #[error("empty candidate line")]
    EmptyCandidate,
    /// A candidate line longer than [`MAX_CANDIDATE_BYTES`].
    #[error("candidate line longer than {MAX_CANDIDATE_BYTES} bytes")]
    CandidateTooLong,
    /// An `sdpMid` longer than [`MAX_SDP_MID_BYTES`].
    #[error("sdpMid longer than {MAX_SDP_MID_BYTES} bytes")]
    SdpMidTooLong,
    /// A `bye` reason that is empty, longer than [`MAX_REASON_BYTES`], or not
    /// printable ASCII.
    #[error("invalid bye reason")]
    Reason,
    /// An ack of nothing, or of seq 0.
    #[error("ack without valid sequence numbers")]
    EmptyAck,
    /// More than [`MAX_ACK_SEQS`] sequence numbers in one ack.
    #[error("more than {MAX_ACK_SEQS} sequence numbers in one ack")]
    TooManyAcks,
    /// The encoded envelope is longer than [`MAX_ENVELOPE_BYTES`].
    #[error("envelope longer than {MAX_ENVELOPE_BYTES} bytes")]
    TooLarge,
}

/// Why a received payload is not an envelope. Decoding never panics; every
/// malformed input ends up here. The caller counts it and drops the payload.
/// Not retryable. Nothing here prints the payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The payload is longer than [`MAX_ENVELOPE_BYTES`]; it was not parsed.
    #[error("payload longer than {MAX_ENVELOPE_BYTES} bytes")]
    TooLarge,
    /// Not JSON, or not an object with the envelope's fields and types.
    #[error("not a signal envelope")]
    Shape {
        /// serde_json's description, which may quote the payload.
        detail: Redacted<String>,
    },
    /// `v` is missing or not [`VERSION`].
    #[error("unsupported envelope version")]
    UnsupportedVersion,
    /// `body.type` is a kind this version does not know.
    #[error("unknown message kind")]
    UnknownKind,
    /// Well-formed JSON that breaks a rule of the envelope.
    #[error(transparent)]
    Invalid(#[from] InvalidEnvelope),
}

impl DecodeError {
    fn shape(error: &serde_json::Error) -> Self {
        Self::Shape {
            detail: Redacted::new(error.to_string()),
        }
    }
}

/// Encodes an envelope as the JSON text of a broadcast payload.
///
/// # Errors
///
/// The first rule the envelope breaks; nothing is encoded then.
pub fn encode(envelope: &Envelope) -> Result<String, InvalidEnvelope> {
    validate(envelope)?;
    let text = serde_json::to_string(&WireOut::from(envelope))
        .expect("serializing plain structs of strings and integers cannot fail");
    if text.len() > MAX_ENVELOPE_BYTES {
        return Err(InvalidEnvelope::TooLarge);
    }
    Ok(text)
}

/// Encodes an envelope as the JSON value of a broadcast payload.
///
/// # Errors
///
/// As [`encode`].
pub fn encode_value(envelope: &Envelope) -> Result<Value, InvalidEnvelope> {
    validate(envelope)?;
    let value = serde_json::to_value(WireOut::from(envelope))
        .expect("serializing plain structs of strings and integers cannot fail");
    if encoded_len(&value) > MAX_ENVELOPE_BYTES {
        return Err(InvalidEnvelope::TooLarge);
    }
    Ok(value)
}

/// Decodes the JSON text of a broadcast payload, strictly: unknown fields,
/// unknown kinds, a wrong version and broken limits are all errors.
///
/// # Errors
///
/// Whatever is wrong with it, as a [`DecodeError`].
pub fn decode(text: &str) -> Result<Envelope, DecodeError> {
    if text.len() > MAX_ENVELOPE_BYTES {
        return Err(DecodeError::TooLarge);
    }
    let value: Value = serde_json::from_str(text).map_err(|e| DecodeError::shape(&e))?;
    decode_checked(&value)
}

/// Decodes a broadcast payload that is already a JSON value, as the Phoenix
/// codec hands it over. Same rules as [`decode`]; the size limit applies to
/// the value's compact encoding.
///
/// # Errors
///
/// As [`decode`].
pub fn decode_value(value: &Value) -> Result<Envelope, DecodeError> {
    if encoded_len(value) > MAX_ENVELOPE_BYTES {
        return Err(DecodeError::TooLarge);
    }
    decode_checked(value)
}

fn decode_checked(value: &Value) -> Result<Envelope, DecodeError> {
    let Some(object) = value.as_object() else {
        return Err(DecodeError::Shape {
            detail: Redacted::new("not an object".into()),
        });
    };
    if object.get("v").and_then(Value::as_u64) != Some(u64::from(VERSION)) {
        return Err(DecodeError::UnsupportedVersion);
    }
    if let Some(kind) = object
        .get("body")
        .and_then(|body| body.get("type"))
        .and_then(Value::as_str)
        && !Kind::ALL.iter().any(|k| k.as_str() == kind)
    {
        return Err(DecodeError::UnknownKind);
    }
    let wire = WireIn::deserialize(value).map_err(|e| DecodeError::shape(&e))?;
    let envelope = Envelope::from(wire);
    validate(&envelope)?;
    Ok(envelope)
}

/// Checks every rule an envelope must follow, except the total size, which
/// needs the encoding.
pub(super) fn validate(envelope: &Envelope) -> Result<(), InvalidEnvelope> {
    let call_ok = (1..=MAX_CALL_ID_BYTES).contains(&envelope.call.len())
        && envelope
            .call
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !call_ok {
        return Err(InvalidEnvelope::CallId);
    }
    let is_ack = matches!(envelope.body, Body::Ack { .. });
    if is_ack != (envelope.seq == 0) {
        return Err(InvalidEnvelope::Seq);
    }
    validate_body(&envelope.body)
}

pub(super) fn validate_body(body: &Body) -> Result<(), InvalidEnvelope> {
    match body {
        Body::Offer { sdp } | Body::Answer { sdp } => validate_sdp(sdp.expose()),
        Body::Candidates { list } => {
            if list.is_empty() {
                return Err(InvalidEnvelope::EmptyBatch);
            }
            if list.len() > MAX_CANDIDATES_PER_BATCH {
                return Err(InvalidEnvelope::TooManyCandidates);
            }
            list.iter().try_for_each(validate_candidate)
        }
        Body::EndOfCandidates => Ok(()),
        Body::Bye { reason } => {
            let ok = (1..=MAX_REASON_BYTES).contains(&reason.len())
                && reason.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
            if ok {
                Ok(())
            } else {
                Err(InvalidEnvelope::Reason)
            }
        }
        Body::Ack { seqs } => {
            if seqs.is_empty() || seqs.contains(&0) {
                return Err(InvalidEnvelope::EmptyAck);
            }
            if seqs.len() > MAX_ACK_SEQS {
                return Err(InvalidEnvelope::TooManyAcks);
            }
            Ok(())
        }
    }
}

pub(super) fn validate_sdp(sdp: &str) -> Result<(), InvalidEnvelope> {
    match sdp.len() {
        0 => Err(InvalidEnvelope::EmptySdp),
        len if len > MAX_SDP_BYTES => Err(InvalidEnvelope::SdpTooLarge),
        _ => Ok(()),
    }
}

pub(super) fn validate_candidate(candidate: &CandidateInit) -> Result<(), InvalidEnvelope> {
    match candidate.candidate.expose().len() {
        0 => return Err(InvalidEnvelope::EmptyCandidate),
        len if len > MAX_CANDIDATE_BYTES => return Err(InvalidEnvelope::CandidateTooLong),
        _ => {}
    }
    if candidate
        .sdp_mid
        .as_ref()
        .is_some_and(|mid| mid.len() > MAX_SDP_MID_BYTES)
    {
        return Err(InvalidEnvelope::SdpMidTooLong);
    }
    Ok(())
}

/// The length of a value's compact JSON encoding, counted without building
/// the text; counting stops early once past the limit.
fn encoded_len(value: &Value) -> usize {
    struct Counter(usize);
    impl io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0 += buf.len();
            if self.0 > MAX_ENVELOPE_BYTES {
                return Err(io::Error::other("over the limit"));
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    // An error only means "past the limit", which the count already says.
    let _ = serde_json::to_writer(&mut counter, value);
    counter.0
}

/// Whether an envelope, once validated, encodes within
/// [`MAX_ENVELOPE_BYTES`].
pub(super) fn fits(envelope: &Envelope) -> bool {
    encode(envelope).is_ok()
}

// The wire shapes. Kept apart from the public types so that those can wrap
// sensitive strings in `Redacted`, and so that decoding is strict.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireIn {
    #[allow(dead_code)] // checked before deserializing
    v: u32,
    call: String,
    #[serde(rename = "gen")]
    generation: u32,
    seq: u64,
    body: BodyIn,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum BodyIn {
    Offer { sdp: String },
    Answer { sdp: String },
    Candidates { list: Vec<CandidateIn> },
    // A struct variant, not a unit one: serde lets unit variants of an
    // internally tagged enum ignore unknown fields.
    EndOfCandidates {},
    Bye { reason: String },
    Ack { seqs: Vec<u64> },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CandidateIn {
    candidate: String,
    #[serde(rename = "sdpMid")]
    sdp_mid: Option<String>,
    #[serde(rename = "sdpMLineIndex")]
    sdp_mline_index: Option<u16>,
}

impl From<WireIn> for Envelope {
    fn from(wire: WireIn) -> Self {
        let body = match wire.body {
            BodyIn::Offer { sdp } => Body::Offer {
                sdp: Redacted::new(sdp),
            },
            BodyIn::Answer { sdp } => Body::Answer {
                sdp: Redacted::new(sdp),
            },
            BodyIn::Candidates { list } => Body::Candidates {
                list: list
                    .into_iter()
                    .map(|c| CandidateInit::new(c.candidate, c.sdp_mid, c.sdp_mline_index))
                    .collect(),
            },
            BodyIn::EndOfCandidates {} => Body::EndOfCandidates,
            BodyIn::Bye { reason } => Body::Bye { reason },
            BodyIn::Ack { seqs } => Body::Ack { seqs },
        };
        Self {
            call: wire.call,
            generation: wire.generation,
            seq: wire.seq,
            body,
        }
    }
}

#[derive(Serialize)]
struct WireOut<'a> {
    v: u32,
    call: &'a str,
    #[serde(rename = "gen")]
    generation: u32,
    seq: u64,
    body: BodyOut<'a>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BodyOut<'a> {
    Offer { sdp: &'a str },
    Answer { sdp: &'a str },
    Candidates { list: Vec<CandidateOut<'a>> },
    EndOfCandidates,
    Bye { reason: &'a str },
    Ack { seqs: &'a [u64] },
}

#[derive(Serialize)]
struct CandidateOut<'a> {
    candidate: &'a str,
    #[serde(rename = "sdpMid")]
    sdp_mid: Option<&'a str>,
    #[serde(rename = "sdpMLineIndex")]
    sdp_mline_index: Option<u16>,
}

impl<'a> From<&'a Envelope> for WireOut<'a> {
    fn from(envelope: &'a Envelope) -> Self {
        let body = match &envelope.body {
            Body::Offer { sdp } => BodyOut::Offer { sdp: sdp.expose() },
            Body::Answer { sdp } => BodyOut::Answer { sdp: sdp.expose() },
            Body::Candidates { list } => BodyOut::Candidates {
                list: list
                    .iter()
                    .map(|c| CandidateOut {
                        candidate: c.candidate.expose(),
                        sdp_mid: c.sdp_mid.as_deref(),
                        sdp_mline_index: c.sdp_mline_index,
                    })
                    .collect(),
            },
            Body::EndOfCandidates => BodyOut::EndOfCandidates,
            Body::Bye { reason } => BodyOut::Bye { reason },
            Body::Ack { seqs } => BodyOut::Ack { seqs },
        };
        Self {
            v: VERSION,
            call: &envelope.call,
            generation: envelope.generation,
            seq: envelope.seq,
            body,
        }
    }
}
