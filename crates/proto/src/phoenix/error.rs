//! Errors of the codec. None of them is retryable: a frame that fails to
//! decode will fail again, and a message that fails to encode must be changed.

use std::fmt;

/// Which part of a frame an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Field {
    /// The fixed-size header of a binary frame.
    Header,
    /// `join_ref`.
    JoinRef,
    /// `ref`.
    Ref,
    /// `topic`.
    Topic,
    /// `event`; in a binary frame, the user event of the broadcast.
    Event,
    /// The metadata of a binary broadcast.
    Metadata,
    /// `payload`; in a binary frame, the user payload of the broadcast.
    Payload,
}

impl Field {
    /// The field's name as it appears on the wire (the JSON key).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Header => "header",
            Self::JoinRef => "join_ref",
            Self::Ref => "ref",
            Self::Topic => "topic",
            Self::Event => "event",
            Self::Metadata => "metadata",
            Self::Payload => "payload",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An inbound frame that is not a valid message. Decoding never panics:
/// every malformed input ends up here.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The frame is longer than the caller's limit, so it was not parsed.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// Length of the frame in bytes.
        len: usize,
        /// The limit the caller passed.
        max: usize,
    },
    /// A text frame is not JSON.
    #[error("text frame is not valid JSON")]
    Json(#[source] serde_json::Error),
    /// A vsn 1.0.0 text frame is JSON but not an object.
    #[error("expected a JSON object (vsn 1.0.0)")]
    NotAnObject,
    /// A vsn 2.0.0 text frame is JSON but not an array.
    #[error("expected a JSON array (vsn 2.0.0)")]
    NotAnArray,
    /// A vsn 2.0.0 array is shorter than `[join_ref, ref, topic, event, payload]`.
    #[error("expected at least 5 array elements, got {len}")]
    TooFewElements {
        /// Number of elements in the array.
        len: usize,
    },
    /// A vsn 1.0.0 object lacks a required key (`topic`, `event`, `payload`
    /// or `ref`; `ref` may be null but must be present).
    #[error("missing field `{0}`")]
    MissingField(Field),
    /// A field has the wrong JSON type: topic and event must be strings,
    /// refs strings or null.
    #[error("`{field}` must be {expected}")]
    WrongType {
        /// The offending field.
        field: Field,
        /// What the field must be, for the message.
        expected: &'static str,
    },
    /// A binary frame arrived on a vsn 1.0.0 socket, which has no binary
    /// framing.
    #[error("binary frames are not part of vsn 1.0.0")]
    BinaryInV1,
    /// A binary frame with no bytes at all.
    #[error("empty binary frame")]
    EmptyFrame,
    /// A binary kind this codec does not decode. Only the user-broadcast
    /// kinds 3 (push) and 4 (broadcast) are used by Realtime clients; the
    /// Phoenix kinds 0, 1 and 2 are rejected here.
    #[error("unsupported binary frame kind {0}")]
    UnsupportedKind(u8),
    /// The header or a length prefix runs past the end of the frame.
    #[error("binary frame ends inside `{field}`")]
    Truncated {
        /// The field being read when the bytes ran out.
        field: Field,
    },
    /// A string field of a binary frame is not UTF-8.
    #[error("`{field}` is not valid UTF-8")]
    InvalidUtf8 {
        /// The offending field.
        field: Field,
    },
    /// The payload-encoding byte of a binary frame is neither 0 (binary)
    /// nor 1 (JSON).
    #[error("unknown payload encoding {0}")]
    UnknownEncoding(u8),
    /// The metadata, or a payload marked as JSON, of a binary frame is not
    /// JSON.
    #[error("`{field}` of binary frame is not valid JSON")]
    BinaryJson {
        /// [`Field::Metadata`] or [`Field::Payload`].
        field: Field,
        /// What the JSON parser said.
        #[source]
        source: serde_json::Error,
    },
}

/// A message that cannot be put on the wire in the requested shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A field of a binary frame is longer than its one-byte length prefix
    /// can describe (255 bytes, counted as UTF-8 / serialized JSON).
    #[error("`{field}` is {len} bytes; binary frames allow at most 255")]
    FieldTooLong {
        /// The offending field.
        field: Field,
        /// Its length in bytes.
        len: usize,
    },
    /// A broadcast with a raw-bytes body has no JSON form, so it cannot be
    /// sent as text (which is all vsn 1.0.0 has).
    #[error("a binary broadcast body cannot be sent as JSON")]
    BinaryBodyAsJson,
    /// A [`Payload::Broadcast`](super::Payload::Broadcast) message whose
    /// event is not `"broadcast"`; the binary layouts have no slot for any
    /// other event.
    #[error("a user broadcast must have event \"broadcast\", not {0:?}")]
    NotBroadcastEvent(String),
}

/// The `vsn` query parameter names a serializer version this codec does
/// not speak.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported vsn {0:?}; expected \"1.0.0\" or \"2.0.0\"")]
pub struct UnsupportedVsn(pub String);
