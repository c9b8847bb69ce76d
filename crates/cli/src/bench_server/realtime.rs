//! A minimal Realtime (Phoenix channels, vsn 2.0.0) client for load: connect,
//! join one topic, then hand the socket to a task that heartbeats, sends
//! broadcasts on command, answers pings itself when asked to, and reports
//! what arrives.

use std::time::Duration;

use anyhow::{Context as _, bail};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{Instant, interval_at, timeout};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use voicemeet_proto::phoenix::{
    self, Broadcast, BroadcastBody, Frame, MAX_FRAME_BYTES, Message, Payload, Status, Vsn, event,
};

/// A client websocket.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// TCP connect plus the websocket handshake, on loopback.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// From `phx_join` to its reply.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(10);
/// realtime-js's interval; the server drops sockets silent for 60 s.
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(25);
/// Commands queued for one connection. The benchmark keeps at most one
/// round trip and a few load messages per connection outstanding, so a full
/// queue means the connection is stuck, and the sender skips it.
const OUTBOUND_CAPACITY: usize = 16;
/// Read buffer per client socket. Frames here are tiny; tungstenite's
/// 128 KiB default would cost the load generator ~1 GiB at 10,000 sockets.
const READ_BUFFER_BYTES: usize = 4096;
/// The join ref every benchmark connection uses for its one channel.
const JOIN_REF: &str = "1";

/// The Realtime websocket URL for a server at `authority` (`127.0.0.1:port`).
pub fn websocket_url(authority: &str, anon_key: &str) -> String {
    format!("ws://{authority}/realtime/v1/websocket?apikey={anon_key}&vsn=2.0.0")
}

/// The `phx_join` payload realtime-js sends by default, optionally private
/// and with a user's access token.
pub fn join_payload(private: bool, access_token: Option<&str>) -> Value {
    let mut payload = json!({
        "config": {
            "broadcast": {"ack": false, "self": false},
            "presence": {"key": "", "enabled": false},
            "postgres_changes": [],
            "private": private,
        }
    });
    if let Some(token) = access_token {
        payload["access_token"] = token.into();
    }
    payload
}

/// Opens a websocket (Nagle off: round trips are what is measured).
pub async fn connect(url: &str) -> anyhow::Result<Ws> {
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER_BYTES);
    let (ws, _response) = timeout(
        CONNECT_TIMEOUT,
        tokio_tungstenite::connect_async_with_config(url, Some(config), true),
    )
    .await
    .context("websocket connect timed out")?
    .context("websocket connect")?;
    Ok(ws)
}

/// Joins `topic` and waits for an ok reply.
pub async fn join(ws: &mut Ws, topic: &str, payload: Value) -> anyhow::Result<()> {
    let push = Message::new(topic, event::JOIN, payload)
        .with_refs(Some(JOIN_REF.into()), Some(JOIN_REF.into()));
    ws.send(to_ws(&push)?).await.context("sending phx_join")?;
    let reply = async {
        while let Some(frame) = ws.next().await {
            let Some(msg) = decode(frame.context("reading the join reply")?)? else {
                continue;
            };
            if msg.topic != topic || msg.msg_ref.as_deref() != Some(JOIN_REF) {
                continue;
            }
            return match msg.as_reply() {
                Some((Status::Ok, _)) => Ok(()),
                Some((Status::Error, response)) => bail!("join of {topic} refused: {response}"),
                None => continue,
            };
        }
        bail!("socket closed before the join reply")
    };
    timeout(JOIN_TIMEOUT, reply)
        .await
        .context("no join reply in time")?
}

/// Connects and joins in one step.
pub async fn connect_and_join(url: &str, topic: &str, payload: Value) -> anyhow::Result<Ws> {
    let mut ws = connect(url).await?;
    join(&mut ws, topic, payload).await?;
    Ok(ws)
}

/// A broadcast to send on the connection's topic.
#[derive(Debug)]
pub struct Outbound {
    /// The user event name.
    pub event: &'static str,
    /// Its JSON body.
    pub body: Value,
}

/// Something that arrived on a connection's topic: a broadcast (by its user
/// event name) or a channel message such as `system` or `phx_close`.
#[derive(Debug)]
pub struct Inbound {
    /// Which connection, as numbered by the caller.
    pub conn: usize,
    /// The broadcast's user event, or the channel event.
    pub event: String,
    /// The body (broadcast) or payload (channel message).
    pub body: Value,
    /// When the frame was read off the socket.
    pub at: Instant,
}

/// How a connection task behaves.
#[derive(Debug)]
pub struct ConnSpec {
    /// The caller's number for this connection, echoed in [`Inbound`].
    pub conn: usize,
    /// The one topic the socket joined.
    pub topic: String,
    /// Answer broadcasts of the first event with the second, same body,
    /// inside the task (no hop through the caller).
    pub echo: Option<(&'static str, &'static str)>,
    /// Where anything else that arrives goes; `None` drops it.
    pub events: Option<mpsc::Sender<Inbound>>,
}

/// Starts the task that owns `ws`; it ends when the returned sender (and
/// every clone) is dropped, the socket closes, or the set is dropped.
pub fn spawn(ws: Ws, spec: ConnSpec, tasks: &mut JoinSet<()>) -> mpsc::Sender<Outbound> {
    let (tx, rx) = mpsc::channel(OUTBOUND_CAPACITY);
    tasks.spawn(conn_task(ws, spec, rx));
    tx
}

async fn conn_task(ws: Ws, spec: ConnSpec, mut commands: mpsc::Receiver<Outbound>) {
    let (mut sink, mut stream) = ws.split();
    let mut heartbeat = interval_at(Instant::now() + HEARTBEAT_INTERVAL, HEARTBEAT_INTERVAL);
    let mut heartbeat_ref: u64 = 0;
    loop {
        let out = tokio::select! {
            command = commands.recv() => match command {
                Some(command) => broadcast_push(&spec.topic, command.event, command.body),
                None => break,
            },
            _ = heartbeat.tick() => {
                heartbeat_ref += 1;
                let beat = Message::new(phoenix::PHOENIX_TOPIC, event::HEARTBEAT, json!({}))
                    .with_refs(None, Some(heartbeat_ref.to_string()));
                to_ws(&beat)
            }
            frame = stream.next() => {
                let at = Instant::now();
                let Some(Ok(frame)) = frame else { break };
                let Ok(decoded) = decode(frame) else { break };
                let Some(msg) = decoded else { continue };
                match handle_inbound(&spec, msg, at).await {
                    Reaction::Send(out) => out,
                    Reaction::Nothing => continue,
                    Reaction::Stop => break,
                }
            }
        };
        let Ok(frame) = out else { break };
        if sink.send(frame).await.is_err() {
            break;
        }
    }
}

enum Reaction {
    Send(anyhow::Result<WsMessage>),
    Nothing,
    Stop,
}

async fn handle_inbound(spec: &ConnSpec, msg: Message, at: Instant) -> Reaction {
    if msg.topic != spec.topic || msg.event == event::REPLY {
        return Reaction::Nothing;
    }
    let (name, body) = match msg.as_broadcast() {
        Some(b) => {
            let BroadcastBody::Json(body) = &b.body else {
                return Reaction::Nothing;
            };
            if let Some((ping, pong)) = spec.echo
                && b.event == ping
            {
                return Reaction::Send(broadcast_push(&spec.topic, pong, body.clone()));
            }
            (b.event.clone(), body.clone())
        }
        None => match msg.payload {
            Payload::Json(payload) => (msg.event, payload),
            Payload::Broadcast(_) => return Reaction::Nothing,
        },
    };
    let Some(events) = &spec.events else {
        return Reaction::Nothing;
    };
    let inbound = Inbound {
        conn: spec.conn,
        event: name,
        body,
        at,
    };
    if events.send(inbound).await.is_err() {
        // Nobody listens any more: the benchmark part is over.
        return Reaction::Stop;
    }
    Reaction::Nothing
}

/// A user broadcast push in the binary framing realtime-js ≥ 2.91 uses.
fn broadcast_push(topic: &str, user_event: &str, body: Value) -> anyhow::Result<WsMessage> {
    let msg = Message::new(
        topic,
        event::BROADCAST,
        Payload::Broadcast(Broadcast::json(user_event, body)),
    )
    .with_refs(Some(JOIN_REF.into()), None);
    to_ws(&msg)
}

fn to_ws(msg: &Message) -> anyhow::Result<WsMessage> {
    Ok(match phoenix::encode_push(Vsn::V2, msg)? {
        Frame::Text(text) => WsMessage::Text(text.into()),
        Frame::Binary(bytes) => WsMessage::Binary(bytes.into()),
    })
}

/// A Phoenix message, `None` for control frames; an error for a closed
/// socket or a frame that does not decode.
fn decode(frame: WsMessage) -> anyhow::Result<Option<Message>> {
    let msg = match frame {
        WsMessage::Text(text) => phoenix::decode_text(Vsn::V2, text.as_str(), MAX_FRAME_BYTES)?,
        WsMessage::Binary(bytes) => phoenix::decode_binary(Vsn::V2, &bytes, MAX_FRAME_BYTES)?,
        WsMessage::Close(close) => bail!("closed by the server: {close:?}"),
        WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_) => return Ok(None),
    };
    Ok(Some(msg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_url_is_realtime_v2() {
        assert_eq!(
            websocket_url("127.0.0.1:5", "k.e.y"),
            "ws://127.0.0.1:5/realtime/v1/websocket?apikey=k.e.y&vsn=2.0.0"
        );
    }

    #[test]
    fn broadcast_pushes_are_binary_kind_3_on_the_join_ref() {
        let Ok(WsMessage::Binary(bytes)) = broadcast_push("realtime:r", "ping", json!({"seq": 7}))
        else {
            panic!("expected a binary frame");
        };
        let push = phoenix::decode_binary(Vsn::V2, &bytes, MAX_FRAME_BYTES).expect("decodes");
        assert_eq!(push.join_ref.as_deref(), Some(JOIN_REF));
        assert_eq!(push.topic, "realtime:r");
        let b = push.as_broadcast().expect("a broadcast");
        assert_eq!(b.event, "ping");
        assert_eq!(b.body, BroadcastBody::Json(json!({"seq": 7})));
    }

    #[test]
    fn join_payload_carries_the_token_only_when_given() {
        let public = join_payload(false, None);
        assert_eq!(public["config"]["private"], false);
        assert!(public.get("access_token").is_none());
        let private = join_payload(true, Some("jwt"));
        assert_eq!(private["config"]["private"], true);
        assert_eq!(private["access_token"], "jwt");
    }
}
