//! The message model shared by every framing, and builders for the messages
//! a Realtime server sends.

use std::borrow::Cow;
use std::fmt;

use serde_json::{Map, Value};

use super::error::EncodeError;
use super::event;

/// One Phoenix channel message, whatever framing it came in or goes out in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The `ref` of the join that opened the channel this message belongs
    /// to; `None` for fastlane broadcasts, heartbeats and vsn 1.0.0 server
    /// frames (which never carry it).
    pub join_ref: Option<String>,
    /// The push's own `ref`, echoed by the reply to it; `None` for pushes
    /// that expect no reply.
    pub msg_ref: Option<String>,
    /// The channel topic, e.g. `realtime:room1`, or `phoenix` for heartbeats.
    pub topic: String,
    /// The event, e.g. `phx_join`, `phx_reply`, `broadcast`.
    pub event: String,
    /// The payload.
    pub payload: Payload,
}

/// A message payload.
///
/// Text frames always carry [`Payload::Json`], even a text broadcast whose
/// JSON has the `{"type":"broadcast","event":..,"payload":..}` shape: kept as
/// JSON it re-encodes to exactly the map its sender chose. Binary
/// user-broadcast frames (kinds 3 and 4) carry [`Payload::Broadcast`], which
/// [`encode`](super::encode) sends as kind 4 to vsn 2.0.0 sockets. Use
/// [`Message::as_broadcast`] to read either as a [`Broadcast`].
///
/// `Debug` hides the contents: payloads carry tokens, SDP and candidates.
#[derive(Clone, PartialEq, Eq)]
pub enum Payload {
    /// Any JSON value.
    Json(Value),
    /// A user broadcast from the binary framing.
    Broadcast(Broadcast),
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Json(_) => f.write_str("Json({REDACTED})"),
            Self::Broadcast(b) => f.debug_tuple("Broadcast").field(b).finish(),
        }
    }
}

impl From<Value> for Payload {
    fn from(value: Value) -> Self {
        Self::Json(value)
    }
}

impl From<Broadcast> for Payload {
    fn from(broadcast: Broadcast) -> Self {
        Self::Broadcast(broadcast)
    }
}

/// A user broadcast: what `channel.send({type: "broadcast", event, payload})`
/// sends in realtime-js.
///
/// `Debug` shows the event name and the body's kind, never the contents.
#[derive(Clone, PartialEq, Eq)]
pub struct Broadcast {
    /// The user's event name, e.g. `sdp`.
    pub event: String,
    /// Metadata of the binary framing; `None` when it is empty on the wire.
    /// In the JSON form it is the `meta` key, where realtime-js puts it when
    /// it decodes a kind-4 frame.
    pub metadata: Option<Value>,
    /// The user's payload.
    pub body: BroadcastBody,
}

impl fmt::Debug for Broadcast {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broadcast")
            .field("event", &self.event)
            .field("metadata", &self.metadata.as_ref().map(|_| "{REDACTED}"))
            .field("body", &self.body)
            .finish()
    }
}

/// The user payload of a [`Broadcast`]. `Debug` hides the contents.
#[derive(Clone, PartialEq, Eq)]
pub enum BroadcastBody {
    /// A JSON value (payload encoding 1).
    Json(Value),
    /// Raw bytes (payload encoding 0); realtime-js sends these for an
    /// `ArrayBuffer` payload. Only vsn 2.0.0 can carry them.
    Binary(Vec<u8>),
}

impl fmt::Debug for BroadcastBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Json(_) => f.write_str("Json({REDACTED})"),
            Self::Binary(bytes) => write!(f, "Binary({} bytes)", bytes.len()),
        }
    }
}

impl Broadcast {
    /// A broadcast with a JSON body and no metadata.
    pub fn json(event: impl Into<String>, body: Value) -> Self {
        Self {
            event: event.into(),
            metadata: None,
            body: BroadcastBody::Json(body),
        }
    }

    /// A broadcast with a raw-bytes body and no metadata.
    pub fn binary(event: impl Into<String>, body: Vec<u8>) -> Self {
        Self {
            event: event.into(),
            metadata: None,
            body: BroadcastBody::Binary(body),
        }
    }

    /// The JSON payload of a text `broadcast` message:
    /// `{"type":"broadcast","event":..,"payload":..,"meta"?:..}`.
    ///
    /// # Errors
    /// [`EncodeError::BinaryBodyAsJson`] if the body is raw bytes.
    pub fn to_json(&self) -> Result<Value, EncodeError> {
        let BroadcastBody::Json(body) = &self.body else {
            return Err(EncodeError::BinaryBodyAsJson);
        };
        let mut map = Map::new();
        map.insert("type".into(), event::BROADCAST.into());
        map.insert("event".into(), self.event.clone().into());
        map.insert("payload".into(), body.clone());
        if let Some(meta) = &self.metadata {
            map.insert("meta".into(), meta.clone());
        }
        Ok(Value::Object(map))
    }

    /// Reads the payload of a text `broadcast` message. Needs `type` to be
    /// `"broadcast"` and `event` a string; a missing `payload` reads as
    /// `null`, and other keys are ignored.
    pub fn from_json(value: &Value) -> Option<Self> {
        let map = value.as_object()?;
        if map.get("type")?.as_str()? != event::BROADCAST {
            return None;
        }
        Some(Self {
            event: map.get("event")?.as_str()?.to_owned(),
            metadata: map.get("meta").cloned(),
            body: BroadcastBody::Json(map.get("payload").cloned().unwrap_or(Value::Null)),
        })
    }
}

/// The status of a `phx_reply` or a `system` message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// `"ok"`.
    Ok,
    /// `"error"`.
    Error,
}

impl Status {
    /// The wire spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "error",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "ok" => Some(Self::Ok),
            "error" => Some(Self::Error),
            _ => None,
        }
    }
}

impl Message {
    /// A message with no refs.
    pub fn new(
        topic: impl Into<String>,
        event: impl Into<String>,
        payload: impl Into<Payload>,
    ) -> Self {
        Self {
            join_ref: None,
            msg_ref: None,
            topic: topic.into(),
            event: event.into(),
            payload: payload.into(),
        }
    }

    /// Sets both refs.
    #[must_use]
    pub fn with_refs(mut self, join_ref: Option<String>, msg_ref: Option<String>) -> Self {
        self.join_ref = join_ref;
        self.msg_ref = msg_ref;
        self
    }

    /// The `phx_reply` to `push`: same refs and topic, payload
    /// `{"status":..,"response":..}`. Also the heartbeat reply.
    pub fn reply(push: &Self, status: Status, response: Value) -> Self {
        let payload = object([("status", status.as_str().into()), ("response", response)]);
        Self::new(push.topic.clone(), event::REPLY, payload)
            .with_refs(push.join_ref.clone(), push.msg_ref.clone())
    }

    /// [`Message::reply`] with [`Status::Ok`].
    pub fn reply_ok(push: &Self, response: Value) -> Self {
        Self::reply(push, Status::Ok, response)
    }

    /// [`Message::reply`] with [`Status::Error`], e.g. response
    /// `{"reason":"unmatched topic"}`.
    pub fn reply_error(push: &Self, response: Value) -> Self {
        Self::reply(push, Status::Error, response)
    }

    /// `phx_close` for the channel joined with `join_ref`; Phoenix sends the
    /// join ref as the `ref` too.
    pub fn close(join_ref: Option<String>, topic: impl Into<String>) -> Self {
        Self::new(topic, event::CLOSE, Value::Object(Map::new()))
            .with_refs(join_ref.clone(), join_ref)
    }

    /// `presence_state`, pushed by the channel after join, so it carries the
    /// channel's `join_ref`.
    pub fn presence_state(
        join_ref: Option<String>,
        topic: impl Into<String>,
        state: Value,
    ) -> Self {
        Self::new(topic, event::PRESENCE_STATE, state).with_refs(join_ref, None)
    }

    /// `presence_diff` `{"joins":..,"leaves":..}`, a fastlane message without
    /// refs.
    pub fn presence_diff(topic: impl Into<String>, joins: Value, leaves: Value) -> Self {
        Self::new(
            topic,
            event::PRESENCE_DIFF,
            object([("joins", joins), ("leaves", leaves)]),
        )
    }

    /// A `system` message of the `system` extension, pushed on the channel
    /// joined with `join_ref`. `channel` is the topic without `realtime:`.
    pub fn system(
        join_ref: Option<String>,
        topic: impl Into<String>,
        status: Status,
        message: &str,
    ) -> Self {
        let topic = topic.into();
        let channel = topic.strip_prefix("realtime:").unwrap_or(&topic).to_owned();
        let payload = object([
            ("extension", "system".into()),
            ("status", status.as_str().into()),
            ("message", message.into()),
            ("channel", channel.into()),
        ]);
        Self::new(topic, event::SYSTEM, payload).with_refs(join_ref, None)
    }

    /// A fastlane `broadcast` to subscribers, without refs: pass the payload
    /// of the pushed `broadcast` message, whichever framing it came in.
    pub fn broadcast(topic: impl Into<String>, payload: impl Into<Payload>) -> Self {
        Self::new(topic, event::BROADCAST, payload)
    }

    /// This message as a user broadcast, whichever framing it came in:
    /// a [`Payload::Broadcast`], or a `broadcast` event whose JSON payload
    /// [`Broadcast::from_json`] accepts.
    pub fn as_broadcast(&self) -> Option<Cow<'_, Broadcast>> {
        match &self.payload {
            Payload::Broadcast(b) => Some(Cow::Borrowed(b)),
            Payload::Json(value) if self.event == event::BROADCAST => {
                Broadcast::from_json(value).map(Cow::Owned)
            }
            Payload::Json(_) => None,
        }
    }

    /// The status and response of a `phx_reply`; a missing response reads
    /// as `null`.
    pub fn as_reply(&self) -> Option<(Status, &Value)> {
        if self.event != event::REPLY {
            return None;
        }
        let Payload::Json(Value::Object(map)) = &self.payload else {
            return None;
        };
        let status = Status::parse(map.get("status")?.as_str()?)?;
        Some((status, map.get("response").unwrap_or(&Value::Null)))
    }
}

/// A JSON object built by moving the values in; `json!` would copy them.
fn object<const N: usize>(entries: [(&str, Value); N]) -> Value {
    Value::Object(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn push() -> Message {
        Message::new("realtime:room1", event::JOIN, json!({}))
            .with_refs(Some("1".into()), Some("2".into()))
    }

    #[test]
    fn reply_echoes_refs_and_topic() {
        let reply = Message::reply_ok(&push(), json!({"postgres_changes": []}));
        assert_eq!(reply.join_ref.as_deref(), Some("1"));
        assert_eq!(reply.msg_ref.as_deref(), Some("2"));
        assert_eq!(reply.topic, "realtime:room1");
        assert_eq!(reply.event, "phx_reply");
        assert_eq!(
            reply.payload,
            Payload::Json(json!({"status": "ok", "response": {"postgres_changes": []}}))
        );
        assert_eq!(
            reply.as_reply(),
            Some((Status::Ok, &json!({"postgres_changes": []})))
        );
        let error = Message::reply_error(&push(), json!({"reason": "unmatched topic"}));
        assert_eq!(error.as_reply().map(|(s, _)| s), Some(Status::Error));
    }

    #[test]
    fn as_reply_rejects_other_shapes() {
        assert_eq!(push().as_reply(), None);
        let odd = Message::new("t", event::REPLY, json!({"status": "maybe"}));
        assert_eq!(odd.as_reply(), None);
        let bare = Message::new("t", event::REPLY, json!({"status": "ok"}));
        assert_eq!(bare.as_reply(), Some((Status::Ok, &Value::Null)));
    }

    #[test]
    fn close_uses_join_ref_as_ref() {
        let close = Message::close(Some("4".into()), "realtime:x");
        assert_eq!(close.join_ref.as_deref(), Some("4"));
        assert_eq!(close.msg_ref.as_deref(), Some("4"));
        assert_eq!(close.event, "phx_close");
        assert_eq!(close.payload, Payload::Json(json!({})));
    }

    #[test]
    fn presence_and_system_shapes() {
        let state = Message::presence_state(Some("4".into()), "realtime:lobby", json!({}));
        assert_eq!(
            (state.join_ref.as_deref(), state.msg_ref.as_deref()),
            (Some("4"), None)
        );
        assert_eq!(state.event, "presence_state");

        let diff = Message::presence_diff("realtime:lobby", json!({"k": {"metas": []}}), json!({}));
        assert_eq!((diff.join_ref, diff.msg_ref), (None, None));
        assert_eq!(
            diff.payload,
            Payload::Json(json!({"joins": {"k": {"metas": []}}, "leaves": {}}))
        );

        let system = Message::system(
            Some("1".into()),
            "realtime:room1",
            Status::Error,
            "Too many messages per second",
        );
        assert_eq!(system.event, "system");
        assert_eq!(
            system.payload,
            Payload::Json(json!({
                "extension": "system",
                "status": "error",
                "message": "Too many messages per second",
                "channel": "room1",
            }))
        );
    }

    #[test]
    fn both_broadcast_forms_read_the_same() {
        let text = Message::broadcast(
            "realtime:room1",
            json!({"type": "broadcast", "event": "sdp", "payload": {"a": 1}}),
        );
        let binary = Message::broadcast("realtime:room1", Broadcast::json("sdp", json!({"a": 1})));
        assert_eq!(text.as_broadcast(), binary.as_broadcast());
        assert!(text.as_broadcast().is_some());
    }

    #[test]
    fn broadcast_json_form() {
        let mut b = Broadcast::json("e", json!([1]));
        assert_eq!(
            b.to_json(),
            Ok(json!({"type": "broadcast", "event": "e", "payload": [1]}))
        );
        b.metadata = Some(json!({"id": "x"}));
        let value = b.to_json().expect("JSON body");
        assert_eq!(value["meta"], json!({"id": "x"}));
        assert_eq!(Broadcast::from_json(&value), Some(b));

        assert_eq!(
            Broadcast::binary("e", vec![1]).to_json(),
            Err(EncodeError::BinaryBodyAsJson)
        );
        assert_eq!(
            Broadcast::from_json(&json!({"event": "e"})),
            None,
            "type is required"
        );
        assert_eq!(
            Broadcast::from_json(&json!({"type": "presence", "event": "e"})),
            None
        );
        assert_eq!(
            Broadcast::from_json(&json!({"type": "broadcast", "event": 1})),
            None
        );
        assert_eq!(
            Broadcast::from_json(&json!({"type": "broadcast", "event": "e"})),
            Some(Broadcast::json("e", Value::Null))
        );
    }

    #[test]
    fn debug_hides_payloads() {
        let mut b = Broadcast::json("sdp", json!({"sdp": "v=0 c=IN IP4 10.0.0.5"}));
        b.metadata = Some(json!({"ip": "10.0.0.5"}));
        let msg = Message::broadcast("realtime:r", b);
        let text = Message::new(
            "realtime:r",
            event::JOIN,
            json!({"access_token": "eyJsecret"}),
        );
        for printed in [format!("{msg:?}"), format!("{text:#?}")] {
            assert!(!printed.contains("10.0.0.5"), "{printed}");
            assert!(!printed.contains("eyJsecret"), "{printed}");
            assert!(printed.contains("realtime:r"), "{printed}");
        }
    }
}
