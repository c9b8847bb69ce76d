//! The socket task: the only owner of the websocket, the channel table and
//! the pending replies. Handles send it [`Command`]s; it answers over
//! oneshots and delivers [`ChannelEvent`]s over each channel's bounded
//! queue. One `select!` loop: cancellation, commands, inbound frames, and
//! one timer for whatever is due next (heartbeat, reconnect, rejoins,
//! reply deadlines).
//!
//! ```text
//!  channel status     Waiting ──send join──▶ Joining ──ok──▶ Joined
//!                        ▲   ▲                  │  │            │
//!                        │   └──timeout/retryable error         │
//!                        └────────── socket lost / phx_error ───┘
//!  phx_close, or a refusal that retrying cannot fix: the channel is removed
//!  (Closed event, or the join's error for a first join).
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::clock::sleep_until_some;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, trace, warn};
use url::Url;
use voicemeet_proto::Redacted;
use voicemeet_proto::phoenix::{
    self, EncodeError, Frame, MAX_FRAME_BYTES, Message, Payload, Status, Vsn, event,
};

use super::connect::{self, Ws};
use super::{ChannelEvent, CloseReason, RealtimeConfig, reconnect_delay};
use crate::error::{Error, JoinRefusal};

/// How long a close handshake may take when we hang up; the socket is
/// dropped either way.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest a single frame may take to leave. A write only blocks when the
/// server stopped reading and the TCP buffers are full; past this the
/// socket counts as dead, as a missed heartbeat would, instead of freezing
/// the task (and every channel's heartbeats and timers with it).
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// What handles ask of the socket task.
pub(super) enum Command {
    /// Join a topic; answered with the channel's id once the server agrees.
    Join {
        topic: String,
        config: Value,
        ack: bool,
        access_token: Option<Redacted<String>>,
        events: mpsc::Sender<ChannelEvent>,
        reply: oneshot::Sender<Result<u64, Error>>,
    },
    /// Broadcast on a joined channel.
    Push {
        topic: String,
        id: u64,
        payload: Payload,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    /// Leave a channel; `reply` once the server agreed (or there is no
    /// server to ask).
    Leave {
        topic: String,
        id: u64,
        reply: Option<oneshot::Sender<()>>,
    },
    /// A new access token for every channel.
    SetAccessToken {
        token: Redacted<String>,
        reply: oneshot::Sender<()>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChannelStatus {
    /// Not joined, no join in flight: waiting for the socket or `rejoin_at`.
    Waiting,
    /// A join is in flight under the channel's `join_ref`.
    Joining,
    Joined,
}

/// The first join's caller, waiting for the outcome.
struct Waiter {
    reply: oneshot::Sender<Result<u64, Error>>,
    deadline: Instant,
}

struct ChannelState {
    id: u64,
    config: Value,
    ack: bool,
    access_token: Option<Redacted<String>>,
    status: ChannelStatus,
    /// The ref of the latest join; inbound messages carrying another one
    /// belong to an earlier join and are dropped.
    join_ref: Option<String>,
    waiter: Option<Waiter>,
    rejoin_at: Option<Instant>,
    rejoin_attempts: usize,
    /// The last `system` error, reported as the reason of the `phx_close`
    /// that follows it.
    system_error: Option<String>,
    events: mpsc::Sender<ChannelEvent>,
    dropped: u64,
}

impl ChannelState {
    /// Queues an event without ever waiting: a reader that fell behind
    /// loses events (and is told how many) instead of stalling the socket.
    fn deliver(&mut self, event: ChannelEvent) {
        if self.dropped > 0 {
            let lagged = ChannelEvent::Lagged {
                dropped: self.dropped,
            };
            if self.events.try_send(lagged).is_err() {
                self.dropped += 1;
                return;
            }
            self.dropped = 0;
        }
        match self.events.try_send(event) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                if self.dropped == 0 {
                    warn!(
                        channel = self.id,
                        "channel reader is behind; dropping events"
                    );
                }
                self.dropped += 1;
            }
            // The handle is gone; its Drop queued a leave.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

/// A push waiting for its `phx_reply`, keyed by its ref.
enum Pending {
    Join {
        topic: String,
        deadline: Instant,
    },
    Push {
        topic: String,
        reply: oneshot::Sender<Result<(), Error>>,
        deadline: Instant,
    },
    Leave {
        reply: oneshot::Sender<()>,
        deadline: Instant,
    },
}

impl Pending {
    fn deadline(&self) -> Instant {
        match self {
            Self::Join { deadline, .. }
            | Self::Push { deadline, .. }
            | Self::Leave { deadline, .. } => *deadline,
        }
    }
}

type Connecting = Pin<Box<dyn Future<Output = Result<Ws, Error>> + Send>>;

pub(super) struct Driver {
    url: Redacted<Url>,
    vsn: Vsn,
    heartbeat_interval: Duration,
    join_timeout: Duration,
    push_timeout: Duration,
    connect_timeout: Duration,
    ws: Option<Ws>,
    /// Set when the socket failed mid-handler; the loop then tears down.
    lost: Option<String>,
    commands: mpsc::Receiver<Command>,
    cancel: CancellationToken,
    channels: HashMap<String, ChannelState>,
    pending: HashMap<String, Pending>,
    next_ref: u64,
    next_channel_id: u64,
    heartbeat_at: Option<Instant>,
    heartbeat_ref: Option<String>,
    reconnect_at: Option<Instant>,
    reconnect_attempts: usize,
    /// A handshake in progress; polled by the loop so commands are still
    /// answered (with `Disconnected`) while it lasts.
    connecting: Option<Connecting>,
    /// The latest token from `set_access_token`, for joins without one.
    access_token: Option<Redacted<String>>,
}

impl Driver {
    pub(super) fn new(
        url: Redacted<Url>,
        config: &RealtimeConfig,
        ws: Ws,
        commands: mpsc::Receiver<Command>,
        cancel: CancellationToken,
    ) -> Self {
        Self {
            url,
            vsn: config.vsn,
            heartbeat_interval: config.heartbeat_interval,
            join_timeout: config.join_timeout,
            push_timeout: config.push_timeout,
            connect_timeout: config.connect_timeout,
            ws: Some(ws),
            lost: None,
            commands,
            cancel,
            channels: HashMap::new(),
            pending: HashMap::new(),
            next_ref: 0,
            next_channel_id: 0,
            heartbeat_at: Some(Instant::now() + config.heartbeat_interval),
            heartbeat_ref: None,
            reconnect_at: None,
            reconnect_attempts: 0,
            connecting: None,
            access_token: None,
        }
    }

    /// Runs until the client is dropped.
    pub(super) async fn socket_task(mut self) {
        debug!(vsn = %self.vsn, "realtime socket task started");
        loop {
            if let Some(reason) = self.lost.take() {
                self.on_disconnect(&reason);
            }
            let wake = self.next_wake();
            tokio::select! {
                biased;
                () = self.cancel.cancelled() => break,
                command = self.commands.recv() => match command {
                    Some(command) => self.handle_command(command).await,
                    None => break,
                },
                frame = next_frame(&mut self.ws) => self.handle_frame(frame).await,
                attempt = finish_connecting(&mut self.connecting) => {
                    self.connecting = None;
                    self.handle_connected(attempt).await;
                }
                () = sleep_until_some(wake) => self.handle_timers().await,
            }
        }
        self.shut_down().await;
        debug!("realtime socket task ended");
    }

    fn next_ref(&mut self) -> String {
        self.next_ref += 1;
        self.next_ref.to_string()
    }

    fn connected(&self) -> bool {
        self.ws.is_some() && self.lost.is_none()
    }

    fn next_wake(&self) -> Option<Instant> {
        let connected = self.connected();
        let socket = if connected {
            self.heartbeat_at
        } else if self.connecting.is_some() {
            None
        } else {
            self.reconnect_at
        };
        let replies = self.pending.values().map(Pending::deadline);
        let waiters = self
            .channels
            .values()
            .filter_map(|c| c.waiter.as_ref().map(|w| w.deadline));
        let rejoins = self
            .channels
            .values()
            .filter(|_| connected)
            .filter_map(|c| c.rejoin_at);
        socket
            .into_iter()
            .chain(replies)
            .chain(waiters)
            .chain(rejoins)
            .min()
    }

    // ---- outbound ------------------------------------------------------

    /// Writes one message; on failure marks the socket lost. Returns
    /// whether it was written.
    async fn send(&mut self, msg: &Message) -> bool {
        let frame = match phoenix::encode_push(self.vsn, msg) {
            Ok(frame) => frame,
            Err(err) => {
                // Only broadcasts can fail to encode, and those are
                // encoded (and their errors reported) in `push`.
                debug!(%err, event = %msg.event, "cannot encode message");
                return false;
            }
        };
        self.write(frame).await
    }

    async fn write(&mut self, frame: Frame) -> bool {
        if self.lost.is_some() {
            return false;
        }
        let Some(ws) = self.ws.as_mut() else {
            return false;
        };
        let message = match frame {
            Frame::Text(text) => WsMessage::Text(text.into()),
            Frame::Binary(bytes) => WsMessage::Binary(bytes.into()),
        };
        match tokio::time::timeout(WRITE_TIMEOUT, ws.send(message)).await {
            Ok(Ok(())) => true,
            Ok(Err(err)) => {
                self.lost = Some(format!("write failed: {err}"));
                false
            }
            Err(_) => {
                self.lost = Some("write timed out".into());
                false
            }
        }
    }

    fn join_payload(&self, channel: &ChannelState) -> Value {
        let mut payload = json!({ "config": channel.config });
        if let Some(token) = channel.access_token.as_ref().or(self.access_token.as_ref()) {
            payload["access_token"] = Value::String(token.expose().clone());
        }
        payload
    }

    /// Sends a join for `topic` under a fresh ref, which becomes the
    /// channel's `join_ref`.
    async fn send_join(&mut self, topic: &str) {
        let join_ref = self.next_ref();
        let Some(channel) = self.channels.get_mut(topic) else {
            return;
        };
        channel.join_ref = Some(join_ref.clone());
        channel.status = ChannelStatus::Joining;
        channel.rejoin_at = None;
        let Some(channel) = self.channels.get(topic) else {
            return;
        };
        let msg = Message::new(topic, event::JOIN, self.join_payload(channel))
            .with_refs(Some(join_ref.clone()), Some(join_ref.clone()));
        self.pending.insert(
            join_ref,
            Pending::Join {
                topic: topic.to_owned(),
                deadline: Instant::now() + self.join_timeout,
            },
        );
        self.send(&msg).await;
    }

    async fn send_leave(&mut self, topic: &str, join_ref: Option<String>) -> Option<String> {
        let msg_ref = self.next_ref();
        let msg =
            Message::new(topic, event::LEAVE, json!({})).with_refs(join_ref, Some(msg_ref.clone()));
        self.send(&msg).await.then_some(msg_ref)
    }

    // ---- commands ------------------------------------------------------

    async fn handle_command(&mut self, command: Command) {
        match command {
            Command::Join {
                topic,
                config,
                ack,
                access_token,
                events,
                reply,
            } => {
                if self.channels.contains_key(&topic) {
                    let _ = reply.send(Err(Error::AlreadyJoined));
                    return;
                }
                self.next_channel_id += 1;
                let channel = ChannelState {
                    id: self.next_channel_id,
                    config,
                    ack,
                    access_token,
                    status: ChannelStatus::Waiting,
                    join_ref: None,
                    waiter: Some(Waiter {
                        reply,
                        deadline: Instant::now() + self.join_timeout,
                    }),
                    rejoin_at: None,
                    rejoin_attempts: 0,
                    system_error: None,
                    events,
                    dropped: 0,
                };
                self.channels.insert(topic.clone(), channel);
                if self.connected() {
                    self.send_join(&topic).await;
                }
            }
            Command::Push {
                topic,
                id,
                payload,
                reply,
            } => self.push(topic, id, payload, reply).await,
            Command::Leave { topic, id, reply } => {
                let Some(channel) = self.channels.get(&topic).filter(|c| c.id == id) else {
                    if let Some(reply) = reply {
                        let _ = reply.send(());
                    }
                    return;
                };
                let in_server = channel.status != ChannelStatus::Waiting && self.connected();
                let join_ref = channel.join_ref.clone();
                self.remove_channel(&topic);
                let sent = if in_server {
                    self.send_leave(&topic, join_ref).await
                } else {
                    None
                };
                match (sent, reply) {
                    (Some(msg_ref), Some(reply)) => {
                        let deadline = Instant::now() + self.push_timeout;
                        self.pending
                            .insert(msg_ref, Pending::Leave { reply, deadline });
                    }
                    (None, Some(reply)) => {
                        let _ = reply.send(());
                    }
                    (_, None) => {}
                }
            }
            Command::SetAccessToken { token, reply } => {
                self.access_token = Some(token.clone());
                let mut pushes = Vec::new();
                for (topic, channel) in &mut self.channels {
                    // Stored for rejoins, as realtime-js updates its join
                    // payload.
                    channel.access_token = Some(token.clone());
                    if channel.status != ChannelStatus::Waiting {
                        pushes.push((topic.clone(), channel.join_ref.clone()));
                    }
                }
                for (topic, join_ref) in pushes {
                    let msg_ref = self.next_ref();
                    let msg = Message::new(
                        topic,
                        event::ACCESS_TOKEN,
                        json!({ "access_token": token.expose() }),
                    )
                    .with_refs(join_ref, Some(msg_ref));
                    // Never answered, so nothing to wait for.
                    self.send(&msg).await;
                }
                let _ = reply.send(());
            }
        }
    }

    async fn push(
        &mut self,
        topic: String,
        id: u64,
        payload: Payload,
        reply: oneshot::Sender<Result<(), Error>>,
    ) {
        let Some(channel) = self.channels.get(&topic).filter(|c| c.id == id) else {
            let _ = reply.send(Err(Error::ChannelClosed));
            return;
        };
        if channel.status != ChannelStatus::Joined || !self.connected() {
            let _ = reply.send(Err(Error::Disconnected));
            return;
        }
        let (join_ref, ack) = (channel.join_ref.clone(), channel.ack);
        let msg_ref = self.next_ref();
        let msg = Message::new(topic.clone(), event::BROADCAST, payload)
            .with_refs(join_ref, Some(msg_ref.clone()));
        let frame = match encode_broadcast(self.vsn, &msg) {
            Ok(frame) => frame,
            Err(err) => {
                let _ = reply.send(Err(Error::Encode(err)));
                return;
            }
        };
        if !self.write(frame).await {
            let _ = reply.send(Err(Error::Disconnected));
            return;
        }
        if ack {
            let deadline = Instant::now() + self.push_timeout;
            self.pending.insert(
                msg_ref,
                Pending::Push {
                    topic,
                    reply,
                    deadline,
                },
            );
        } else {
            let _ = reply.send(Ok(()));
        }
    }

    // ---- inbound -------------------------------------------------------

    async fn handle_frame(
        &mut self,
        frame: Option<Result<WsMessage, tokio_tungstenite::tungstenite::Error>>,
    ) {
        let decoded = match frame {
            None => {
                self.lost = Some("socket closed".into());
                return;
            }
            Some(Err(err)) => {
                self.lost = Some(format!("socket failed: {err}"));
                return;
            }
            Some(Ok(WsMessage::Close(frame))) => {
                let code = frame.map(|f| u16::from(f.code));
                self.lost = Some(format!("closed by the server (code {code:?})"));
                return;
            }
            Some(Ok(WsMessage::Text(text))) => {
                phoenix::decode_text(self.vsn, text.as_str(), MAX_FRAME_BYTES)
            }
            Some(Ok(WsMessage::Binary(bytes))) => {
                phoenix::decode_binary(self.vsn, &bytes, MAX_FRAME_BYTES)
            }
            Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_))) => return,
        };
        match decoded {
            Ok(msg) => self.handle_message(msg).await,
            // One bad frame says nothing about the next; realtime-js
            // ignores undecodable ones too.
            Err(err) => debug!(%err, "ignoring an undecodable frame"),
        }
    }

    async fn handle_message(&mut self, msg: Message) {
        if msg.topic == phoenix::PHOENIX_TOPIC {
            if msg.event == event::REPLY
                && msg.msg_ref.is_some()
                && msg.msg_ref == self.heartbeat_ref
            {
                self.heartbeat_ref = None;
            }
            return;
        }
        if msg.event == event::REPLY {
            let pending = msg.msg_ref.as_ref().and_then(|r| self.pending.remove(r));
            if let Some(pending) = pending {
                self.handle_reply(pending, &msg).await;
            }
            return;
        }
        let Some(channel) = self.channels.get_mut(&msg.topic) else {
            trace!(event = %msg.event, "message for a topic not joined");
            return;
        };
        // vsn 1.0.0 server frames carry no join_ref, but a `phx_close` has
        // its join's ref as `ref`: check that, so the close of a channel
        // left a moment ago cannot end its successor on the same topic.
        let join_ref = match (&msg.join_ref, msg.event.as_str()) {
            (None, event::CLOSE) => msg.msg_ref.as_ref(),
            (join_ref, _) => join_ref.as_ref(),
        };
        if join_ref.is_some() && join_ref != channel.join_ref.as_ref() {
            trace!(event = %msg.event, "dropping a message of an earlier join");
            return;
        }
        match msg.event.as_str() {
            event::CLOSE => {
                let message = channel.system_error.take();
                info!(channel = channel.id, reason = ?message, "channel closed by the server");
                self.close_channel(
                    &msg.topic,
                    CloseReason::Server { message },
                    Error::ChannelClosed,
                );
            }
            event::ERROR => {
                warn!(
                    channel = channel.id,
                    "channel crashed on the server; rejoining"
                );
                if channel.status == ChannelStatus::Joined {
                    channel.deliver(ChannelEvent::Interrupted);
                }
                schedule_rejoin(channel);
            }
            event::SYSTEM => {
                let Payload::Json(payload) = &msg.payload else {
                    return;
                };
                let message = payload
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                if payload.get("status").and_then(Value::as_str) == Some("error") {
                    // A `phx_close` follows and carries this as its reason.
                    channel.system_error = Some(message);
                } else {
                    channel.deliver(ChannelEvent::System { message });
                }
            }
            event::PRESENCE_STATE | event::PRESENCE_DIFF => {
                if let Payload::Json(payload) = msg.payload {
                    channel.deliver(ChannelEvent::Presence {
                        event: msg.event,
                        payload: Redacted::new(payload),
                    });
                }
            }
            event::BROADCAST => match msg.as_broadcast() {
                Some(broadcast) => {
                    let broadcast = broadcast.into_owned();
                    channel.deliver(ChannelEvent::Broadcast {
                        event: broadcast.event,
                        payload: broadcast.body,
                    });
                }
                None => debug!("ignoring a malformed broadcast"),
            },
            // postgres_changes and anything newer: not used by this app.
            other => trace!(event = other, "ignoring an unhandled event"),
        }
    }

    async fn handle_reply(&mut self, pending: Pending, msg: &Message) {
        let (status, response) = msg.as_reply().unwrap_or((Status::Error, &Value::Null));
        match pending {
            Pending::Join { topic, .. } => {
                self.handle_join_reply(&topic, msg, status, response).await
            }
            Pending::Push { reply, .. } => {
                let result = match status {
                    Status::Ok => Ok(()),
                    Status::Error => Err(Error::PushRejected {
                        reason: reason_of(response),
                    }),
                };
                let _ = reply.send(result);
            }
            Pending::Leave { reply, .. } => {
                let _ = reply.send(());
            }
        }
    }

    async fn handle_join_reply(
        &mut self,
        topic: &str,
        msg: &Message,
        status: Status,
        response: &Value,
    ) {
        let Some(channel) = self.channels.get_mut(topic) else {
            return;
        };
        if channel.join_ref != msg.msg_ref {
            return;
        }
        match status {
            Status::Ok => {
                channel.status = ChannelStatus::Joined;
                channel.rejoin_attempts = 0;
                channel.system_error = None;
                match channel.waiter.take() {
                    Some(waiter) => {
                        if waiter.reply.send(Ok(channel.id)).is_err() {
                            // The caller gave up waiting: nobody owns the
                            // channel, so leave it again.
                            let join_ref = channel.join_ref.clone();
                            self.remove_channel(topic);
                            self.send_leave(topic, join_ref).await;
                        }
                    }
                    None => {
                        info!(channel = channel.id, "channel rejoined");
                        channel.deliver(ChannelEvent::Rejoined);
                    }
                }
            }
            Status::Error => {
                let reason = reason_of(response);
                let refusal = JoinRefusal::from_reason(&reason);
                if let Some(waiter) = channel.waiter.take() {
                    let _ = waiter
                        .reply
                        .send(Err(Error::JoinRefused { refusal, reason }));
                    self.remove_channel(topic);
                } else if refusal.is_retryable() {
                    debug!(channel = channel.id, %refusal, "rejoin refused for now; retrying");
                    schedule_rejoin(channel);
                } else {
                    warn!(channel = channel.id, %refusal, "rejoin refused");
                    self.close_channel(
                        topic,
                        CloseReason::RejoinRefused { refusal, reason },
                        Error::ChannelClosed,
                    );
                }
            }
        }
    }

    // ---- timers --------------------------------------------------------

    async fn handle_timers(&mut self) {
        let now = Instant::now();
        if !self.connected() {
            if self.connecting.is_none() && self.reconnect_at.is_some_and(|at| at <= now) {
                self.reconnect_at = None;
                let (url, timeout) = (self.url.clone(), self.connect_timeout);
                self.connecting = Some(Box::pin(
                    async move { connect::connect(&url, timeout).await },
                ));
            }
        } else if self.heartbeat_at.is_some_and(|at| at <= now) {
            if self.heartbeat_ref.is_some() {
                // The previous heartbeat is unanswered after a whole
                // interval: the connection is dead even if TCP says not.
                self.hang_up("heartbeat timeout").await;
                self.lost = Some("heartbeat timeout".into());
            } else {
                let msg_ref = self.next_ref();
                let msg = Message::new(phoenix::PHOENIX_TOPIC, event::HEARTBEAT, json!({}))
                    .with_refs(None, Some(msg_ref.clone()));
                self.heartbeat_ref = Some(msg_ref);
                self.heartbeat_at = Some(now + self.heartbeat_interval);
                self.send(&msg).await;
            }
        }

        // First-join callers first: a join still in flight when its caller
        // gives up is left, rather than parked for a retry nobody wants.
        let timed_out: Vec<String> = self
            .channels
            .iter()
            .filter(|(_, c)| c.waiter.as_ref().is_some_and(|w| w.deadline <= now))
            .map(|(t, _)| t.clone())
            .collect();
        for topic in timed_out {
            let Some(mut channel) = self.channels.remove(&topic) else {
                continue;
            };
            if let Some(waiter) = channel.waiter.take() {
                let _ = waiter.reply.send(Err(Error::TimedOut {
                    what: "join",
                    after: self.join_timeout,
                }));
            }
            // The server may still join it late; make sure it does not stay.
            if channel.status != ChannelStatus::Waiting && self.connected() {
                self.send_leave(&topic, channel.join_ref.clone()).await;
            }
        }

        let expired: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline() <= now)
            .map(|(r, _)| r.clone())
            .collect();
        for msg_ref in expired {
            match self.pending.remove(&msg_ref) {
                Some(Pending::Join { topic, .. }) => {
                    if let Some(channel) = self.channels.get_mut(&topic)
                        && channel.join_ref.as_ref() == Some(&msg_ref)
                    {
                        debug!(channel = channel.id, "join timed out; retrying");
                        schedule_rejoin(channel);
                    }
                }
                Some(Pending::Push { reply, .. }) => {
                    let _ = reply.send(Err(Error::TimedOut {
                        what: "broadcast ack",
                        after: self.push_timeout,
                    }));
                }
                Some(Pending::Leave { reply, .. }) => {
                    let _ = reply.send(());
                }
                None => {}
            }
        }

        if self.connected() {
            let due: Vec<String> = self
                .channels
                .iter()
                .filter(|(_, c)| c.rejoin_at.is_some_and(|at| at <= now))
                .map(|(t, _)| t.clone())
                .collect();
            for topic in due {
                self.send_join(&topic).await;
            }
        }
    }

    // ---- connection lifecycle ------------------------------------------

    async fn handle_connected(&mut self, attempt: Result<Ws, Error>) {
        match attempt {
            Ok(ws) => {
                info!(
                    attempts = self.reconnect_attempts,
                    channels = self.channels.len(),
                    "realtime reconnected; rejoining"
                );
                self.ws = Some(ws);
                self.reconnect_at = None;
                self.reconnect_attempts = 0;
                self.heartbeat_ref = None;
                self.heartbeat_at = Some(Instant::now() + self.heartbeat_interval);
                let topics: Vec<String> = self.channels.keys().cloned().collect();
                for topic in topics {
                    self.send_join(&topic).await;
                }
            }
            Err(err) => {
                let delay = reconnect_delay(self.reconnect_attempts);
                self.reconnect_attempts += 1;
                warn!(error = %err, retry_in = ?delay, "realtime reconnect failed");
                self.reconnect_at = Some(Instant::now() + delay);
            }
        }
    }

    /// The socket is gone: fail what waited on it, park every channel until
    /// the next connection, and schedule that.
    fn on_disconnect(&mut self, reason: &str) {
        self.ws = None;
        for (_, pending) in self.pending.drain() {
            match pending {
                Pending::Push { reply, .. } => {
                    let _ = reply.send(Err(Error::Disconnected));
                }
                // The server forgets a socket's channels with it.
                Pending::Leave { reply, .. } => {
                    let _ = reply.send(());
                }
                Pending::Join { .. } => {}
            }
        }
        self.heartbeat_ref = None;
        self.heartbeat_at = None;
        for channel in self.channels.values_mut() {
            if channel.status == ChannelStatus::Joined {
                channel.deliver(ChannelEvent::Interrupted);
            }
            channel.status = ChannelStatus::Waiting;
            channel.rejoin_at = None;
        }
        let delay = reconnect_delay(self.reconnect_attempts);
        self.reconnect_attempts += 1;
        self.reconnect_at = Some(Instant::now() + delay);
        info!(reason, retry_in = ?delay, "realtime socket lost");
    }

    /// Closes the socket ourselves, politely but without waiting long.
    async fn hang_up(&mut self, reason: &str) {
        if let Some(mut ws) = self.ws.take() {
            let frame = CloseFrame {
                code: CloseCode::Normal,
                reason: reason.to_owned().into(),
            };
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, ws.close(Some(frame))).await;
        }
    }

    fn remove_channel(&mut self, topic: &str) -> Option<ChannelState> {
        let channel = self.channels.remove(topic)?;
        // Acks on a channel that is gone will never come.
        let refs: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, p)| matches!(p, Pending::Push { topic: t, .. } | Pending::Join { topic: t, .. } if t == topic))
            .map(|(r, _)| r.clone())
            .collect();
        for msg_ref in refs {
            if let Some(Pending::Push { reply, .. }) = self.pending.remove(&msg_ref) {
                let _ = reply.send(Err(Error::ChannelClosed));
            }
        }
        Some(channel)
    }

    /// Ends a channel: its first-join caller gets `waiter_error`, its reader
    /// a final `Closed`.
    fn close_channel(&mut self, topic: &str, reason: CloseReason, waiter_error: Error) {
        if let Some(mut channel) = self.remove_channel(topic) {
            if let Some(waiter) = channel.waiter.take() {
                let _ = waiter.reply.send(Err(waiter_error));
            }
            channel.deliver(ChannelEvent::Closed { reason });
        }
    }

    async fn shut_down(&mut self) {
        let topics: Vec<String> = self.channels.keys().cloned().collect();
        for topic in topics {
            self.close_channel(&topic, CloseReason::ClientDropped, Error::ChannelClosed);
        }
        for (_, pending) in self.pending.drain() {
            match pending {
                Pending::Push { reply, .. } => {
                    let _ = reply.send(Err(Error::ChannelClosed));
                }
                Pending::Leave { reply, .. } => {
                    let _ = reply.send(());
                }
                Pending::Join { .. } => {}
            }
        }
        self.hang_up("client closed").await;
    }
}

/// Parks a channel for a rejoin after the next backoff delay.
fn schedule_rejoin(channel: &mut ChannelState) {
    let delay = reconnect_delay(channel.rejoin_attempts);
    channel.rejoin_attempts += 1;
    channel.status = ChannelStatus::Waiting;
    channel.rejoin_at = Some(Instant::now() + delay);
}

/// Encodes a broadcast push. On vsn 2.0.0 that is binary kind 3, like
/// realtime-js; a topic or event too long for its one-byte length prefix
/// goes as a JSON text push instead, which the server accepts as well.
fn encode_broadcast(vsn: Vsn, msg: &Message) -> Result<Frame, EncodeError> {
    match phoenix::encode_push(vsn, msg) {
        Err(EncodeError::FieldTooLong { .. }) => {
            let Payload::Broadcast(broadcast) = &msg.payload else {
                return phoenix::encode_push(vsn, msg);
            };
            let text = Message {
                payload: Payload::Json(broadcast.to_json()?),
                ..msg.clone()
            };
            phoenix::encode_push(vsn, &text)
        }
        other => other,
    }
}

/// The human reason of an error reply: `{"reason": ..}` for joins,
/// `{"error": ..}` or a bare string for pushes (the protocol doc and the
/// server code disagree, so accept both).
fn reason_of(response: &Value) -> String {
    match response {
        Value::String(reason) => reason.clone(),
        Value::Object(map) => ["reason", "error", "message"]
            .iter()
            .find_map(|k| map.get(*k).and_then(Value::as_str))
            .map_or_else(|| "unknown error".to_owned(), str::to_owned),
        _ => "unknown error".to_owned(),
    }
}

async fn next_frame(
    ws: &mut Option<Ws>,
) -> Option<Result<WsMessage, tokio_tungstenite::tungstenite::Error>> {
    match ws {
        Some(ws) => ws.next().await,
        None => std::future::pending().await,
    }
}

async fn finish_connecting(connecting: &mut Option<Connecting>) -> Result<Ws, Error> {
    match connecting {
        Some(attempt) => attempt.await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use voicemeet_proto::phoenix::Broadcast;

    use super::*;

    #[test]
    fn reasons_in_every_shape() {
        assert_eq!(
            reason_of(&json!({"reason": "unmatched topic"})),
            "unmatched topic"
        );
        assert_eq!(
            reason_of(&json!({"error": "payload_size_exceeded"})),
            "payload_size_exceeded"
        );
        assert_eq!(
            reason_of(&json!("payload_size_exceeded")),
            "payload_size_exceeded"
        );
        assert_eq!(reason_of(&Value::Null), "unknown error");
    }

    #[test]
    fn broadcasts_are_kind3_on_v2_and_fall_back_to_text() -> Result<(), EncodeError> {
        let msg = Message::new(
            "realtime:room",
            event::BROADCAST,
            Broadcast::json("sdp", json!({"a": 1})),
        )
        .with_refs(Some("1".into()), Some("2".into()));
        let Frame::Binary(bytes) = encode_broadcast(Vsn::V2, &msg)? else {
            panic!("expected kind 3");
        };
        assert_eq!(bytes[0], 3);
        assert!(matches!(encode_broadcast(Vsn::V1, &msg)?, Frame::Text(_)));

        let long = Message::new(
            "realtime:room",
            event::BROADCAST,
            Broadcast::json("e".repeat(300), json!(1)),
        );
        let Frame::Text(text) = encode_broadcast(Vsn::V2, &long)? else {
            panic!("expected the text fallback");
        };
        let decoded = phoenix::decode_text(Vsn::V2, &text, MAX_FRAME_BYTES).expect("decodes");
        assert_eq!(decoded.as_broadcast().map(|b| b.event.len()), Some(300));
        Ok(())
    }
}
