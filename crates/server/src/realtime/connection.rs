//! One websocket connection: decode each frame, act on it, answer in the
//! connection's wire version. The reader loop owns the connection's channel
//! table; a writer task drains the outbox the hub and this loop fill.
//!
//! What each inbound message gets (PROTOCOLS.md §1.5–1.11):
//! - `heartbeat` on `phoenix`: ok.
//! - `phx_join`: ok `{"postgres_changes":[]}` then `presence_state` if
//!   presence is on; or an error reply with Realtime's `Code: message`.
//! - `broadcast`: fanned out; ok if `ack`; oversize is an error with `ack`
//!   and silently dropped without, as on Supabase.
//! - `presence` track/untrack: ok, and a `presence_diff` to everyone.
//! - `access_token`: re-verified, never answered; a bad token closes the
//!   channel with a `system` error.
//! - `phx_leave`: ok, then `phx_close`.
//! - a push on a topic not joined: `unmatched topic`.
//! - a frame that does not decode: the socket closes with 1007 and a reason;
//!   nothing else is affected.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket, close_code};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::{Instant, interval, sleep_until};
use tokio_util::sync::CancellationToken;
use tracing::debug;
use voicemeet_proto::Redacted;
use voicemeet_proto::phoenix::{self, Message, Payload, Status, Vsn, event};

use super::hub::{ConnId, Outbox, Subscription, TopicKey, TrackOutcome, to_ws};
use super::{
    MAX_CHANNELS_PER_CLIENT, OUTBOX_CAPACITY, PRESENCE_CALLS_PER_WINDOW, PRESENCE_WINDOW,
    TOKEN_CHECK_INTERVAL, join_reason,
};
use crate::clock::unix_now;
use crate::jwt::Claims;
use crate::state::SharedState;

/// A channel this connection joined.
#[derive(Debug)]
struct Channel {
    key: TopicKey,
    join_ref: Option<String>,
    ack: bool,
    /// The token the channel is authorised with, and its expiry.
    token: Redacted<String>,
    exp: u64,
}

/// A token bucket for inbound messages: refills `rate` per second up to
/// `rate`.
#[derive(Debug)]
struct RateLimiter {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    fn new(rate: u32, now: Instant) -> Self {
        let rate = f64::from(rate.max(1));
        Self {
            rate,
            tokens: rate,
            last: now,
        }
    }

    fn allow(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

struct Connection {
    state: SharedState,
    id: ConnId,
    vsn: Vsn,
    connect_token: Redacted<String>,
    channels: HashMap<String, Channel>,
    limiter: RateLimiter,
    presence_calls: VecDeque<Instant>,
    out: mpsc::Sender<WsMessage>,
}

/// Why the reader loop ended.
enum Exit {
    /// The client closed or the socket failed.
    Gone,
    /// We close with this code and reason.
    Close(u16, String),
}

/// Serves one upgraded websocket until it closes.
pub async fn run(
    state: SharedState,
    id: ConnId,
    vsn: Vsn,
    connect_token: String,
    connect_claims: Claims,
    socket: WebSocket,
) {
    let (mut sink, mut stream) = socket.split();
    let (out, mut outbox) = mpsc::channel::<WsMessage>(OUTBOX_CAPACITY);
    let kill = CancellationToken::new();
    state.realtime.hub().register(
        id,
        Outbox {
            tx: out.clone(),
            vsn,
            kill: kill.clone(),
            user: connect_claims.sub.clone(),
        },
    );
    let writer = tokio::spawn(async move {
        while let Some(frame) = outbox.recv().await {
            let closing = matches!(frame, WsMessage::Close(_));
            if sink.send(frame).await.is_err() || closing {
                break;
            }
        }
        // Best effort: the peer may already be gone.
        let _ = sink.close().await;
    });

    let now = Instant::now();
    let limiter = RateLimiter::new(state.realtime.limits.max_messages_per_second, now);
    let mut conn = Connection {
        state: state.clone(),
        id,
        vsn,
        connect_token: Redacted::new(connect_token),
        channels: HashMap::new(),
        limiter,
        presence_calls: VecDeque::new(),
        out,
    };
    let idle_timeout = state.realtime.limits.idle_timeout;
    let mut idle_deadline = now + idle_timeout;
    let mut token_check = interval(TOKEN_CHECK_INTERVAL);
    let exit = loop {
        tokio::select! {
            () = state.shutdown.cancelled() => {
                break Exit::Close(close_code::AWAY, "server shutting down".into());
            }
            () = kill.cancelled() => {
                break Exit::Close(close_code::POLICY, "client too slow to read".into());
            }
            () = sleep_until(idle_deadline) => {
                break Exit::Close(close_code::NORMAL, "idle timeout".into());
            }
            _ = token_check.tick() => conn.expire_tokens(unix_now()),
            frame = stream.next() => {
                idle_deadline = Instant::now() + idle_timeout;
                let decoded = match frame {
                    None | Some(Err(_)) | Some(Ok(WsMessage::Close(_))) => break Exit::Gone,
                    Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => continue,
                    Some(Ok(WsMessage::Text(text))) => {
                        let len = text.len();
                        phoenix::decode_text(vsn, text.as_str(), state.realtime.limits.max_frame_bytes)
                            .map(|m| (m, len))
                    }
                    Some(Ok(WsMessage::Binary(bytes))) => {
                        let len = bytes.len();
                        phoenix::decode_binary(vsn, &bytes, state.realtime.limits.max_frame_bytes)
                            .map(|m| (m, len))
                    }
                };
                match decoded {
                    Ok((msg, len)) => conn.handle(msg, len),
                    Err(err) => {
                        debug!(conn = id, %err, "malformed frame");
                        break Exit::Close(close_code::INVALID, format!("malformed frame: {err}"));
                    }
                }
            }
        }
    };

    if let Exit::Close(code, reason) = exit {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        // If the outbox is full the writer is stuck anyway; it ends when the
        // socket drops below.
        let _ = conn.out.try_send(WsMessage::Close(Some(frame)));
    }
    let gone_users = state.realtime.hub().unregister(id);
    for user in gone_users {
        crate::matchmaking::inbox_closed(&state, &user);
    }
    drop(conn);
    // The writer ends once every sender (ours and the hub's) is gone.
    if tokio::time::timeout(Duration::from_secs(2), writer)
        .await
        .is_err()
    {
        debug!(conn = id, "writer did not finish; dropping the socket");
    }
}

impl Connection {
    fn send(&self, msg: &Message) {
        if let Some(frame) = to_ws(self.vsn, msg) {
            // A full outbox means the client stopped reading; the hub's
            // deliveries will cancel the connection.
            let _ = self.out.try_send(frame);
        }
    }

    fn reply_ok(&self, push: &Message, response: Value) {
        self.send(&Message::reply_ok(push, response));
    }

    fn reply_error(&self, push: &Message, reason: &str) {
        self.send(&Message::reply_error(push, json!({ "reason": reason })));
    }

    fn handle(&mut self, msg: Message, frame_len: usize) {
        if msg.topic == phoenix::PHOENIX_TOPIC && msg.event == event::HEARTBEAT {
            self.reply_ok(&msg, json!({}));
            return;
        }
        if msg.event == event::JOIN {
            self.join(&msg);
            return;
        }
        let Some(channel) = self.channels.get(&msg.topic) else {
            self.reply_error(&msg, "unmatched topic");
            return;
        };
        // Pushes with a stale join_ref belong to an earlier join: ignored.
        if msg.join_ref.is_some() && msg.join_ref != channel.join_ref {
            return;
        }
        let now = Instant::now();
        if !self.limiter.allow(now) {
            self.close_channel(&msg.topic, "Too many messages per second");
            return;
        }
        match msg.event.as_str() {
            event::BROADCAST => self.broadcast(&msg, frame_len),
            event::PRESENCE => self.presence(&msg, frame_len, now),
            event::ACCESS_TOKEN => self.access_token(&msg),
            event::LEAVE => {
                self.reply_ok(&msg, json!({}));
                self.leave(&msg.topic);
            }
            _ => self.reply_error(&msg, "Unknown Error on Channel"),
        }
    }

    fn join(&mut self, msg: &Message) {
        let Payload::Json(payload) = &msg.payload else {
            self.reply_error(msg, "Unknown Error on Channel");
            return;
        };
        let Some(name) = msg.topic.strip_prefix("realtime:") else {
            self.reply_error(msg, "unmatched topic");
            return;
        };
        if name.is_empty() {
            self.reply_error(msg, "TopicNameRequired: You must provide a topic name");
            return;
        }
        let config = payload.get("config").cloned().unwrap_or(Value::Null);
        let flag = |path: &[&str]| flexible_bool(path.iter().try_fold(&config, |v, k| v.get(k)));
        let private = flag(&["private"]);
        let receive_own = flag(&["broadcast", "self"]);
        let ack = flag(&["broadcast", "ack"]);
        let presence_enabled = flag(&["presence", "enabled"]);
        let presence_key = config
            .get("presence")
            .and_then(|p| p.get("key"))
            .and_then(Value::as_str)
            .filter(|k| !k.is_empty())
            .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
        // Replay is allowed on private channels only; we keep no history, so
        // a private replay simply yields nothing.
        let wants_replay = config
            .get("broadcast")
            .and_then(|b| b.get("replay"))
            .is_some_and(|r| !r.is_null());
        if wants_replay && !private {
            self.reply_error(
                msg,
                "UnableToReplayMessages: Replay is not allowed for public channels",
            );
            return;
        }

        let token = payload
            .get("access_token")
            .or_else(|| payload.get("user_token"))
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty() && !t.starts_with("sb_"))
            .map_or_else(|| self.connect_token.expose().clone(), str::to_owned);
        let now = unix_now();
        let claims = match self.state.jwt.verify(&token, now) {
            Ok(claims) => claims,
            Err(err) => {
                self.reply_error(msg, &join_reason(err, now));
                return;
            }
        };
        if private
            && !self
                .state
                .realtime
                .may_join_private(&msg.topic, claims.sub.as_deref())
        {
            self.reply_error(
                msg,
                &format!("Unauthorized: You do not have permissions to read from this Channel topic: {name}"),
            );
            return;
        }
        // Joining a topic again replaces the earlier channel, as Phoenix does.
        if let Some(old) = self.channels.get(&msg.topic) {
            let close = Message::close(old.join_ref.clone(), msg.topic.clone());
            self.send(&close);
            self.leave(&msg.topic);
        }
        if self.channels.len() >= MAX_CHANNELS_PER_CLIENT {
            self.reply_error(msg, "ChannelRateLimitReached: Too many channels");
            return;
        }
        let key = TopicKey {
            topic: msg.topic.clone(),
            private,
        };
        let join_ref = msg.join_ref.clone().or_else(|| msg.msg_ref.clone());
        let sub = Subscription {
            join_ref: join_ref.clone(),
            receive_own,
            presence_key,
            user: claims.sub.clone(),
        };
        // Queue the reply and subscribe under one hub lock. The reply goes
        // first, so the client has its join ref when presence traffic
        // arrives; and the subscription exists before anyone can act on the
        // reply. Replying before taking the lock let a client that calls
        // `join_queue` as soon as its inbox is SUBSCRIBED race this thread
        // to the hub and be refused as "not listening".
        let presence_state = {
            let mut hub = self.state.realtime.hub();
            self.reply_ok(msg, json!({ "postgres_changes": [] }));
            hub.join(self.id, key.clone(), sub)
        };
        if presence_enabled {
            self.send(&Message::presence_state(
                join_ref.clone(),
                msg.topic.clone(),
                presence_state,
            ));
        }
        self.channels.insert(
            msg.topic.clone(),
            Channel {
                key,
                join_ref,
                ack,
                token: Redacted::new(token),
                exp: claims.exp,
            },
        );
    }

    fn leave(&mut self, topic: &str) {
        if let Some(channel) = self.channels.remove(topic) {
            self.send(&Message::close(channel.join_ref.clone(), topic.to_owned()));
            let gone = self.state.realtime.hub().leave(self.id, &channel.key);
            if let Some(user) = gone {
                crate::matchmaking::inbox_closed(&self.state, &user);
            }
        }
    }

    /// Ends a channel with a `system` error followed by `phx_close`.
    fn close_channel(&mut self, topic: &str, message: &str) {
        if let Some(channel) = self.channels.get(topic) {
            self.send(&Message::system(
                channel.join_ref.clone(),
                topic.to_owned(),
                Status::Error,
                message,
            ));
        }
        self.leave(topic);
    }

    fn broadcast(&mut self, msg: &Message, frame_len: usize) {
        let Some(channel) = self.channels.get(&msg.topic) else {
            return;
        };
        if msg.as_broadcast().is_none() {
            self.reply_error(msg, "Unknown Error on Channel");
            return;
        }
        if frame_len > self.state.realtime.limits.max_payload_bytes {
            if channel.ack {
                self.send(&Message::reply_error(
                    msg,
                    json!({ "error": "payload_size_exceeded" }),
                ));
            }
            return;
        }
        let out = Message::broadcast(msg.topic.clone(), msg.payload.clone());
        self.state
            .realtime
            .hub()
            .broadcast(self.id, &channel.key, &out);
        if channel.ack {
            self.reply_ok(msg, json!({}));
        }
    }

    fn presence(&mut self, msg: &Message, frame_len: usize, now: Instant) {
        let Some(channel) = self.channels.get(&msg.topic) else {
            return;
        };
        let key = channel.key.clone();
        while self
            .presence_calls
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= PRESENCE_WINDOW)
        {
            self.presence_calls.pop_front();
        }
        if self.presence_calls.len() >= PRESENCE_CALLS_PER_WINDOW {
            self.close_channel(&msg.topic, "Client presence rate limit exceeded");
            return;
        }
        self.presence_calls.push_back(now);
        let Payload::Json(payload) = &msg.payload else {
            self.reply_error(msg, "Unknown Error on Channel");
            return;
        };
        let kind = payload
            .get("event")
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase);
        match kind.as_deref() {
            Some("track") => {
                if frame_len > self.state.realtime.limits.max_payload_bytes {
                    self.close_channel(&msg.topic, "Track message size exceeded");
                    return;
                }
                let Some(meta) = payload.get("payload").and_then(Value::as_object) else {
                    self.reply_error(msg, "Presence track payload must be a map");
                    return;
                };
                // Re-tracking identical data is a no-op for everyone else.
                let _: TrackOutcome = self.state.realtime.hub().track(self.id, &key, meta.clone());
                self.reply_ok(msg, json!({}));
            }
            Some("untrack") => {
                self.state.realtime.hub().untrack(self.id, &key);
                self.reply_ok(msg, json!({}));
            }
            _ => self.reply_error(msg, "Unknown Error on Channel"),
        }
    }

    fn access_token(&mut self, msg: &Message) {
        let Payload::Json(payload) = &msg.payload else {
            return;
        };
        let Some(token) = payload.get("access_token").and_then(Value::as_str) else {
            return;
        };
        let Some(channel) = self.channels.get(&msg.topic) else {
            return;
        };
        if token.is_empty() || token.starts_with("sb_") || token == channel.token.expose() {
            return;
        }
        let now = unix_now();
        match self.state.jwt.verify(token, now) {
            Ok(claims) => {
                if channel.key.private
                    && !self
                        .state
                        .realtime
                        .may_join_private(&msg.topic, claims.sub.as_deref())
                {
                    let name = msg
                        .topic
                        .strip_prefix("realtime:")
                        .unwrap_or(&msg.topic)
                        .to_owned();
                    self.close_channel(
                        &msg.topic,
                        &format!(
                            "You no longer have permission to read from this Channel topic: {name}"
                        ),
                    );
                    return;
                }
                if let Some(channel) = self.channels.get_mut(&msg.topic) {
                    channel.token = Redacted::new(token.to_owned());
                    channel.exp = claims.exp;
                }
            }
            Err(err) => {
                let reason = join_reason(err, now);
                let message = reason
                    .split_once(": ")
                    .map_or(reason.as_str(), |(_, m)| m)
                    .to_owned();
                self.close_channel(&msg.topic, &message);
            }
        }
    }

    /// Closes channels whose token has expired, as Realtime's periodic
    /// re-verification does.
    fn expire_tokens(&mut self, now: u64) {
        let expired: Vec<(String, u64)> = self
            .channels
            .iter()
            .filter(|(_, c)| c.exp <= now)
            .map(|(t, c)| (t.clone(), c.exp))
            .collect();
        for (topic, exp) in expired {
            let ago = now.saturating_sub(exp);
            self.close_channel(&topic, &format!("Token has expired {ago} seconds ago"));
        }
    }
}

/// Realtime's `FlexibleBoolean`: `true`/`false`, or those words in any case.
fn flexible_bool(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limiter_allows_a_burst_then_refills() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(3, start);
        assert!((0..3).all(|_| limiter.allow(start)));
        assert!(!limiter.allow(start));
        assert!(limiter.allow(start + Duration::from_millis(340)));
        assert!(!limiter.allow(start + Duration::from_millis(340)));
    }

    #[test]
    fn flexible_booleans() {
        assert!(flexible_bool(Some(&json!(true))));
        assert!(flexible_bool(Some(&json!("TRUE"))));
        assert!(!flexible_bool(Some(&json!("no"))));
        assert!(!flexible_bool(None));
    }
}
