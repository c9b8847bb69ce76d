//! The Realtime client against a scripted server, for what the real one
//! never does on demand: ignore heartbeats and acks, send messages of an
//! earlier join, crash a channel, refuse a rejoin. Each test checks the exact
//! frames the client sends (PROTOCOLS.md §1).

mod common;

use std::time::Duration;

use common::{QUIET_PERIOD, RECV_TIMEOUT, assert_quiet, next_broadcast, next_event};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use voicemeet_core::proto::phoenix::{
    self, Broadcast, BroadcastBody, Frame, MAX_FRAME_BYTES, Message, Payload, Vsn, event,
};
use voicemeet_core::realtime::{
    Channel, ChannelConfig, ChannelEvent, CloseReason, RealtimeClient, RealtimeConfig,
};
use voicemeet_core::{Error, JoinRefusal};

/// Short timings so each failure path takes well under a second. Every
/// timing stays at its default except in the test about it, so a loaded
/// machine cannot turn a slow answer into a different code path.
const HEARTBEAT: Duration = Duration::from_millis(300);
const SHORT_TIMEOUT: Duration = Duration::from_millis(500);

/// A websocket listener that speaks Phoenix only as each test scripts it.
struct FakeServer {
    listener: TcpListener,
    url: String,
}

impl FakeServer {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        Self { listener, url }
    }

    fn config(&self, vsn: Vsn) -> RealtimeConfig {
        let mut config = RealtimeConfig::new(self.url.clone(), "anon-key");
        config.vsn = vsn;
        config
    }

    async fn accept(&self, vsn: Vsn) -> Peer {
        let (stream, _) = tokio::time::timeout(RECV_TIMEOUT, self.listener.accept())
            .await
            .expect("the client connects in time")
            .expect("accept");
        let ws = tokio_tungstenite::accept_async(stream)
            .await
            .expect("websocket handshake");
        Peer { ws, vsn }
    }
}

/// The server side of one connection.
struct Peer {
    ws: WebSocketStream<TcpStream>,
    vsn: Vsn,
}

impl Peer {
    /// The next message from the client, heartbeats included.
    async fn recv_any(&mut self) -> Message {
        loop {
            let frame = tokio::time::timeout(RECV_TIMEOUT, self.ws.next())
                .await
                .expect("a frame in time")
                .expect("the socket is open")
                .expect("a valid frame");
            return match frame {
                WsMessage::Text(text) => {
                    phoenix::decode_text(self.vsn, text.as_str(), MAX_FRAME_BYTES)
                        .expect("the client sends valid text frames")
                }
                WsMessage::Binary(bytes) => {
                    phoenix::decode_binary(self.vsn, &bytes, MAX_FRAME_BYTES)
                        .expect("the client sends valid binary frames")
                }
                _ => continue,
            };
        }
    }

    /// The next message that is not a heartbeat; heartbeats on the way are
    /// answered.
    async fn recv(&mut self) -> Message {
        loop {
            let msg = self.recv_any().await;
            if msg.topic != phoenix::PHOENIX_TOPIC {
                return msg;
            }
            self.send(&Message::reply_ok(&msg, json!({}))).await;
        }
    }

    async fn send(&mut self, msg: &Message) {
        let frame = match phoenix::encode(self.vsn, msg).expect("encodable") {
            Frame::Text(text) => WsMessage::Text(text.into()),
            Frame::Binary(bytes) => WsMessage::Binary(bytes.into()),
        };
        self.ws.send(frame).await.expect("send to the client");
    }

    /// Reads a `phx_join`, checks its shape and answers ok.
    async fn accept_join(&mut self, topic: &str) -> Message {
        let join = self.recv().await;
        assert_eq!(join.event, event::JOIN);
        assert_eq!(join.topic, topic);
        assert!(join.join_ref.is_some(), "a join carries its join_ref");
        assert_eq!(
            join.join_ref, join.msg_ref,
            "the join's ref is the join_ref"
        );
        self.send(&Message::reply_ok(&join, json!({"postgres_changes": []})))
            .await;
        join
    }
}

fn fast_heartbeat(server: &FakeServer) -> RealtimeConfig {
    let mut config = server.config(Vsn::V2);
    config.heartbeat_interval = HEARTBEAT;
    config
}

fn json_of(msg: &Message) -> &Value {
    match &msg.payload {
        Payload::Json(value) => value,
        Payload::Broadcast(_) => panic!("expected a JSON payload"),
    }
}

async fn connect_and_join(
    server: &FakeServer,
    vsn: Vsn,
    config: ChannelConfig,
) -> (RealtimeClient, Channel, Peer, Message) {
    connect_and_join_with(server, server.config(vsn), config).await
}

async fn connect_and_join_with(
    server: &FakeServer,
    client_config: RealtimeConfig,
    config: ChannelConfig,
) -> (RealtimeClient, Channel, Peer, Message) {
    let vsn = client_config.vsn;
    let (client, peer) = tokio::join!(
        async {
            RealtimeClient::connect(client_config)
                .await
                .expect("connects")
        },
        server.accept(vsn)
    );
    let mut peer = peer;
    let (channel, join) = tokio::join!(
        client.join("room", config, Some("token-1")),
        peer.accept_join("realtime:room")
    );
    (client, channel.expect("joined"), peer, join)
}

#[tokio::test]
async fn join_payload_and_heartbeats_have_the_documented_shape() {
    let server = FakeServer::start().await;
    let config = ChannelConfig {
        private: true,
        broadcast_ack: true,
        broadcast_self: false,
        presence_key: None,
    };
    let (_client, _channel, mut peer, join) =
        connect_and_join_with(&server, fast_heartbeat(&server), config).await;
    assert_eq!(
        json_of(&join),
        &json!({
            "config": {
                "broadcast": {"ack": true, "self": false},
                "presence": {"key": "", "enabled": false},
                "postgres_changes": [],
                "private": true,
            },
            "access_token": "token-1",
        })
    );

    let heartbeat = peer.recv_any().await;
    assert_eq!(heartbeat.topic, "phoenix");
    assert_eq!(heartbeat.event, event::HEARTBEAT);
    assert_eq!(heartbeat.join_ref, None);
    assert!(heartbeat.msg_ref.is_some());
    assert_eq!(json_of(&heartbeat), &json!({}));
    // Answered, the next one comes an interval later on the same socket.
    peer.send(&Message::reply_ok(&heartbeat, json!({}))).await;
    let next = peer.recv_any().await;
    assert_eq!(next.event, event::HEARTBEAT);
    assert_ne!(next.msg_ref, heartbeat.msg_ref);
}

#[tokio::test]
async fn a_missed_heartbeat_reconnects_and_rejoins_with_a_new_join_ref() {
    let server = FakeServer::start().await;
    let (_client, mut channel, mut first, join) =
        connect_and_join_with(&server, fast_heartbeat(&server), ChannelConfig::default()).await;

    // Never answer: after one interval the client gives up on this socket.
    let heartbeat = first.recv_any().await;
    assert_eq!(heartbeat.event, event::HEARTBEAT);
    assert_eq!(next_event(&mut channel).await, ChannelEvent::Interrupted);

    // Backoff's first step is 1 s.
    let mut second = server.accept(Vsn::V2).await;
    let rejoin = second.accept_join("realtime:room").await;
    assert_ne!(rejoin.join_ref, join.join_ref, "a fresh join_ref per join");
    assert_eq!(json_of(&rejoin), json_of(&join), "the same join payload");
    assert_eq!(next_event(&mut channel).await, ChannelEvent::Rejoined);
}

#[tokio::test]
async fn messages_of_an_earlier_join_are_dropped() {
    let server = FakeServer::start().await;
    let (_client, mut channel, mut peer, join) =
        connect_and_join(&server, Vsn::V2, ChannelConfig::default()).await;
    let text = |name: &str| json!({"type": "broadcast", "event": name, "payload": {}});

    peer.send(
        &Message::broadcast("realtime:room", text("stale")).with_refs(Some("999".into()), None),
    )
    .await;
    peer.send(
        &Message::broadcast("realtime:room", text("current"))
            .with_refs(join.join_ref.clone(), None),
    )
    .await;
    // Fastlane broadcasts carry no join_ref and are always delivered.
    peer.send(&Message::broadcast("realtime:room", text("fastlane")))
        .await;
    // And kind 4, the binary framing.
    peer.send(&Message::broadcast(
        "realtime:room",
        Broadcast::json("binary", json!({"k": 4})),
    ))
    .await;
    // A message for a topic the client never joined is ignored.
    peer.send(&Message::broadcast("realtime:other", text("elsewhere")))
        .await;

    assert_eq!(next_broadcast(&mut channel).await.0, "current");
    assert_eq!(next_broadcast(&mut channel).await.0, "fastlane");
    assert_eq!(
        next_broadcast(&mut channel).await,
        ("binary".to_owned(), json!({"k": 4}))
    );
    assert_quiet(&mut channel).await;
}

#[tokio::test]
async fn acks_time_out_or_carry_the_servers_refusal() {
    let server = FakeServer::start().await;
    let config = ChannelConfig {
        broadcast_ack: true,
        ..ChannelConfig::default()
    };
    let mut client_config = server.config(Vsn::V2);
    client_config.push_timeout = SHORT_TIMEOUT;
    let (_client, channel, mut peer, join) =
        connect_and_join_with(&server, client_config, config).await;

    // No reply: the send fails after the push timeout, and it is retryable.
    let (result, push) = tokio::join!(channel.send("offer", json!({"sdp": "v=0"})), peer.recv());
    let err = result.expect_err("no ack");
    assert!(
        matches!(err, Error::TimedOut { .. }) && err.is_retryable(),
        "{err:?}"
    );
    // The push went out as kind 3 with the channel's refs.
    assert_eq!(push.event, event::BROADCAST);
    assert_eq!(push.join_ref, join.join_ref);
    let Payload::Broadcast(broadcast) = &push.payload else {
        panic!("vsn 2.0.0 broadcasts are binary");
    };
    assert_eq!(broadcast.event, "offer");
    assert_eq!(broadcast.body, BroadcastBody::Json(json!({"sdp": "v=0"})));

    let (result, ()) = tokio::join!(channel.send("big", json!(1)), async {
        let push = peer.recv().await;
        peer.send(&Message::reply_error(
            &push,
            json!({"error": "payload_size_exceeded"}),
        ))
        .await;
    });
    assert!(
        matches!(result, Err(Error::PushRejected { ref reason }) if reason == "payload_size_exceeded"),
        "{result:?}"
    );

    let (result, ()) = tokio::join!(channel.send("ok", json!(2)), async {
        let push = peer.recv().await;
        peer.send(&Message::reply_ok(&push, json!({}))).await;
    });
    result.expect("acknowledged");
}

#[tokio::test]
async fn vsn1_pushes_are_json_objects() {
    let server = FakeServer::start().await;
    let (client, mut channel, mut peer, join) =
        connect_and_join(&server, Vsn::V1, ChannelConfig::default()).await;
    let (sent, push) = tokio::join!(channel.send("e", json!([1])), peer.recv());
    sent.expect("sent");
    assert_eq!(push.join_ref, join.join_ref);
    assert_eq!(
        json_of(&push),
        &json!({"type": "broadcast", "event": "e", "payload": [1]})
    );
    // vsn 1.0.0 server frames have no join_ref at all.
    peer.send(&Message::broadcast(
        "realtime:room",
        json!({"type": "broadcast", "event": "back", "payload": null}),
    ))
    .await;
    assert_eq!(next_broadcast(&mut channel).await.0, "back");

    // Leave and join again at once: the late `phx_close` of the first join
    // (its `ref` is that join's ref) must not end the second.
    let (left, ()) = tokio::join!(channel.leave(), async {
        let leave = peer.recv().await;
        assert_eq!(leave.event, event::LEAVE);
        peer.send(&Message::reply_ok(&leave, json!({}))).await;
    });
    left.expect("left");
    let (again, _) = tokio::join!(
        client.join("room", ChannelConfig::default(), None),
        peer.accept_join("realtime:room")
    );
    let mut again = again.expect("joined again");
    peer.send(&Message::close(join.join_ref.clone(), "realtime:room"))
        .await;
    peer.send(&Message::broadcast(
        "realtime:room",
        json!({"type": "broadcast", "event": "still-open", "payload": 1}),
    ))
    .await;
    assert_eq!(next_broadcast(&mut again).await.0, "still-open");
}

#[tokio::test]
async fn a_crashed_channel_rejoins_with_the_latest_token() {
    let server = FakeServer::start().await;
    let (client, mut channel, mut peer, join) =
        connect_and_join(&server, Vsn::V2, ChannelConfig::default()).await;

    // The token refresh is pushed to the joined channel, unanswered.
    let (pushed, access) = tokio::join!(client.set_access_token("token-2"), peer.recv());
    pushed.expect("pushed");
    assert_eq!(access.event, event::ACCESS_TOKEN);
    assert_eq!(access.join_ref, join.join_ref);
    assert_eq!(json_of(&access), &json!({"access_token": "token-2"}));

    // phx_error: the channel crashed server-side; it rejoins after 1 s.
    peer.send(
        &Message::new(
            "realtime:room",
            event::ERROR,
            json!({"reason": "channel_crash"}),
        )
        .with_refs(join.join_ref.clone(), join.join_ref.clone()),
    )
    .await;
    assert_eq!(next_event(&mut channel).await, ChannelEvent::Interrupted);
    let err = channel
        .send("meanwhile", json!(0))
        .await
        .expect_err("not joined");
    assert!(matches!(err, Error::Disconnected));
    let rejoin = peer.accept_join("realtime:room").await;
    assert_eq!(json_of(&rejoin)["access_token"], "token-2");
    assert_ne!(rejoin.join_ref, join.join_ref);
    assert_eq!(next_event(&mut channel).await, ChannelEvent::Rejoined);

    // The close for the old join is stale; the one for the new join counts,
    // with the system error before it as its reason.
    peer.send(&Message::close(join.join_ref.clone(), "realtime:room"))
        .await;
    peer.send(&Message::system(
        rejoin.join_ref.clone(),
        "realtime:room",
        phoenix::Status::Error,
        "Too many messages per second",
    ))
    .await;
    peer.send(&Message::close(rejoin.join_ref.clone(), "realtime:room"))
        .await;
    assert_eq!(
        next_event(&mut channel).await,
        ChannelEvent::Closed {
            reason: CloseReason::Server {
                message: Some("Too many messages per second".into())
            }
        }
    );
}

#[tokio::test]
async fn a_refused_rejoin_closes_the_channel() {
    let server = FakeServer::start().await;
    let (_client, mut channel, mut peer, join) =
        connect_and_join(&server, Vsn::V2, ChannelConfig::default()).await;
    peer.send(
        &Message::new("realtime:room", event::ERROR, json!({}))
            .with_refs(join.join_ref.clone(), join.join_ref.clone()),
    )
    .await;
    assert_eq!(next_event(&mut channel).await, ChannelEvent::Interrupted);

    // A retryable refusal is retried ...
    let rejoin = peer.recv().await;
    peer.send(&Message::reply_error(
        &rejoin,
        json!({"reason": "RealtimeRestarting: Realtime is restarting, please standby"}),
    ))
    .await;
    // ... one that retrying cannot fix ends the channel.
    let rejoin = peer.recv().await;
    assert_eq!(rejoin.event, event::JOIN);
    let reason = "Unauthorized: You do not have permissions to read from this Channel topic: room";
    peer.send(&Message::reply_error(&rejoin, json!({"reason": reason})))
        .await;
    assert_eq!(
        next_event(&mut channel).await,
        ChannelEvent::Closed {
            reason: CloseReason::RejoinRefused {
                refusal: JoinRefusal::Unauthorized,
                reason: reason.into()
            }
        }
    );
}

#[tokio::test]
async fn an_unanswered_join_times_out_and_is_left() {
    let server = FakeServer::start().await;
    let mut client_config = server.config(Vsn::V2);
    client_config.join_timeout = SHORT_TIMEOUT;
    let (client, peer) = tokio::join!(
        async {
            RealtimeClient::connect(client_config)
                .await
                .expect("connects")
        },
        server.accept(Vsn::V2)
    );
    let mut peer = peer;
    let (result, join) = tokio::join!(
        client.join("slow", ChannelConfig::default(), None),
        peer.recv()
    );
    let err = result.expect_err("no reply");
    assert!(
        matches!(err, Error::TimedOut { what: "join", .. }) && err.is_retryable(),
        "{err:?}"
    );
    assert!(
        json_of(&join).get("access_token").is_none(),
        "no token, no access_token key (the server then uses the API key)"
    );
    // A late server-side join must not linger.
    let leave = peer.recv().await;
    assert_eq!(leave.event, event::LEAVE);
    assert_eq!(leave.join_ref, join.join_ref);
}

#[tokio::test]
async fn a_dropped_channel_is_left() {
    let server = FakeServer::start().await;
    let (_client, channel, mut peer, join) =
        connect_and_join(&server, Vsn::V2, ChannelConfig::default()).await;
    drop(channel);
    let leave = peer.recv().await;
    assert_eq!(leave.event, event::LEAVE);
    assert_eq!(leave.join_ref, join.join_ref);
    // Nothing waits for the reply; a late one is harmless.
    peer.send(&Message::reply_ok(&leave, json!({}))).await;
    tokio::time::sleep(QUIET_PERIOD).await;
}
