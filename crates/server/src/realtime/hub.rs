//! Who is subscribed to what: the topic table every connection shares.
//!
//! The hub holds, per topic, the subscribed connections and their presence
//! entries, and fans messages out to connection outboxes with `try_send`, so
//! it never awaits while its lock is held. A connection whose outbox is full
//! (a reader that stopped reading) is cancelled instead of buffering without
//! bound: one slow client never slows the others.

use std::collections::{BTreeMap, HashMap};

use axum::extract::ws::Message as WsMessage;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use voicemeet_proto::phoenix::{self, Frame, Message, Vsn};

/// Identifies one websocket connection for the life of the server.
pub type ConnId = u64;

/// A topic as the hub keys it: public and private channels of the same name
/// are separate, as in Supabase (a public subscriber never sees private
/// traffic).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicKey {
    /// The full topic, `realtime:<name>`.
    pub topic: String,
    /// Joined with `config.private: true`.
    pub private: bool,
}

/// What the hub needs to reach a connection.
#[derive(Debug, Clone)]
pub struct Outbox {
    /// Frames for the connection's writer task.
    pub tx: mpsc::Sender<WsMessage>,
    /// The connection's wire version.
    pub vsn: Vsn,
    /// Cancelled to drop the connection (its outbox overflowed).
    pub kill: CancellationToken,
    /// The authenticated user of the connection's socket token, if any.
    pub user: Option<String>,
}

/// One connection's subscription to a topic.
#[derive(Debug, Clone)]
pub struct Subscription {
    /// The channel's join ref, stamped on channel pushes.
    pub join_ref: Option<String>,
    /// `config.broadcast.self`: also deliver the subscriber's own broadcasts.
    pub receive_own: bool,
    /// The presence key (`config.presence.key`, or a random one).
    pub presence_key: String,
    /// The user this channel is authorised as.
    pub user: Option<String>,
}

#[derive(Debug, Clone)]
struct PresenceMeta {
    conn: ConnId,
    phx_ref: String,
    payload: Map<String, Value>,
}

impl PresenceMeta {
    fn to_json(&self, prev: Option<&str>) -> Value {
        let mut meta = self.payload.clone();
        meta.insert("phx_ref".into(), self.phx_ref.clone().into());
        if let Some(prev) = prev {
            meta.insert("phx_ref_prev".into(), prev.into());
        }
        Value::Object(meta)
    }
}

#[derive(Debug, Default)]
struct Topic {
    subscribers: HashMap<ConnId, Subscription>,
    presence: BTreeMap<String, Vec<PresenceMeta>>,
}

impl Topic {
    fn presence_state(&self) -> Value {
        let mut state = Map::new();
        for (key, metas) in &self.presence {
            let metas: Vec<Value> = metas.iter().map(|m| m.to_json(None)).collect();
            state.insert(key.clone(), json!({ "metas": metas }));
        }
        Value::Object(state)
    }
}

/// What a track call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackOutcome {
    /// New or changed presence; a diff went out.
    Changed,
    /// The same payload was already tracked: nothing to announce.
    Unchanged,
}

/// The topic table. Wrap it in one lock; every method is short and never
/// awaits.
#[derive(Debug, Default)]
pub struct Hub {
    connections: HashMap<ConnId, Outbox>,
    topics: HashMap<TopicKey, Topic>,
    /// Which topics each connection joined, so a disconnect costs its own
    /// channels, not a scan of every topic (10,000 sockets closing at once).
    joined: HashMap<ConnId, Vec<TopicKey>>,
    /// A copy of every user broadcast relayed, when someone in-process asked
    /// for it with [`Hub::audit`]; never reachable over the network.
    audit: Option<mpsc::UnboundedSender<Message>>,
    /// Per user, how many channels are joined on their private inbox topic;
    /// matchmaking only queues users it can reach.
    inbox_listeners: HashMap<String, usize>,
    next_phx_ref: u64,
}

/// The private topic on which a user hears about their matches.
pub fn inbox_topic(user: &str) -> String {
    format!("realtime:inbox:{user}")
}

impl Hub {
    /// Number of live connections.
    pub fn connection_count(&self) -> usize {
        self.connections.len()
    }

    /// Registers a connection's outbox.
    pub fn register(&mut self, conn: ConnId, outbox: Outbox) {
        self.connections.insert(conn, outbox);
    }

    /// Forgets a connection: leaves every topic it joined (announcing its
    /// presence leaves) and returns the users whose last inbox listener this
    /// was, so matchmaking can drop them from the queue.
    pub fn unregister(&mut self, conn: ConnId) -> Vec<String> {
        let keys = self.joined.get(&conn).cloned().unwrap_or_default();
        let mut gone = Vec::new();
        for key in keys {
            if let Some(user) = self.leave(conn, &key) {
                gone.push(user);
            }
        }
        self.connections.remove(&conn);
        self.joined.remove(&conn);
        gone
    }

    /// Whether `user` has at least one channel joined on their inbox.
    pub fn has_inbox_listener(&self, user: &str) -> bool {
        self.inbox_listeners.get(user).is_some_and(|n| *n > 0)
    }

    /// Subscribes a connection to a topic and returns the presence state to
    /// push after the join reply.
    pub fn join(&mut self, conn: ConnId, key: TopicKey, sub: Subscription) -> Value {
        if key.private
            && let Some(user) = &sub.user
            && key.topic == inbox_topic(user)
        {
            *self.inbox_listeners.entry(user.clone()).or_default() += 1;
        }
        let joined = self.joined.entry(conn).or_default();
        if !joined.contains(&key) {
            joined.push(key.clone());
        }
        let topic = self.topics.entry(key).or_default();
        topic.subscribers.insert(conn, sub);
        topic.presence_state()
    }

    /// Unsubscribes a connection from a topic, announcing its presence
    /// leave. Returns the user if this was their last inbox listener.
    pub fn leave(&mut self, conn: ConnId, key: &TopicKey) -> Option<String> {
        if let Some(joined) = self.joined.get_mut(&conn) {
            joined.retain(|k| k != key);
        }
        let topic = self.topics.get_mut(key)?;
        let sub = topic.subscribers.remove(&conn)?;
        let leaves = remove_presence(topic, conn);
        let empty = topic.subscribers.is_empty();
        if !leaves.is_empty() {
            let diff = Message::presence_diff(key.topic.clone(), json!({}), Value::Object(leaves));
            self.fan_out(key, &diff, None);
        }
        if empty {
            self.topics.remove(key);
        }
        let user = sub.user?;
        if key.private && key.topic == inbox_topic(&user) {
            let count = self.inbox_listeners.entry(user.clone()).or_default();
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.inbox_listeners.remove(&user);
                return Some(user);
            }
        }
        None
    }

    /// Returns a stream of every user broadcast relayed from now on: what the
    /// backend learns and passes along, for tests that prove no address but
    /// the relay's ever crosses it. Replaces an earlier tap.
    pub fn audit(&mut self) -> mpsc::UnboundedReceiver<Message> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.audit = Some(tx);
        rx
    }

    /// Delivers a user broadcast to the topic's subscribers (the sender too
    /// if it asked for its own broadcasts).
    pub fn broadcast(&mut self, from: ConnId, key: &TopicKey, msg: &Message) {
        let include_sender = self
            .topics
            .get(key)
            .and_then(|t| t.subscribers.get(&from))
            .is_some_and(|s| s.receive_own);
        if let Some(audit) = &self.audit
            && audit.send(msg.clone()).is_err()
        {
            self.audit = None;
        }
        self.fan_out(key, msg, (!include_sender).then_some(from));
    }

    /// Sends a server-originated message to every subscriber of a topic.
    pub fn publish(&mut self, key: &TopicKey, msg: &Message) {
        self.fan_out(key, msg, None);
    }

    /// Tracks (or updates) a connection's presence on a topic and announces
    /// the change to every subscriber, the tracker included.
    pub fn track(
        &mut self,
        conn: ConnId,
        key: &TopicKey,
        payload: Map<String, Value>,
    ) -> TrackOutcome {
        self.next_phx_ref += 1;
        let phx_ref = format!("F{:x}", self.next_phx_ref);
        let Some(topic) = self.topics.get_mut(key) else {
            return TrackOutcome::Unchanged;
        };
        let Some(presence_key) = topic.subscribers.get(&conn).map(|s| s.presence_key.clone())
        else {
            return TrackOutcome::Unchanged;
        };
        let metas = topic.presence.entry(presence_key.clone()).or_default();
        let previous = metas.iter().position(|m| m.conn == conn);
        if let Some(i) = previous
            && metas[i].payload == payload
        {
            return TrackOutcome::Unchanged;
        }
        let new_meta = PresenceMeta {
            conn,
            phx_ref,
            payload,
        };
        let (joins, leaves) = match previous {
            Some(i) => {
                let old = std::mem::replace(&mut metas[i], new_meta.clone());
                (
                    json!({ presence_key.clone(): { "metas": [new_meta.to_json(Some(&old.phx_ref))] } }),
                    json!({ presence_key: { "metas": [old.to_json(None)] } }),
                )
            }
            None => {
                metas.push(new_meta.clone());
                (
                    json!({ presence_key: { "metas": [new_meta.to_json(None)] } }),
                    json!({}),
                )
            }
        };
        let diff = Message::presence_diff(key.topic.clone(), joins, leaves);
        self.fan_out(key, &diff, None);
        TrackOutcome::Changed
    }

    /// Removes a connection's presence from a topic, announcing the leave.
    pub fn untrack(&mut self, conn: ConnId, key: &TopicKey) {
        let Some(topic) = self.topics.get_mut(key) else {
            return;
        };
        let leaves = remove_presence(topic, conn);
        if !leaves.is_empty() {
            let diff = Message::presence_diff(key.topic.clone(), json!({}), Value::Object(leaves));
            self.fan_out(key, &diff, None);
        }
    }

    /// Encodes once per wire version and queues the frame on each
    /// subscriber's outbox, skipping `except`.
    fn fan_out(&mut self, key: &TopicKey, msg: &Message, except: Option<ConnId>) {
        let Some(topic) = self.topics.get(key) else {
            return;
        };
        let mut encoded: [Option<Option<WsMessage>>; 2] = [None, None];
        for conn in topic.subscribers.keys() {
            if Some(*conn) == except {
                continue;
            }
            let Some(outbox) = self.connections.get(conn) else {
                continue;
            };
            let slot = match outbox.vsn {
                Vsn::V1 => 0,
                Vsn::V2 => 1,
            };
            // A message this subscriber's version cannot carry (raw bytes to
            // vsn 1.0.0) is skipped for it, as Supabase does.
            let frame = encoded[slot].get_or_insert_with(|| to_ws(outbox.vsn, msg));
            if let Some(frame) = frame {
                deliver(outbox, frame.clone());
            }
        }
    }

    /// Queues a message on one connection.
    pub fn send_to(&self, conn: ConnId, msg: &Message) {
        if let Some(outbox) = self.connections.get(&conn)
            && let Some(frame) = to_ws(outbox.vsn, msg)
        {
            deliver(outbox, frame);
        }
    }
}

fn remove_presence(topic: &mut Topic, conn: ConnId) -> Map<String, Value> {
    let mut leaves = Map::new();
    topic.presence.retain(|key, metas| {
        let (gone, kept): (Vec<PresenceMeta>, Vec<PresenceMeta>) =
            metas.drain(..).partition(|m| m.conn == conn);
        *metas = kept;
        if !gone.is_empty() {
            let gone: Vec<Value> = gone.iter().map(|m| m.to_json(None)).collect();
            leaves.insert(key.clone(), json!({ "metas": gone }));
        }
        !metas.is_empty()
    });
    leaves
}

/// Encodes a message for a websocket in the given version; `None` if that
/// version cannot carry it.
pub fn to_ws(vsn: Vsn, msg: &Message) -> Option<WsMessage> {
    match phoenix::encode(vsn, msg).ok()? {
        Frame::Text(text) => Some(WsMessage::Text(text.into())),
        Frame::Binary(bytes) => Some(WsMessage::Binary(bytes.into())),
    }
}

fn deliver(outbox: &Outbox, frame: WsMessage) {
    if outbox.tx.try_send(frame).is_err() {
        // Full (the reader stopped reading) or closed: drop the connection
        // rather than buffer without bound or block everyone else.
        outbox.kill.cancel();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn conn(hub: &mut Hub, id: ConnId, vsn: Vsn) -> mpsc::Receiver<WsMessage> {
        let (tx, rx) = mpsc::channel(8);
        hub.register(
            id,
            Outbox {
                tx,
                vsn,
                kill: CancellationToken::new(),
                user: None,
            },
        );
        rx
    }

    fn sub(key: &str, user: Option<&str>) -> Subscription {
        Subscription {
            join_ref: Some("1".into()),
            receive_own: false,
            presence_key: key.into(),
            user: user.map(Into::into),
        }
    }

    fn key(topic: &str, private: bool) -> TopicKey {
        TopicKey {
            topic: topic.into(),
            private,
        }
    }

    fn texts(rx: &mut mpsc::Receiver<WsMessage>) -> Vec<Value> {
        let mut out = Vec::new();
        while let Ok(WsMessage::Text(t)) = rx.try_recv() {
            out.push(serde_json::from_str(t.as_str()).unwrap());
        }
        out
    }

    #[test]
    fn public_and_private_topics_of_one_name_are_separate() {
        let mut hub = Hub::default();
        let mut a = conn(&mut hub, 1, Vsn::V2);
        let _b = conn(&mut hub, 2, Vsn::V2);
        hub.join(1, key("realtime:x", false), sub("a", None));
        hub.join(2, key("realtime:x", true), sub("b", None));
        let msg = Message::broadcast(
            "realtime:x",
            json!({"type":"broadcast","event":"e","payload":{}}),
        );
        hub.broadcast(2, &key("realtime:x", true), &msg);
        assert!(texts(&mut a).is_empty());
    }

    #[test]
    fn presence_track_update_and_leave_send_diffs_to_everyone() {
        let mut hub = Hub::default();
        let mut a = conn(&mut hub, 1, Vsn::V2);
        let mut b = conn(&mut hub, 2, Vsn::V1);
        let k = key("realtime:lobby", false);
        hub.join(1, k.clone(), sub("alice", None));
        let state = hub.join(2, k.clone(), sub("bob", None));
        assert_eq!(state, json!({}));
        let payload = json!({"status": "waiting"}).as_object().unwrap().clone();
        assert_eq!(hub.track(1, &k, payload.clone()), TrackOutcome::Changed);
        assert_eq!(hub.track(1, &k, payload), TrackOutcome::Unchanged);
        let a_msgs = texts(&mut a);
        assert_eq!(a_msgs.len(), 1, "the tracker gets its own join diff");
        assert_eq!(a_msgs[0][3], "presence_diff");
        let b_msgs = texts(&mut b);
        assert_eq!(
            b_msgs[0]["payload"]["joins"]["alice"]["metas"][0]["status"],
            "waiting"
        );

        let updated = json!({"status": "talking"}).as_object().unwrap().clone();
        hub.track(1, &k, updated);
        let diff = &texts(&mut b)[0]["payload"];
        assert_eq!(diff["joins"]["alice"]["metas"][0]["status"], "talking");
        assert!(diff["joins"]["alice"]["metas"][0]["phx_ref_prev"].is_string());
        assert_eq!(diff["leaves"]["alice"]["metas"][0]["status"], "waiting");

        hub.unregister(1);
        let diff = &texts(&mut b)[0]["payload"];
        assert_eq!(diff["leaves"]["alice"]["metas"][0]["status"], "talking");
        let state = hub.join(2, k, sub("bob", None));
        assert_eq!(state, json!({}));
    }

    #[test]
    fn a_full_outbox_cancels_that_connection_only() {
        let mut hub = Hub::default();
        let (tx, _rx) = mpsc::channel(1);
        let kill = CancellationToken::new();
        hub.register(
            1,
            Outbox {
                tx,
                vsn: Vsn::V2,
                kill: kill.clone(),
                user: None,
            },
        );
        let mut other = conn(&mut hub, 2, Vsn::V2);
        let k = key("realtime:t", false);
        hub.join(1, k.clone(), sub("a", None));
        hub.join(2, k.clone(), sub("b", None));
        let msg = Message::broadcast(
            "realtime:t",
            json!({"type":"broadcast","event":"e","payload":1}),
        );
        hub.publish(&k, &msg);
        assert!(!kill.is_cancelled());
        hub.publish(&k, &msg);
        assert!(kill.is_cancelled());
        assert_eq!(texts(&mut other).len(), 2);
    }

    #[test]
    fn inbox_listeners_are_counted_per_user() {
        let mut hub = Hub::default();
        let _a = conn(&mut hub, 1, Vsn::V2);
        let _b = conn(&mut hub, 2, Vsn::V2);
        let inbox = key(&inbox_topic("u1"), true);
        hub.join(1, inbox.clone(), sub("x", Some("u1")));
        hub.join(2, inbox.clone(), sub("y", Some("u1")));
        assert!(hub.has_inbox_listener("u1"));
        assert_eq!(hub.unregister(1), Vec::<String>::new());
        assert!(hub.has_inbox_listener("u1"));
        assert_eq!(hub.leave(2, &inbox), Some("u1".to_string()));
        assert!(!hub.has_inbox_listener("u1"));
    }
}
