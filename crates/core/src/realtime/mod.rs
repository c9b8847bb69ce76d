//! The Supabase Realtime client (Phoenix channels over one websocket),
//! built to PROTOCOLS.md §1 so it works against hosted Supabase and the
//! local `voicemeet-server` alike.
//!
//! [`RealtimeClient::connect`] opens the socket and spawns the one task that
//! owns it (`socket_task`); the client and every [`Channel`] are handles
//! that talk to that task over bounded channels. The task:
//!
//! - heartbeats every [`HEARTBEAT_INTERVAL`] on topic `phoenix`; a heartbeat
//!   still unanswered when the next is due means the socket is dead, and it
//!   reconnects;
//! - reconnects with [`RECONNECT_BACKOFF`] (1, 2, 5, 10 s, then 10 s) and
//!   rejoins every channel, each with a fresh `join_ref`, using the latest
//!   access token ([`RealtimeClient::set_access_token`]);
//! - drops inbound messages whose non-null `join_ref` is not the channel's
//!   current one (leftovers of an earlier join), as phoenix.js does;
//! - speaks vsn 2.0.0 by default: user broadcasts go out as binary kind 3
//!   like realtime-js ≥ 2.91, and binary kind 4 broadcasts are decoded; vsn
//!   1.0.0 (JSON objects only) is selectable.
//!
//! Dropping the [`RealtimeClient`] ends the task: its channels see
//! [`ChannelEvent::Closed`] with [`CloseReason::ClientDropped`], then the
//! end of their stream.
//!
//! ```no_run
//! # async fn demo(access_token: &str) -> Result<(), voicemeet_core::Error> {
//! use voicemeet_core::realtime::{ChannelConfig, ChannelEvent, RealtimeClient, RealtimeConfig};
//!
//! let client = RealtimeClient::connect(RealtimeConfig::new("http://127.0.0.1:54321", "anon key")).await?;
//! let mut room = client
//!     .join("room1", ChannelConfig { broadcast_ack: true, ..Default::default() }, Some(access_token))
//!     .await?;
//! room.send("hello", serde_json::json!({"n": 1})).await?;
//! while let Some(event) = room.recv().await {
//!     if let ChannelEvent::Closed { reason } = event {
//!         println!("closed: {reason}");
//!     }
//! }
//! # Ok(()) }
//! ```

mod connect;
mod driver;

use std::fmt;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::{CancellationToken, DropGuard};
use voicemeet_proto::Redacted;
use voicemeet_proto::phoenix::{Broadcast, BroadcastBody, Payload, Vsn};

pub use self::connect::websocket_url;
use self::driver::{Command, Driver};
use crate::error::{Error, JoinRefusal};

/// Heartbeat period: the protocol doc says "at least every 25 seconds"
/// (realtime-js `HEARTBEAT_INTERVAL`); the server drops a socket silent for
/// 60 s.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(25);
/// How long a join may wait for its reply: phoenix.js `DEFAULT_TIMEOUT`.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an acknowledged broadcast may wait for the server's ok; the
/// same default as joins in realtime-js.
pub const PUSH_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest websocket handshake (TCP, TLS, upgrade); beyond it the attempt
/// counts as failed and the backoff continues.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Delays before reconnect attempts 1, 2, 3, 4; every later attempt waits
/// the last one. realtime-js's `reconnectAfterMs`, also used for channel
/// rejoins after `phx_error`.
pub const RECONNECT_BACKOFF: [Duration; 4] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(5),
    Duration::from_secs(10),
];
/// Commands queued from handles to the socket task. Handles wait when it is
/// full, which only happens if the task is stuck writing; small, since each
/// command is handled in microseconds.
pub const COMMAND_CAPACITY: usize = 64;
/// Events queued per channel for its reader. A call's signalling is a few
/// dozen messages in a burst (offer, answer, trickled candidates); if the
/// reader falls this far behind, further events are dropped and it gets
/// [`ChannelEvent::Lagged`] rather than stalling the socket (and its
/// heartbeats) for every channel.
pub const CHANNEL_EVENT_CAPACITY: usize = 256;

/// The delay before reconnect (or rejoin) attempt `attempt` (0-based).
pub fn reconnect_delay(attempt: usize) -> Duration {
    let last = RECONNECT_BACKOFF.len() - 1;
    RECONNECT_BACKOFF[attempt.min(last)]
}

/// How to reach Realtime.
#[derive(Debug, Clone)]
pub struct RealtimeConfig {
    /// The project URL (`SUPABASE_URL`); `http` becomes `ws`, `https`
    /// becomes `wss`, and `/realtime/v1/websocket` is appended.
    pub url: String,
    /// The project's anon (publishable) key, sent as the `apikey` query
    /// parameter as realtime-js does.
    pub api_key: Redacted<String>,
    /// The serializer: [`Vsn::V2`] by default.
    pub vsn: Vsn,
    /// See [`HEARTBEAT_INTERVAL`].
    pub heartbeat_interval: Duration,
    /// See [`JOIN_TIMEOUT`].
    pub join_timeout: Duration,
    /// See [`PUSH_TIMEOUT`].
    pub push_timeout: Duration,
    /// See [`CONNECT_TIMEOUT`].
    pub connect_timeout: Duration,
}

impl RealtimeConfig {
    /// vsn 2.0.0 and the default timings.
    pub fn new(url: impl Into<String>, api_key: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            api_key: Redacted::new(api_key.into()),
            vsn: Vsn::V2,
            heartbeat_interval: HEARTBEAT_INTERVAL,
            join_timeout: JOIN_TIMEOUT,
            push_timeout: PUSH_TIMEOUT,
            connect_timeout: CONNECT_TIMEOUT,
        }
    }
}

/// A channel's `config` in its join payload (realtime-js defaults when
/// `Default`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelConfig {
    /// A private channel, authorised per user (Supabase: RLS on
    /// `realtime.messages`).
    pub private: bool,
    /// The server acknowledges each broadcast; [`Channel::send`] then waits
    /// for it.
    pub broadcast_ack: bool,
    /// Our own broadcasts come back to us.
    pub broadcast_self: bool,
    /// Enables presence under this key (the server picks a random key when
    /// it is empty).
    pub presence_key: Option<String>,
}

impl ChannelConfig {
    fn to_json(&self) -> Value {
        json!({
            "broadcast": { "ack": self.broadcast_ack, "self": self.broadcast_self },
            "presence": {
                "key": self.presence_key.as_deref().unwrap_or_default(),
                "enabled": self.presence_key.is_some(),
            },
            "postgres_changes": [],
            "private": self.private,
        })
    }
}

/// What happens on a channel, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChannelEvent {
    /// A user broadcast (text or binary framing alike).
    Broadcast {
        /// The user event name.
        event: String,
        /// The payload; `Debug` hides it.
        payload: BroadcastBody,
    },
    /// `presence_state` or `presence_diff`, as the server sent it.
    Presence {
        /// `presence_state` or `presence_diff`.
        event: String,
        /// The payload; `Debug` hides it.
        payload: Redacted<Value>,
    },
    /// A `system` message with status ok, e.g. "Replication connection
    /// established". Errors end the channel and arrive as
    /// [`ChannelEvent::Closed`].
    System {
        /// The server's message.
        message: String,
    },
    /// The socket dropped or the channel crashed server-side
    /// (`phx_error`): messages may be lost until [`ChannelEvent::Rejoined`].
    Interrupted,
    /// The channel was joined again after an interruption.
    Rejoined,
    /// This many events were dropped because the reader fell
    /// [`CHANNEL_EVENT_CAPACITY`] behind.
    Lagged {
        /// How many.
        dropped: u64,
    },
    /// The channel is over; nothing follows.
    Closed {
        /// Why.
        reason: CloseReason,
    },
}

/// Why a channel closed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The server closed it (`phx_close`). `message` is the `system` error
    /// that preceded it, e.g. "Too many messages per second" or "Token has
    /// expired 3 seconds ago".
    Server {
        /// The preceding system error, if any.
        message: Option<String>,
    },
    /// A rejoin after an interruption was refused for good, e.g. the access
    /// token expired while the socket was down.
    RejoinRefused {
        /// The kind of refusal.
        refusal: JoinRefusal,
        /// The server's reason.
        reason: String,
    },
    /// The [`RealtimeClient`] was dropped.
    ClientDropped,
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Server {
                message: Some(message),
            } => write!(f, "closed by the server: {message}"),
            Self::Server { message: None } => f.write_str("closed by the server"),
            Self::RejoinRefused { reason, .. } => write!(f, "rejoin refused: {reason}"),
            Self::ClientDropped => f.write_str("the realtime client was dropped"),
        }
    }
}

/// The Realtime connection. Dropping it closes the socket and every channel.
#[derive(Debug)]
pub struct RealtimeClient {
    commands: mpsc::Sender<Command>,
    vsn: Vsn,
    _stop_on_drop: DropGuard,
}

impl RealtimeClient {
    /// Connects (one attempt, so a wrong URL or key shows at once) and
    /// spawns the socket task, which from then on reconnects by itself.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a bad URL; [`Error::Unreachable`] or
    /// [`Error::TimedOut`] if the server cannot be reached;
    /// [`Error::Unauthorized`], [`Error::RateLimited`] or
    /// [`Error::Server`] if it refuses the upgrade (e.g. 401 "API key is
    /// missing").
    pub async fn connect(config: RealtimeConfig) -> Result<Self, Error> {
        let url = websocket_url(&config.url, config.api_key.expose(), config.vsn)?;
        let url = Redacted::new(url);
        let ws = connect::connect(&url, config.connect_timeout).await?;
        let cancel = CancellationToken::new();
        let (commands, rx) = mpsc::channel(COMMAND_CAPACITY);
        let driver = Driver::new(url, &config, ws, rx, cancel.clone());
        tokio::spawn(driver.socket_task());
        Ok(Self {
            commands,
            vsn: config.vsn,
            _stop_on_drop: cancel.drop_guard(),
        })
    }

    /// The serializer version in use.
    pub fn vsn(&self) -> Vsn {
        self.vsn
    }

    /// Joins `realtime:<topic>` and waits for the server's answer (at most
    /// the join timeout, across reconnects). `access_token` is the user's
    /// JWT for the channel; without one, the latest
    /// [`RealtimeClient::set_access_token`] token is used, and failing that
    /// the server falls back to the API key.
    ///
    /// # Errors
    /// [`Error::JoinRefused`] with Realtime's reason (e.g.
    /// [`JoinRefusal::Unauthorized`] for a private topic this user may not
    /// read), [`Error::TimedOut`] after the join timeout,
    /// [`Error::AlreadyJoined`] if this client already has the topic,
    /// [`Error::ChannelClosed`] if the client's task is gone.
    pub async fn join(
        &self,
        topic: &str,
        config: ChannelConfig,
        access_token: Option<&str>,
    ) -> Result<Channel, Error> {
        let topic = format!("realtime:{topic}");
        let (events_tx, events) = mpsc::channel(CHANNEL_EVENT_CAPACITY);
        let (reply, answer) = oneshot::channel();
        self.command(Command::Join {
            topic: topic.clone(),
            config: config.to_json(),
            ack: config.broadcast_ack,
            access_token: access_token.map(|t| Redacted::new(t.to_owned())),
            events: events_tx,
            reply,
        })
        .await?;
        let id = answer.await.map_err(|_| Error::ChannelClosed)??;
        Ok(Channel {
            topic,
            id,
            commands: self.commands.clone(),
            events,
            left: false,
        })
    }

    /// Replaces the access token: pushes `access_token` to every joined
    /// channel (the server never replies; a token it refuses closes the
    /// channel with a `system` error) and uses it for every later join and
    /// rejoin. Returns once the pushes are written (or queued for the
    /// rejoin, while disconnected).
    ///
    /// # Errors
    /// [`Error::ChannelClosed`] if the client's task is gone.
    pub async fn set_access_token(&self, token: &str) -> Result<(), Error> {
        let (reply, done) = oneshot::channel();
        self.command(Command::SetAccessToken {
            token: Redacted::new(token.to_owned()),
            reply,
        })
        .await?;
        done.await.map_err(|_| Error::ChannelClosed)
    }

    async fn command(&self, command: Command) -> Result<(), Error> {
        self.commands
            .send(command)
            .await
            .map_err(|_| Error::ChannelClosed)
    }
}

/// A joined channel: send broadcasts, read [`ChannelEvent`]s. Dropping it
/// leaves the channel (without waiting for the server).
pub struct Channel {
    topic: String,
    id: u64,
    commands: mpsc::Sender<Command>,
    events: mpsc::Receiver<ChannelEvent>,
    left: bool,
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The topic can be a room's only secret.
        f.debug_struct("Channel").field("id", &self.id).finish()
    }
}

impl Channel {
    /// The topic name, without `realtime:`.
    pub fn topic(&self) -> &str {
        self.topic.strip_prefix("realtime:").unwrap_or(&self.topic)
    }

    /// Broadcasts `payload` under `event` (binary kind 3 on vsn 2.0.0, like
    /// realtime-js). With `broadcast_ack`, waits for the server's ok;
    /// otherwise returns once the frame is written. No retries here: the
    /// caller decides.
    ///
    /// # Errors
    /// [`Error::Disconnected`] while the socket or channel is down (it
    /// rejoins by itself), [`Error::TimedOut`] if the ack does not come,
    /// [`Error::PushRejected`] if the server refuses it (e.g. too large),
    /// [`Error::ChannelClosed`] if the channel is over.
    pub async fn send(&self, event: &str, payload: Value) -> Result<(), Error> {
        self.push(Broadcast::json(event, payload)).await
    }

    /// Broadcasts raw bytes (payload encoding 0). vsn 2.0.0 only; vsn
    /// 1.0.0 subscribers never see them (Supabase does not convert them).
    ///
    /// # Errors
    /// As [`Channel::send`], and [`Error::Encode`] on vsn 1.0.0.
    pub async fn send_binary(&self, event: &str, payload: Vec<u8>) -> Result<(), Error> {
        self.push(Broadcast::binary(event, payload)).await
    }

    async fn push(&self, broadcast: Broadcast) -> Result<(), Error> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Push {
                topic: self.topic.clone(),
                id: self.id,
                payload: Payload::Broadcast(broadcast),
                reply,
            })
            .await
            .map_err(|_| Error::ChannelClosed)?;
        answer.await.map_err(|_| Error::ChannelClosed)?
    }

    /// The next event; `None` once the channel is over and every event was
    /// read.
    pub async fn recv(&mut self) -> Option<ChannelEvent> {
        self.events.recv().await
    }

    /// Leaves the channel (`phx_leave`) and waits for the server's ok, at
    /// most the push timeout; while disconnected there is nothing to wait
    /// for.
    ///
    /// # Errors
    /// [`Error::ChannelClosed`] if the client's task is gone (the channel
    /// is then gone too).
    pub async fn leave(mut self) -> Result<(), Error> {
        self.left = true;
        let (reply, done) = oneshot::channel();
        self.commands
            .send(Command::Leave {
                topic: self.topic.clone(),
                id: self.id,
                reply: Some(reply),
            })
            .await
            .map_err(|_| Error::ChannelClosed)?;
        done.await.map_err(|_| Error::ChannelClosed)
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        if !self.left {
            // Best effort: if the queue is full or the task is gone, the
            // channel dies with the socket anyway.
            let _ = self.commands.try_send(Command::Leave {
                topic: std::mem::take(&mut self.topic),
                id: self.id,
                reply: None,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_schedule() {
        let secs: Vec<u64> = (0..7).map(|a| reconnect_delay(a).as_secs()).collect();
        assert_eq!(secs, [1, 2, 5, 10, 10, 10, 10]);
    }

    #[test]
    fn join_config_in_realtime_js_shape() {
        assert_eq!(
            ChannelConfig::default().to_json(),
            json!({
                "broadcast": {"ack": false, "self": false},
                "presence": {"key": "", "enabled": false},
                "postgres_changes": [],
                "private": false,
            })
        );
        let config = ChannelConfig {
            private: true,
            broadcast_ack: true,
            broadcast_self: true,
            presence_key: Some("me".into()),
        };
        assert_eq!(
            config.to_json(),
            json!({
                "broadcast": {"ack": true, "self": true},
                "presence": {"key": "me", "enabled": true},
                "postgres_changes": [],
                "private": true,
            })
        );
    }

    #[test]
    fn close_reasons_read_well() {
        let reason = CloseReason::Server {
            message: Some("Too many messages per second".into()),
        };
        assert_eq!(
            reason.to_string(),
            "closed by the server: Too many messages per second"
        );
    }
}
