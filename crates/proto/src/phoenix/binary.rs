//! Binary framings of vsn 2.0.0: the user-broadcast push (kind 3, client →
//! server) and the user broadcast (kind 4, server → client).
//!
//! ```text
//! kind 3: 0x03 | join_ref_len | ref_len | topic_len | event_len | metadata_len | encoding
//!         join_ref | ref | topic | event | metadata | payload (rest of frame)
//! kind 4: 0x04 | topic_len | event_len | metadata_len | encoding
//!         topic | event | metadata | payload (rest of frame)
//! ```
//!
//! Every length is one byte, strings are UTF-8, metadata is JSON or empty,
//! and the encoding byte says whether the payload is raw bytes (0) or JSON
//! (1). A null ref is sent as an empty one, so an empty ref reads as `None`.

use std::borrow::Cow;

use super::error::{DecodeError, EncodeError, Field};
use super::event;
use super::message::{Broadcast, BroadcastBody, Message, Payload};

const KIND_USER_BROADCAST_PUSH: u8 = 3;
const KIND_USER_BROADCAST: u8 = 4;
const ENCODING_BINARY: u8 = 0;
const ENCODING_JSON: u8 = 1;

pub(super) fn decode(frame: &[u8]) -> Result<Message, DecodeError> {
    match frame.first() {
        None => Err(DecodeError::EmptyFrame),
        Some(&KIND_USER_BROADCAST_PUSH) => decode_push(frame),
        Some(&KIND_USER_BROADCAST) => decode_broadcast(frame),
        Some(&kind) => Err(DecodeError::UnsupportedKind(kind)),
    }
}

fn decode_push(frame: &[u8]) -> Result<Message, DecodeError> {
    let mut reader = Reader { rest: frame };
    let [
        _kind,
        join_ref_len,
        ref_len,
        topic_len,
        event_len,
        metadata_len,
        encoding,
    ] = reader.header()?;
    let json = is_json(encoding)?;
    let join_ref = reader.string(join_ref_len, Field::JoinRef)?;
    let msg_ref = reader.string(ref_len, Field::Ref)?;
    let topic = reader.string(topic_len, Field::Topic)?;
    let broadcast = reader.broadcast(event_len, metadata_len, json)?;
    Ok(Message {
        join_ref: non_empty(join_ref),
        msg_ref: non_empty(msg_ref),
        topic: topic.to_owned(),
        event: event::BROADCAST.to_owned(),
        payload: Payload::Broadcast(broadcast),
    })
}

fn decode_broadcast(frame: &[u8]) -> Result<Message, DecodeError> {
    let mut reader = Reader { rest: frame };
    let [_kind, topic_len, event_len, metadata_len, encoding] = reader.header()?;
    let json = is_json(encoding)?;
    let topic = reader.string(topic_len, Field::Topic)?;
    let broadcast = reader.broadcast(event_len, metadata_len, json)?;
    Ok(Message::broadcast(topic, broadcast))
}

/// Kind 3, the client's binary form of a `broadcast` push. A `None` ref is
/// sent empty, as realtime-js does.
///
/// # Errors
/// [`EncodeError::FieldTooLong`] if a ref, the topic, the event or the
/// serialized metadata is over 255 bytes.
pub fn encode_user_broadcast_push(
    join_ref: Option<&str>,
    msg_ref: Option<&str>,
    topic: &str,
    broadcast: &Broadcast,
) -> Result<Vec<u8>, EncodeError> {
    let join_ref = join_ref.unwrap_or_default().as_bytes();
    let msg_ref = msg_ref.unwrap_or_default().as_bytes();
    let tail = Tail::new(broadcast);
    let header = [
        KIND_USER_BROADCAST_PUSH,
        len(Field::JoinRef, join_ref)?,
        len(Field::Ref, msg_ref)?,
        len(Field::Topic, topic.as_bytes())?,
        len(Field::Event, tail.event)?,
        len(Field::Metadata, &tail.metadata)?,
        tail.encoding,
    ];
    let mut out = Vec::with_capacity(
        header.len() + join_ref.len() + msg_ref.len() + topic.len() + tail.len(),
    );
    out.extend_from_slice(&header);
    out.extend_from_slice(join_ref);
    out.extend_from_slice(msg_ref);
    out.extend_from_slice(topic.as_bytes());
    tail.write(&mut out);
    Ok(out)
}

/// Kind 4, the server's binary form of a fastlane `broadcast`.
pub(super) fn encode_user_broadcast(
    topic: &str,
    broadcast: &Broadcast,
) -> Result<Vec<u8>, EncodeError> {
    let tail = Tail::new(broadcast);
    let header = [
        KIND_USER_BROADCAST,
        len(Field::Topic, topic.as_bytes())?,
        len(Field::Event, tail.event)?,
        len(Field::Metadata, &tail.metadata)?,
        tail.encoding,
    ];
    let mut out = Vec::with_capacity(header.len() + topic.len() + tail.len());
    out.extend_from_slice(&header);
    out.extend_from_slice(topic.as_bytes());
    tail.write(&mut out);
    Ok(out)
}

/// The part both kinds share: event, metadata and payload.
struct Tail<'a> {
    event: &'a [u8],
    metadata: Vec<u8>,
    encoding: u8,
    body: Cow<'a, [u8]>,
}

impl<'a> Tail<'a> {
    fn new(broadcast: &'a Broadcast) -> Self {
        let (encoding, body) = match &broadcast.body {
            BroadcastBody::Binary(bytes) => (ENCODING_BINARY, Cow::Borrowed(bytes.as_slice())),
            BroadcastBody::Json(value) => (ENCODING_JSON, Cow::Owned(json_bytes(value))),
        };
        Self {
            event: broadcast.event.as_bytes(),
            metadata: broadcast
                .metadata
                .as_ref()
                .map(json_bytes)
                .unwrap_or_default(),
            encoding,
            body,
        }
    }

    fn len(&self) -> usize {
        self.event.len() + self.metadata.len() + self.body.len()
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.event);
        out.extend_from_slice(&self.metadata);
        out.extend_from_slice(&self.body);
    }
}

fn json_bytes(value: &serde_json::Value) -> Vec<u8> {
    // Cannot fail: serde_json only fails on non-string map keys or a
    // `Serialize` impl that errors, and a `Value` has neither.
    serde_json::to_vec(value).expect("serializing a JSON value cannot fail")
}

fn len(field: Field, bytes: &[u8]) -> Result<u8, EncodeError> {
    u8::try_from(bytes.len()).map_err(|_| EncodeError::FieldTooLong {
        field,
        len: bytes.len(),
    })
}

fn is_json(encoding: u8) -> Result<bool, DecodeError> {
    match encoding {
        ENCODING_BINARY => Ok(false),
        ENCODING_JSON => Ok(true),
        other => Err(DecodeError::UnknownEncoding(other)),
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// Reads length-prefixed fields front to back; every read checks bounds.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn header<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let (header, rest) = self
            .rest
            .split_first_chunk::<N>()
            .ok_or(DecodeError::Truncated {
                field: Field::Header,
            })?;
        self.rest = rest;
        Ok(*header)
    }

    fn bytes(&mut self, len: u8, field: Field) -> Result<&'a [u8], DecodeError> {
        let (bytes, rest) = self
            .rest
            .split_at_checked(usize::from(len))
            .ok_or(DecodeError::Truncated { field })?;
        self.rest = rest;
        Ok(bytes)
    }

    fn string(&mut self, len: u8, field: Field) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(self.bytes(len, field)?).map_err(|_| DecodeError::InvalidUtf8 { field })
    }

    /// Reads event and metadata, then takes the rest of the frame as payload.
    fn broadcast(
        mut self,
        event_len: u8,
        metadata_len: u8,
        json: bool,
    ) -> Result<Broadcast, DecodeError> {
        let event = self.string(event_len, Field::Event)?.to_owned();
        let metadata = match self.bytes(metadata_len, Field::Metadata)? {
            [] => None,
            bytes => Some(parse_json(bytes, Field::Metadata)?),
        };
        let body = if json {
            BroadcastBody::Json(parse_json(self.rest, Field::Payload)?)
        } else {
            BroadcastBody::Binary(self.rest.to_vec())
        };
        Ok(Broadcast {
            event,
            metadata,
            body,
        })
    }
}

fn parse_json(bytes: &[u8], field: Field) -> Result<serde_json::Value, DecodeError> {
    serde_json::from_slice(bytes).map_err(|source| DecodeError::BinaryJson { field, source })
}
