//! The Phoenix Channels wire codec that Supabase Realtime speaks, for both
//! ends: the client in `voicemeet-core` and the local server in
//! `voicemeet-server`.
//!
//! Pure functions from frames to [`Message`]s and back; no sockets. Inbound
//! frames go through [`decode_text`] or [`decode_binary`]. Outbound ones go
//! through [`encode`] (server → client shapes) or [`encode_push`] (client →
//! server shapes). The socket's [`Vsn`] picks the framing: vsn 1.0.0 has
//! JSON objects only; vsn 2.0.0 has JSON arrays plus binary user broadcasts.
//!
//! # Broadcasts come in two framings
//!
//! A text push of event `broadcast` with payload
//! `{"type":"broadcast","event":E,"payload":P}` decodes to
//! [`Payload::Json`], and stays text for every subscriber, so the JSON map
//! its sender chose goes out unchanged. A binary kind-3 push decodes to
//! [`Payload::Broadcast`]; [`encode`] sends that as kind-4 binary to vsn
//! 2.0.0 subscribers and as the JSON object form to vsn 1.0.0 ones, or fails
//! with [`EncodeError::BinaryBodyAsJson`] if the body is raw bytes, which
//! vsn 1.0.0 cannot carry. This is how the Realtime server routes them too.
//! The server therefore fans out either kind the same way:
//!
//! ```
//! use voicemeet_proto::phoenix::{self, Frame, Message, Vsn, MAX_FRAME_BYTES};
//!
//! // realtime-js `send({type: "broadcast", event: "user-event", payload: {a: "b"}})`
//! let frame = [&[3, 2, 1, 3, 10, 0, 1][..], br#"101topuser-event{"a":"b"}"#].concat();
//! let push = phoenix::decode_binary(Vsn::V2, &frame, MAX_FRAME_BYTES)?;
//!
//! let out = Message::broadcast(push.topic.clone(), push.payload.clone());
//! assert!(matches!(phoenix::encode(Vsn::V2, &out)?, Frame::Binary(_)));
//! let Frame::Text(v1) = phoenix::encode(Vsn::V1, &out)? else { unreachable!() };
//! assert_eq!(
//!     serde_json::from_str::<serde_json::Value>(&v1)?,
//!     serde_json::json!({"topic": "top", "event": "broadcast", "ref": null,
//!         "payload": {"type": "broadcast", "event": "user-event", "payload": {"a": "b"}}}),
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Code that reads broadcasts sees both framings alike through
//! [`Message::as_broadcast`].

mod binary;
mod error;
mod message;
mod text;

#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;

pub use binary::encode_user_broadcast_push;
pub use error::{DecodeError, EncodeError, Field, UnsupportedVsn};
pub use message::{Broadcast, BroadcastBody, Message, Payload, Status};

/// A sane default for the `max_frame_bytes` argument of the decoders: the
/// Realtime server's websocket `max_frame_size`.
pub const MAX_FRAME_BYTES: usize = 5_000_000;

/// The topic of socket-level messages such as heartbeats.
pub const PHOENIX_TOPIC: &str = "phoenix";

/// Event names used by Phoenix and Supabase Realtime.
pub mod event {
    /// Client joins a channel.
    pub const JOIN: &str = "phx_join";
    /// Client leaves a channel.
    pub const LEAVE: &str = "phx_leave";
    /// Server replies to a push with the same `ref`.
    pub const REPLY: &str = "phx_reply";
    /// Server closed the channel.
    pub const CLOSE: &str = "phx_close";
    /// The channel crashed on the server.
    pub const ERROR: &str = "phx_error";
    /// Socket keep-alive on topic [`PHOENIX_TOPIC`](super::PHOENIX_TOPIC).
    pub const HEARTBEAT: &str = "heartbeat";
    /// A user broadcast; also the `type` inside its JSON payload.
    pub const BROADCAST: &str = "broadcast";
    /// Client tracks or untracks presence.
    pub const PRESENCE: &str = "presence";
    /// Full presence state, pushed after join.
    pub const PRESENCE_STATE: &str = "presence_state";
    /// Presence joins and leaves.
    pub const PRESENCE_DIFF: &str = "presence_diff";
    /// Realtime status and error notices for a channel.
    pub const SYSTEM: &str = "system";
    /// Client refreshes its JWT on a joined channel; never replied to.
    pub const ACCESS_TOKEN: &str = "access_token";
}

/// The serializer version a socket negotiated with its `vsn` query value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Vsn {
    /// `1.0.0`: JSON objects; server frames carry no `join_ref`.
    V1,
    /// `2.0.0`: JSON arrays, plus binary user broadcasts.
    V2,
}

impl Vsn {
    /// The version for a `vsn` query value; a missing one means 1.0.0, as in
    /// Phoenix.
    ///
    /// # Errors
    /// [`UnsupportedVsn`] for anything but `1.0.0` and `2.0.0`.
    pub fn from_query(vsn: Option<&str>) -> Result<Self, UnsupportedVsn> {
        vsn.map_or(Ok(Self::V1), str::parse)
    }

    /// The wire spelling, e.g. `2.0.0`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::V1 => "1.0.0",
            Self::V2 => "2.0.0",
        }
    }
}

impl FromStr for Vsn {
    type Err = UnsupportedVsn;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "1.0.0" => Ok(Self::V1),
            "2.0.0" => Ok(Self::V2),
            other => Err(UnsupportedVsn(other.to_owned())),
        }
    }
}

impl fmt::Display for Vsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One websocket data frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A text frame.
    Text(String),
    /// A binary frame.
    Binary(Vec<u8>),
}

/// Decodes a text frame: a JSON object in vsn 1.0.0, an array in 2.0.0.
///
/// # Errors
/// A [`DecodeError`] for a frame over `max_frame_bytes` or any malformed
/// input.
pub fn decode_text(vsn: Vsn, text: &str, max_frame_bytes: usize) -> Result<Message, DecodeError> {
    check_size(text.len(), max_frame_bytes)?;
    match vsn {
        Vsn::V1 => text::decode_object(text),
        Vsn::V2 => text::decode_array(text),
    }
}

/// Decodes a binary frame: a user-broadcast push (kind 3, what a server
/// receives) or a user broadcast (kind 4, what a client receives). Both
/// decode to a `broadcast` message with a [`Payload::Broadcast`].
///
/// # Errors
/// [`DecodeError::BinaryInV1`] on a vsn 1.0.0 socket; otherwise a
/// [`DecodeError`] for a frame over `max_frame_bytes`, another kind, or any
/// malformed input.
pub fn decode_binary(
    vsn: Vsn,
    frame: &[u8],
    max_frame_bytes: usize,
) -> Result<Message, DecodeError> {
    if vsn == Vsn::V1 {
        return Err(DecodeError::BinaryInV1);
    }
    check_size(frame.len(), max_frame_bytes)?;
    binary::decode(frame)
}

/// Encodes a message in the shape a server sends:
/// - vsn 1.0.0: `{"topic","event","payload","ref"}`, without `join_ref`;
/// - vsn 2.0.0: `[join_ref, ref, topic, event, payload]`, or kind-4 binary
///   for a [`Payload::Broadcast`] (whose layout has no refs, so none are
///   sent).
///
/// # Errors
/// [`EncodeError::BinaryBodyAsJson`] for a raw-bytes broadcast on vsn
/// 1.0.0, [`EncodeError::NotBroadcastEvent`] for a [`Payload::Broadcast`]
/// under another event, [`EncodeError::FieldTooLong`] if kind 4 cannot hold
/// a field.
pub fn encode(vsn: Vsn, msg: &Message) -> Result<Frame, EncodeError> {
    match (vsn, &msg.payload) {
        (Vsn::V1, Payload::Json(payload)) => {
            Ok(Frame::Text(text::encode_object(msg, payload, false)))
        }
        (Vsn::V1, Payload::Broadcast(b)) => Ok(Frame::Text(text::encode_object(
            msg,
            &broadcast_json(msg, b)?,
            false,
        ))),
        (Vsn::V2, Payload::Json(payload)) => Ok(Frame::Text(text::encode_array(msg, payload))),
        (Vsn::V2, Payload::Broadcast(b)) => {
            check_broadcast_event(msg)?;
            binary::encode_user_broadcast(&msg.topic, b).map(Frame::Binary)
        }
    }
}

/// Encodes a message in the shape a client sends:
/// - vsn 1.0.0: `{"topic","event","payload","ref","join_ref"}`;
/// - vsn 2.0.0: `[join_ref, ref, topic, event, payload]`, or kind-3 binary
///   for a [`Payload::Broadcast`] (see [`encode_user_broadcast_push`]).
///
/// A JSON `broadcast` push stays text; the server accepts both framings.
///
/// # Errors
/// As for [`encode`], with kind 3 in place of kind 4.
pub fn encode_push(vsn: Vsn, msg: &Message) -> Result<Frame, EncodeError> {
    match (vsn, &msg.payload) {
        (Vsn::V1, Payload::Json(payload)) => {
            Ok(Frame::Text(text::encode_object(msg, payload, true)))
        }
        (Vsn::V1, Payload::Broadcast(b)) => Ok(Frame::Text(text::encode_object(
            msg,
            &broadcast_json(msg, b)?,
            true,
        ))),
        (Vsn::V2, Payload::Json(payload)) => Ok(Frame::Text(text::encode_array(msg, payload))),
        (Vsn::V2, Payload::Broadcast(b)) => {
            check_broadcast_event(msg)?;
            encode_user_broadcast_push(
                msg.join_ref.as_deref(),
                msg.msg_ref.as_deref(),
                &msg.topic,
                b,
            )
            .map(Frame::Binary)
        }
    }
}

fn check_size(len: usize, max: usize) -> Result<(), DecodeError> {
    if len > max {
        return Err(DecodeError::FrameTooLarge { len, max });
    }
    Ok(())
}

fn check_broadcast_event(msg: &Message) -> Result<(), EncodeError> {
    if msg.event != event::BROADCAST {
        return Err(EncodeError::NotBroadcastEvent(msg.event.clone()));
    }
    Ok(())
}

fn broadcast_json(msg: &Message, broadcast: &Broadcast) -> Result<serde_json::Value, EncodeError> {
    check_broadcast_event(msg)?;
    broadcast.to_json()
}
