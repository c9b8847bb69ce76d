//! The Realtime client against the real local backend: joins, broadcasts in
//! both serializers (binary kind 3/4 on vsn 2.0.0), acks, private topics,
//! server-side closes, token refresh, and reconnecting to a restarted
//! server.

mod common;

use std::time::{Duration, Instant};

use common::{
    assert_quiet, backend, config_on, mint_token, next_broadcast, next_event, realtime_config,
    start, test_config,
};
use serde_json::json;
use voicemeet_core::backend::inbox_topic;
use voicemeet_core::proto::phoenix::{BroadcastBody, Vsn};
use voicemeet_core::realtime::{
    ChannelConfig, ChannelEvent, CloseReason, RealtimeClient, RealtimeConfig,
};
use voicemeet_core::{Error, JoinRefusal};
use voicemeet_server::RunningServer;

async fn connect(server: &RunningServer, vsn: Vsn) -> RealtimeClient {
    RealtimeClient::connect(realtime_config(server, vsn))
        .await
        .expect("realtime connects")
}

fn acked() -> ChannelConfig {
    ChannelConfig {
        broadcast_ack: true,
        ..ChannelConfig::default()
    }
}

#[tokio::test]
async fn broadcasts_flow_between_both_serializers() {
    let server = start(test_config()).await;
    let v2 = connect(&server, Vsn::V2).await;
    let v2_other = connect(&server, Vsn::V2).await;
    let v1 = connect(&server, Vsn::V1).await;
    assert_eq!(v1.vsn(), Vsn::V1);
    let mut a = v2
        .join("room", ChannelConfig::default(), None)
        .await
        .expect("joins");
    let mut b = v2_other
        .join("room", ChannelConfig::default(), None)
        .await
        .expect("joins");
    let mut c = v1
        .join("room", ChannelConfig::default(), None)
        .await
        .expect("joins");
    assert_eq!(a.topic(), "room");

    // vsn 2 → kind 3 up, kind 4 down to the other vsn 2 socket, and the
    // JSON object form down to vsn 1.
    a.send("sdp", json!({"type": "offer", "sdp": "v=0"}))
        .await
        .expect("sent");
    for channel in [&mut b, &mut c] {
        assert_eq!(
            next_broadcast(channel).await,
            ("sdp".to_owned(), json!({"type": "offer", "sdp": "v=0"}))
        );
    }
    // No echo without `broadcast_self`.
    assert_quiet(&mut a).await;

    // vsn 1 → text, to both vsn 2 sockets.
    c.send("candidate", json!({"n": 1})).await.expect("sent");
    for channel in [&mut a, &mut b] {
        assert_eq!(
            next_broadcast(channel).await,
            ("candidate".to_owned(), json!({"n": 1}))
        );
    }
}

#[tokio::test]
async fn binary_payloads_arrive_as_kind4_frames() {
    let server = start(test_config()).await;
    let sender = connect(&server, Vsn::V2).await;
    let receiver = connect(&server, Vsn::V2).await;
    let legacy = connect(&server, Vsn::V1).await;
    let tx = sender
        .join("bin", ChannelConfig::default(), None)
        .await
        .expect("joins");
    let mut rx = receiver
        .join("bin", ChannelConfig::default(), None)
        .await
        .expect("joins");
    let mut old = legacy
        .join("bin", ChannelConfig::default(), None)
        .await
        .expect("joins");

    // Raw bytes only exist in the binary framing: receiving them proves the
    // kind-4 decode path.
    tx.send_binary("audio-level", vec![0, 1, 2, 255])
        .await
        .expect("sent");
    assert_eq!(
        next_event(&mut rx).await,
        ChannelEvent::Broadcast {
            event: "audio-level".into(),
            payload: BroadcastBody::Binary(vec![0, 1, 2, 255]),
        }
    );
    // vsn 1.0.0 subscribers never see binary bodies (as on Supabase) ...
    assert_quiet(&mut old).await;
    // ... and cannot send them.
    let err = old
        .send_binary("x", vec![1])
        .await
        .expect_err("no binary on vsn 1");
    assert!(matches!(err, Error::Encode(_)), "{err:?}");
}

#[tokio::test]
async fn acknowledged_broadcasts_and_self_delivery() {
    let server = start(test_config()).await;
    let client = connect(&server, Vsn::V2).await;
    let mut me = client
        .join(
            "ack",
            ChannelConfig {
                broadcast_ack: true,
                broadcast_self: true,
                ..ChannelConfig::default()
            },
            None,
        )
        .await
        .expect("joins");
    me.send("ping", json!({"n": 1}))
        .await
        .expect("acknowledged");
    assert_eq!(
        next_broadcast(&mut me).await,
        ("ping".to_owned(), json!({"n": 1}))
    );

    // The local server allows 256 KB payloads (hosted Free plan): with ack
    // on, a larger one is refused rather than dropped silently.
    let big = "x".repeat(300_000);
    let err = me.send("big", json!(big)).await.expect_err("too large");
    assert!(
        matches!(&err, Error::PushRejected { reason } if reason == "payload_size_exceeded"),
        "{err:?}"
    );

    let v1 = connect(&server, Vsn::V1).await;
    let v1_channel = v1.join("ack", acked(), None).await.expect("joins");
    v1_channel
        .send("pong", json!(2))
        .await
        .expect("acknowledged on vsn 1");
    assert_eq!(next_broadcast(&mut me).await, ("pong".to_owned(), json!(2)));
}

#[tokio::test]
async fn private_inbox_joins_for_its_owner_only() {
    let server = start(test_config()).await;
    let client = connect(&server, Vsn::V2).await;
    let alice = backend(&server).ensure_session().await.expect("alice");
    let bob = backend(&server).ensure_session().await.expect("bob");
    let private = ChannelConfig {
        private: true,
        ..ChannelConfig::default()
    };

    let inbox = client
        .join(
            &inbox_topic(&alice.user_id),
            private.clone(),
            Some(alice.access_token.expose()),
        )
        .await
        .expect("alice's own inbox");
    drop(inbox);

    let err = client
        .join(
            &inbox_topic(&bob.user_id),
            private.clone(),
            Some(alice.access_token.expose()),
        )
        .await
        .expect_err("bob's inbox is not alice's to read");
    assert!(
        matches!(&err, Error::JoinRefused { refusal: JoinRefusal::Unauthorized, reason }
            if reason.starts_with("Unauthorized: ")),
        "{err:?}"
    );
    assert!(!err.is_retryable());

    // Without a user token the API key has no user: refused too.
    let err = client
        .join(&inbox_topic(&alice.user_id), private, None)
        .await
        .expect_err("anonymous key");
    assert!(matches!(
        err,
        Error::JoinRefused {
            refusal: JoinRefusal::Unauthorized,
            ..
        }
    ));

    // A garbage token is an invalid-token refusal.
    let err = client
        .join("room", ChannelConfig::default(), Some("not-a-jwt"))
        .await
        .expect_err("bad token");
    assert!(
        matches!(
            err,
            Error::JoinRefused {
                refusal: JoinRefusal::InvalidToken,
                ..
            }
        ),
        "{err:?}"
    );

    // One channel per topic per client.
    let _room = client
        .join("room", ChannelConfig::default(), None)
        .await
        .expect("joins");
    let err = client
        .join("room", ChannelConfig::default(), None)
        .await
        .expect_err("already joined");
    assert!(matches!(err, Error::AlreadyJoined));
}

#[tokio::test]
async fn connect_refusals_are_typed() {
    let server = start(test_config()).await;
    let err = RealtimeClient::connect(RealtimeConfig::new(server.url.clone(), "not-a-jwt"))
        .await
        .expect_err("bad key");
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");

    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    drop(listener);
    let started = Instant::now();
    let err = RealtimeClient::connect(RealtimeConfig::new(format!("http://{addr}"), "key"))
        .await
        .expect_err("nothing listens");
    assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn leaving_stops_delivery_and_frees_the_topic() {
    let server = start(test_config()).await;
    let listener = connect(&server, Vsn::V2).await;
    let speaker = connect(&server, Vsn::V2).await;
    let tx = speaker
        .join("leave", ChannelConfig::default(), None)
        .await
        .expect("joins");
    let rx = listener
        .join("leave", ChannelConfig::default(), None)
        .await
        .expect("joins");
    rx.leave().await.expect("left");
    let mut rx = listener
        .join("leave", ChannelConfig::default(), None)
        .await
        .expect("the topic can be joined again");
    tx.send("after", json!(1)).await.expect("sent");
    assert_eq!(
        next_broadcast(&mut rx).await,
        ("after".to_owned(), json!(1))
    );
}

#[tokio::test]
async fn a_flooded_channel_is_closed_with_the_servers_reason() {
    let mut config = test_config();
    config.realtime.max_messages_per_second = 5;
    let server = start(config).await;
    let client = connect(&server, Vsn::V2).await;
    let mut channel = client
        .join("flood", ChannelConfig::default(), None)
        .await
        .expect("joins");
    for i in 0..20 {
        // Once the server closes the channel, sends fail: that is expected.
        if channel.send("spam", json!(i)).await.is_err() {
            break;
        }
    }
    assert_eq!(
        next_event(&mut channel).await,
        ChannelEvent::Closed {
            reason: CloseReason::Server {
                message: Some("Too many messages per second".into())
            }
        }
    );
    assert!(channel.recv().await.is_none(), "nothing after Closed");
    let err = channel.send("late", json!(0)).await.expect_err("closed");
    assert!(matches!(err, Error::ChannelClosed), "{err:?}");

    // Only that channel: the socket still serves a new one once the
    // server's per-second budget has refilled.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    client
        .join("other", acked(), None)
        .await
        .expect("joins")
        .send("fine", json!(1))
        .await
        .expect("acknowledged");
}

#[tokio::test]
async fn a_refreshed_access_token_keeps_the_channel_alive() {
    let server = start(test_config()).await;
    let speaker = connect(&server, Vsn::V2).await;
    let refreshing = connect(&server, Vsn::V2).await;
    let stale = connect(&server, Vsn::V1).await;
    let tx = speaker
        .join("tok", ChannelConfig::default(), None)
        .await
        .expect("joins");

    // Both start with a token that expires in about two seconds.
    let short = mint_token(&server, "user-1", 3);
    let mut kept = refreshing
        .join("tok", ChannelConfig::default(), Some(&short))
        .await
        .expect("joins");
    let mut control = stale
        .join("tok", ChannelConfig::default(), Some(&short))
        .await
        .expect("joins");
    refreshing
        .set_access_token(&mint_token(&server, "user-1", 3600))
        .await
        .expect("pushed");

    // The server re-checks tokens every second: the channel that was not
    // refreshed is closed, with the reason.
    match next_event(&mut control).await {
        ChannelEvent::Closed {
            reason: CloseReason::Server { message: Some(m) },
        } => assert!(m.starts_with("Token has expired"), "{m}"),
        other => panic!("expected the expiry close, got {other:?}"),
    }
    // The refreshed one outlived its first token.
    tx.send("still-here", json!(true)).await.expect("sent");
    assert_eq!(
        next_broadcast(&mut kept).await,
        ("still-here".to_owned(), json!(true))
    );
}

#[tokio::test]
async fn reconnects_and_rejoins_after_a_server_restart() {
    let server = start(test_config()).await;
    let addr = server.http_addr;
    let a = connect(&server, Vsn::V2).await;
    let b = connect(&server, Vsn::V1).await;
    // `a` joins with a token about to expire and refreshes it: the rejoin
    // after the restart must use the new one.
    let short = mint_token(&server, "user-a", 2);
    let mut ca = a
        .join("restart", ChannelConfig::default(), Some(&short))
        .await
        .expect("joins");
    a.set_access_token(&mint_token(&server, "user-a", 3600))
        .await
        .expect("pushed");
    let mut cb = b.join("restart", acked(), None).await.expect("joins");

    server.shutdown().await.expect("clean shutdown");
    assert_eq!(next_event(&mut ca).await, ChannelEvent::Interrupted);
    assert_eq!(next_event(&mut cb).await, ChannelEvent::Interrupted);
    let err = cb.send("lost", json!(0)).await.expect_err("socket down");
    assert!(
        matches!(err, Error::Disconnected) && err.is_retryable(),
        "{err:?}"
    );

    // Down long enough for the short token to expire.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let server = start(config_on(addr)).await;

    // Backoff 1 s, 2 s, 5 s: back within the third attempt.
    for channel in [&mut ca, &mut cb] {
        let event = tokio::time::timeout(Duration::from_secs(15), channel.recv())
            .await
            .expect("rejoined in time");
        assert_eq!(event, Some(ChannelEvent::Rejoined));
    }
    cb.send("back", json!({"ok": true}))
        .await
        .expect("acknowledged");
    assert_eq!(
        next_broadcast(&mut ca).await,
        ("back".to_owned(), json!({"ok": true}))
    );
    ca.send("and-back", json!(1)).await.expect("sent");
    assert_eq!(
        next_broadcast(&mut cb).await,
        ("and-back".to_owned(), json!(1))
    );
    server.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn dropping_the_client_closes_its_channels() {
    let server = start(test_config()).await;
    let client = connect(&server, Vsn::V2).await;
    let mut channel = client
        .join("bye", ChannelConfig::default(), None)
        .await
        .expect("joins");
    drop(client);
    assert_eq!(
        next_event(&mut channel).await,
        ChannelEvent::Closed {
            reason: CloseReason::ClientDropped
        }
    );
    assert!(channel.recv().await.is_none());
    assert!(matches!(
        channel.send("x", json!(0)).await,
        Err(Error::ChannelClosed)
    ));
}
