//! A small Realtime (Phoenix channels) client for the websocket tests:
//! tokio-tungstenite for the socket, `voicemeet_proto::phoenix` for every
//! frame, so the tests speak exactly what the app's client speaks.
// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};
use voicemeet_server::proto::phoenix::{
    self, Broadcast, Frame, MAX_FRAME_BYTES, Message, Payload, Status, Vsn, event,
};

/// How long any single expected frame may take. Loopback answers in
/// milliseconds; this only turns a hang into a failure.
pub const RECV_TIMEOUT: Duration = Duration::from_secs(10);

/// The client side of one websocket.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The Realtime websocket URL of a server at `http_url`, as realtime-js
/// builds it: `ws://host/realtime/v1/websocket?apikey=..&vsn=..`.
pub fn websocket_url(http_url: &str, apikey: Option<&str>, vsn: Vsn) -> String {
    let base = http_url.replacen("http://", "ws://", 1);
    match apikey {
        Some(key) => format!("{base}/realtime/v1/websocket?apikey={key}&vsn={vsn}"),
        None => format!("{base}/realtime/v1/websocket?vsn={vsn}"),
    }
}

/// A `phx_join` payload in realtime-js's shape.
pub fn join_payload(private: bool, ack: bool, access_token: Option<&str>) -> Value {
    let mut payload = json!({
        "config": {
            "broadcast": { "ack": ack, "self": false },
            "presence": { "key": "", "enabled": false },
            "postgres_changes": [],
            "private": private,
        }
    });
    if let Some(token) = access_token {
        payload["access_token"] = token.into();
    }
    payload
}

/// What the server sent next.
#[derive(Debug)]
pub enum Inbound {
    /// A decoded Phoenix message.
    Message(Message),
    /// The socket ended: a close frame (`code`, `reason`), or the stream
    /// ending without one (`code` is `None`).
    Closed { code: Option<u16>, reason: String },
}

/// One Realtime connection.
pub struct Client {
    ws: Ws,
    pub vsn: Vsn,
    next_ref: u64,
}

impl Client {
    /// Connects to the server at `http_url`, panicking if the upgrade fails.
    pub async fn connect(http_url: &str, apikey: &str, vsn: Vsn) -> Self {
        let url = websocket_url(http_url, Some(apikey), vsn);
        let (ws, _) = connect_async(url.as_str())
            .await
            .expect("websocket upgrade succeeds");
        Self::from_ws(ws, vsn)
    }

    /// Wraps an already upgraded socket.
    pub fn from_ws(ws: Ws, vsn: Vsn) -> Self {
        Self {
            ws,
            vsn,
            next_ref: 0,
        }
    }

    /// The socket, e.g. to split it.
    pub fn into_ws(self) -> Ws {
        self.ws
    }

    /// A fresh `ref`, as phoenix.js numbers its pushes.
    pub fn make_ref(&mut self) -> String {
        self.next_ref += 1;
        self.next_ref.to_string()
    }

    pub async fn send_text(&mut self, text: impl Into<String>) {
        self.ws
            .send(WsMessage::text(text.into()))
            .await
            .expect("send a text frame");
    }

    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.ws
            .send(WsMessage::binary(bytes))
            .await
            .expect("send a binary frame");
    }

    /// Sends `msg` in the client's framing (kind-3 binary for a
    /// [`Payload::Broadcast`] on vsn 2.0.0).
    pub async fn push(&mut self, msg: &Message) {
        match phoenix::encode_push(self.vsn, msg).expect("encodable push") {
            Frame::Text(text) => self.send_text(text).await,
            Frame::Binary(bytes) => self.send_binary(bytes).await,
        }
    }

    /// The next raw data frame, skipping pings and pongs.
    async fn next_frame(&mut self) -> Result<WsMessage, (Option<u16>, String)> {
        loop {
            let frame = tokio::time::timeout(RECV_TIMEOUT, self.ws.next())
                .await
                .expect("the server answers within RECV_TIMEOUT");
            match frame {
                Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_))) => {}
                Some(Ok(WsMessage::Close(frame))) => {
                    return Err(frame.map_or((None, String::new()), |f| {
                        (Some(u16::from(f.code)), f.reason.as_str().to_owned())
                    }));
                }
                Some(Ok(frame)) => return Ok(frame),
                None | Some(Err(_)) => return Err((None, String::new())),
            }
        }
    }

    /// The next message, decoded with the codec, or how the socket ended.
    pub async fn recv(&mut self) -> Inbound {
        match self.next_frame().await {
            Ok(WsMessage::Text(text)) => Inbound::Message(
                phoenix::decode_text(self.vsn, text.as_str(), MAX_FRAME_BYTES)
                    .expect("the server sends decodable text"),
            ),
            Ok(WsMessage::Binary(bytes)) => Inbound::Message(
                phoenix::decode_binary(self.vsn, &bytes, MAX_FRAME_BYTES)
                    .expect("the server sends decodable binary"),
            ),
            Ok(other) => panic!("unexpected websocket frame {other:?}"),
            Err((code, reason)) => Inbound::Closed { code, reason },
        }
    }

    /// The next message; panics if the socket ended instead.
    pub async fn recv_message(&mut self) -> Message {
        match self.recv().await {
            Inbound::Message(msg) => msg,
            Inbound::Closed { code, reason } => {
                panic!("socket closed ({code:?}, {reason:?}) while a message was expected")
            }
        }
    }

    /// The next text frame as JSON, to pin exact wire shapes.
    pub async fn recv_json(&mut self) -> Value {
        match self.next_frame().await {
            Ok(WsMessage::Text(text)) => serde_json::from_str(text.as_str()).expect("JSON text"),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    /// Sends a heartbeat and returns its ref.
    pub async fn send_heartbeat(&mut self) -> String {
        let msg_ref = self.make_ref();
        let heartbeat = Message::new(phoenix::PHOENIX_TOPIC, event::HEARTBEAT, json!({}))
            .with_refs(None, Some(msg_ref.clone()));
        self.push(&heartbeat).await;
        msg_ref
    }

    /// Sends a heartbeat and asserts that the very next message is its ok
    /// reply: nothing else was queued for this socket before it.
    pub async fn heartbeat_is_next(&mut self) {
        let msg_ref = self.send_heartbeat().await;
        let reply = self.recv_message().await;
        assert_heartbeat_reply(&reply, &msg_ref);
    }

    /// Pushes `phx_join` and returns the join ref and the reply.
    pub async fn join(&mut self, topic: &str, payload: Value) -> (String, Message) {
        let join_ref = self.make_ref();
        let join = Message::new(topic, event::JOIN, payload)
            .with_refs(Some(join_ref.clone()), Some(join_ref.clone()));
        self.push(&join).await;
        let reply = self.recv_message().await;
        assert_eq!(reply.event, event::REPLY, "{reply:?}");
        assert_eq!(reply.topic, topic);
        assert_eq!(reply.msg_ref.as_deref(), Some(join_ref.as_str()));
        (join_ref, reply)
    }

    /// Joins and asserts Realtime's ok reply; returns the join ref.
    pub async fn join_ok(&mut self, topic: &str, payload: Value) -> String {
        let (join_ref, reply) = self.join(topic, payload).await;
        assert_eq!(
            reply.as_reply(),
            Some((Status::Ok, &json!({ "postgres_changes": [] }))),
            "join {topic}: {:?}",
            reply.payload
        );
        join_ref
    }

    /// Joins and returns the error reason of the refusal.
    pub async fn join_refused(&mut self, topic: &str, payload: Value) -> String {
        let (_, reply) = self.join(topic, payload).await;
        let (status, response) = reply.as_reply().expect("a reply");
        assert_eq!(status, Status::Error, "join {topic}: {response}");
        response["reason"]
            .as_str()
            .expect("the error has a reason")
            .to_owned()
    }

    /// Sends a user broadcast as realtime-js ≥ 2.91 does on vsn 2.0.0
    /// (kind-3 binary; a JSON object on vsn 1.0.0). Returns the push's ref.
    pub async fn broadcast(
        &mut self,
        topic: &str,
        join_ref: &str,
        user_event: &str,
        body: Value,
    ) -> String {
        let msg_ref = self.make_ref();
        let push = Message::broadcast(topic, Broadcast::json(user_event, body))
            .with_refs(Some(join_ref.to_owned()), Some(msg_ref.clone()));
        self.push(&push).await;
        msg_ref
    }

    /// Sends a user broadcast as a JSON text push
    /// (`{"type":"broadcast","event":..,"payload":..}`). Returns its ref.
    pub async fn broadcast_text(
        &mut self,
        topic: &str,
        join_ref: &str,
        user_event: &str,
        body: Value,
    ) -> String {
        let msg_ref = self.make_ref();
        let payload = json!({ "type": "broadcast", "event": user_event, "payload": body });
        let push = Message::broadcast(topic, payload)
            .with_refs(Some(join_ref.to_owned()), Some(msg_ref.clone()));
        self.push(&push).await;
        msg_ref
    }
}

/// Asserts `reply` is the ok reply to the heartbeat with `msg_ref`.
pub fn assert_heartbeat_reply(reply: &Message, msg_ref: &str) {
    assert_eq!(reply.topic, phoenix::PHOENIX_TOPIC, "{reply:?}");
    assert_eq!(reply.event, event::REPLY, "{reply:?}");
    assert_eq!(reply.msg_ref.as_deref(), Some(msg_ref), "{reply:?}");
    assert_eq!(reply.as_reply(), Some((Status::Ok, &json!({}))));
}

/// The user event and JSON body of a broadcast message, whichever framing
/// it came in.
pub fn broadcast_of(msg: &Message) -> Option<(String, Value)> {
    let b = msg.as_broadcast()?;
    match &b.body {
        phoenix::BroadcastBody::Json(body) => Some((b.event.clone(), body.clone())),
        phoenix::BroadcastBody::Binary(_) => None,
    }
}

/// The JSON payload of a message (panics on a binary broadcast).
pub fn json_payload(msg: &Message) -> &Value {
    match &msg.payload {
        Payload::Json(value) => value,
        Payload::Broadcast(_) => panic!("expected a JSON payload: {msg:?}"),
    }
}
