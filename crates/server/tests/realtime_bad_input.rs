//! Bad input to the Realtime websocket gets the answer Supabase Realtime
//! gives (PROTOCOLS.md §1), only the offending socket or channel suffers,
//! and the server keeps serving everyone else: every test ends by checking
//! that two well-behaved connections on the same topic still work.

mod common;
mod realtime_client;

use std::time::Duration;

use common::{TestServer, test_config, unix_now};
use realtime_client::{
    Client, Inbound, RECV_TIMEOUT, assert_heartbeat_reply, broadcast_of, join_payload,
    json_payload, websocket_url,
};
use reqwest::StatusCode;
use serde_json::{Map, Value, json};
use tokio_tungstenite::tungstenite;
use voicemeet_server::jwt::{Claims, JwtKey, ROLE_AUTHENTICATED};
use voicemeet_server::proto::phoenix::{Message, Status, Vsn, event};

/// The public topic every test's connections share.
const ROOM: &str = "realtime:room";
/// `ROOM` without the `realtime:` prefix, as `system` messages name it.
const ROOM_NAME: &str = "room";
/// Websocket close code for a frame that does not decode (RFC 6455 1007).
const INVALID_PAYLOAD: u16 = 1007;
/// A secret other than the server's, to forge tokens with.
const OTHER_SECRET: &str = "another-secret-another-secret-another-secret";
/// How long an expiring channel token lives in `an_expired_channel_token...`.
/// Seconds are the JWT's resolution: 2 s leaves a whole second to join in.
const SHORT_TOKEN_LIFETIME_SECS: u64 = 2;

/// Two well-behaved connections on [`ROOM`]: `watcher` listens (vsn 2.0.0),
/// `speaker` broadcasts (vsn 1.0.0, so both framings stay exercised).
struct Bystanders {
    watcher: Client,
    speaker: Client,
    speaker_join_ref: String,
    markers: u32,
}

impl Bystanders {
    async fn join(t: &TestServer) -> Self {
        let mut watcher = Client::connect(&t.server.url, &t.server.anon_key, Vsn::V2).await;
        watcher
            .join_ok(ROOM, join_payload(false, false, None))
            .await;
        let mut speaker = Client::connect(&t.server.url, &t.server.anon_key, Vsn::V1).await;
        let speaker_join_ref = speaker
            .join_ok(ROOM, join_payload(false, false, None))
            .await;
        Self {
            watcher,
            speaker,
            speaker_join_ref,
            markers: 0,
        }
    }

    /// Sends a uniquely numbered `marker` broadcast from the speaker.
    async fn send_marker(&mut self) -> u32 {
        self.markers += 1;
        let n = self.markers;
        self.speaker
            .broadcast_text(
                ROOM,
                &self.speaker_join_ref.clone(),
                "marker",
                json!({ "n": n }),
            )
            .await;
        n
    }

    /// The server still serves the well-behaved: the watcher's heartbeat is
    /// answered, and the speaker's next broadcast reaches the watcher.
    /// Broadcasts from other clients on the topic (a flood) are skipped.
    async fn assert_still_served(&mut self) {
        let msg_ref = self.watcher.send_heartbeat().await;
        let reply = self.next_for_watcher().await;
        assert_heartbeat_reply(&reply, &msg_ref);
        let msg_ref = self.speaker.send_heartbeat().await;
        let reply = next_non_broadcast(&mut self.speaker).await;
        assert_heartbeat_reply(&reply, &msg_ref);
        let n = self.send_marker().await;
        let marker = self.next_for_watcher().await;
        assert_eq!(
            broadcast_of(&marker),
            Some(("marker".to_owned(), json!({ "n": n }))),
            "{marker:?}"
        );
    }

    /// The watcher's next message that is not someone else's broadcast.
    async fn next_for_watcher(&mut self) -> Message {
        loop {
            let msg = self.watcher.recv_message().await;
            match broadcast_of(&msg) {
                Some((user_event, _)) if user_event != "marker" => {}
                _ => return msg,
            }
        }
    }

    /// The watcher's very next message is marker `n`: nothing else (such as
    /// a dropped oversize broadcast) reached it first.
    async fn assert_next_is_marker(&mut self, n: u32) {
        let msg = self.watcher.recv_message().await;
        assert_eq!(
            broadcast_of(&msg),
            Some(("marker".to_owned(), json!({ "n": n }))),
            "the marker must be the first thing received: {msg:?}"
        );
    }
}

/// The next message that is not a broadcast (the speaker hears the other
/// clients' broadcasts on the room).
async fn next_non_broadcast(client: &mut Client) -> Message {
    loop {
        let msg = client.recv_message().await;
        if msg.event != event::BROADCAST {
            return msg;
        }
    }
}

/// A connection that has joined [`ROOM`], as the offender in each case.
async fn joined(t: &TestServer, vsn: Vsn) -> (Client, String) {
    let mut client = Client::connect(&t.server.url, &t.server.anon_key, vsn).await;
    let join_ref = client.join_ok(ROOM, join_payload(false, false, None)).await;
    (client, join_ref)
}

/// Asserts the socket is closed next with 1007 and a reason.
async fn assert_closed_invalid(client: &mut Client, case: &str) {
    match client.recv().await {
        Inbound::Closed { code, reason } => {
            assert_eq!(code, Some(INVALID_PAYLOAD), "{case}: {reason}");
            assert!(
                reason.starts_with("malformed frame: "),
                "{case}: reason {reason:?}"
            );
        }
        Inbound::Message(msg) => panic!("{case}: expected a close, got {msg:?}"),
    }
    // Nothing follows the close.
    assert!(
        matches!(client.recv().await, Inbound::Closed { code: None, .. }),
        "{case}: the stream ends after the close frame"
    );
}

fn user_claims(sub: &str, exp: u64) -> Claims {
    Claims {
        sub: Some(sub.to_owned()),
        role: ROLE_AUTHENTICATED.to_owned(),
        exp,
        iat: Some(unix_now()),
        iss: None,
        aud: Some("authenticated".to_owned()),
        session_id: None,
        is_anonymous: Some(true),
        extra: Map::new(),
    }
}

fn anon_claims_expiring(exp: u64) -> Claims {
    let mut claims = Claims::anon_key();
    claims.exp = exp;
    claims
}

/// A `system` error message on `ROOM` for the channel joined with `join_ref`.
fn assert_system_error(msg: &Message, join_ref: &str, expected: &str) {
    assert_eq!(msg.event, event::SYSTEM, "{msg:?}");
    assert_eq!(msg.topic, ROOM);
    assert_eq!(msg.join_ref.as_deref(), Some(join_ref));
    assert_eq!(
        json_payload(msg),
        &json!({
            "extension": "system",
            "status": "error",
            "message": expected,
            "channel": ROOM_NAME,
        })
    );
}

/// `phx_close` for the channel on `ROOM` joined with `join_ref`.
fn assert_close(msg: &Message, join_ref: &str) {
    assert_eq!(msg.event, event::CLOSE, "{msg:?}");
    assert_eq!(msg.topic, ROOM);
    assert_eq!(msg.join_ref.as_deref(), Some(join_ref));
    assert_eq!(msg.msg_ref.as_deref(), Some(join_ref));
    assert_eq!(json_payload(msg), &json!({}));
}

/// Asserts `msg` is the `unmatched topic` error reply to the push `msg_ref`.
fn assert_unmatched(msg: &Message, topic: &str, msg_ref: &str) {
    assert_eq!(msg.topic, topic, "{msg:?}");
    assert_eq!(msg.msg_ref.as_deref(), Some(msg_ref), "{msg:?}");
    assert_eq!(
        msg.as_reply(),
        Some((Status::Error, &json!({ "reason": "unmatched topic" }))),
        "{msg:?}"
    );
}

#[tokio::test]
async fn malformed_text_frames_close_only_the_offender_with_1007() {
    let t = TestServer::start(test_config()).await;
    let mut room = Bystanders::join(&t).await;
    let cases = [
        (Vsn::V2, "not JSON", "this is not json"),
        (
            Vsn::V2,
            "an array of four",
            r#"["1","2","realtime:room","broadcast"]"#,
        ),
        (
            Vsn::V2,
            "an object on vsn 2",
            r#"{"topic":"realtime:room"}"#,
        ),
        (Vsn::V2, "a number topic", r#"[null,"2",7,"heartbeat",{}]"#),
        (
            Vsn::V1,
            "no topic",
            r#"{"event":"heartbeat","payload":{},"ref":"1"}"#,
        ),
        (Vsn::V1, "not JSON on vsn 1", "{oops"),
        (
            Vsn::V1,
            "an array on vsn 1",
            r#"[null,"1","phoenix","heartbeat",{}]"#,
        ),
    ];
    for (vsn, case, frame) in cases {
        let (mut offender, _) = joined(&t, vsn).await;
        offender.send_text(frame).await;
        assert_closed_invalid(&mut offender, case).await;
        room.assert_still_served().await;
    }
    t.stop().await;
}

#[tokio::test]
async fn malformed_binary_frames_close_only_the_offender_with_1007() {
    let t = TestServer::start(test_config()).await;
    let mut room = Bystanders::join(&t).await;
    // realtime-js's test vector for a kind-3 push.
    let valid_push = [&[3, 2, 1, 3, 10, 0, 1][..], br#"101topuser-event{"a":"b"}"#].concat();
    let cases: [(Vsn, &str, Vec<u8>); 6] = [
        (Vsn::V2, "truncated kind 3", valid_push[..12].to_vec()),
        (Vsn::V2, "kind 3 header only", valid_push[..5].to_vec()),
        (Vsn::V2, "unknown kind", vec![9, 0, 0, 0, 0]),
        (Vsn::V2, "Phoenix push kind 0", vec![0, 1, 1, 1, 1, b'a']),
        (Vsn::V2, "empty binary frame", Vec::new()),
        (Vsn::V1, "binary frame on vsn 1", valid_push.clone()),
    ];
    for (vsn, case, frame) in cases {
        let (mut offender, _) = joined(&t, vsn).await;
        offender.send_binary(frame).await;
        assert_closed_invalid(&mut offender, case).await;
        room.assert_still_served().await;
    }
    t.stop().await;
}

#[tokio::test]
async fn unknown_event_on_a_joined_channel_gets_an_error_reply() {
    let t = TestServer::start(test_config()).await;
    let mut room = Bystanders::join(&t).await;
    let (mut offender, join_ref) = joined(&t, Vsn::V2).await;
    let msg_ref = offender.make_ref();
    offender
        .push(
            &Message::new(ROOM, "no_such_event", json!({"x": 1}))
                .with_refs(Some(join_ref.clone()), Some(msg_ref.clone())),
        )
        .await;
    let reply = offender.recv_message().await;
    assert_eq!(reply.event, event::REPLY);
    assert_eq!(reply.topic, ROOM);
    assert_eq!(reply.join_ref.as_deref(), Some(join_ref.as_str()));
    assert_eq!(reply.msg_ref.as_deref(), Some(msg_ref.as_str()));
    assert_eq!(
        reply.as_reply(),
        Some((
            Status::Error,
            &json!({ "reason": "Unknown Error on Channel" })
        ))
    );
    // The channel stays joined: the offender still hears the room.
    let n = room.send_marker().await;
    let marker = offender.recv_message().await;
    assert_eq!(
        broadcast_of(&marker),
        Some(("marker".to_owned(), json!({ "n": n })))
    );
    room.assert_next_is_marker(n).await;
    room.assert_still_served().await;
    t.stop().await;
}

#[tokio::test]
async fn a_push_to_a_topic_not_joined_is_an_unmatched_topic() {
    let t = TestServer::start(test_config()).await;
    let mut room = Bystanders::join(&t).await;
    let (mut offender, join_ref) = joined(&t, Vsn::V2).await;

    // Exact wire shape: `[join_ref, ref, topic, "phx_reply", {..}]`.
    let msg_ref = offender
        .broadcast_text("realtime:elsewhere", &join_ref, "e", json!({}))
        .await;
    assert_eq!(
        offender.recv_json().await,
        json!([join_ref, msg_ref, "realtime:elsewhere", "phx_reply",
            {"status": "error", "response": {"reason": "unmatched topic"}}])
    );
    // Binary pushes and other events alike.
    let msg_ref = offender
        .broadcast("realtime:elsewhere", &join_ref, "e", json!(1))
        .await;
    assert_unmatched(
        &offender.recv_message().await,
        "realtime:elsewhere",
        &msg_ref,
    );
    for topic_event in [event::LEAVE, event::ACCESS_TOKEN, event::PRESENCE] {
        let msg_ref = offender.make_ref();
        offender
            .push(
                &Message::new("realtime:elsewhere", topic_event, json!({}))
                    .with_refs(None, Some(msg_ref.clone())),
            )
            .await;
        assert_unmatched(
            &offender.recv_message().await,
            "realtime:elsewhere",
            &msg_ref,
        );
    }
    // A topic outside `realtime:*` matches no channel either, even to join.
    let (_, reply) = offender
        .join("lobby", join_payload(false, false, None))
        .await;
    assert_eq!(
        reply.as_reply(),
        Some((Status::Error, &json!({ "reason": "unmatched topic" })))
    );
    offender.heartbeat_is_next().await;
    room.assert_still_served().await;
    t.stop().await;
}

#[tokio::test]
async fn an_oversize_broadcast_with_ack_is_refused() {
    let t = TestServer::start(test_config()).await;
    let mut room = Bystanders::join(&t).await;
    let limit = t.server.state.realtime.limits.max_payload_bytes;
    let big = "x".repeat(limit + 1);

    let mut sender = Client::connect(&t.server.url, &t.server.anon_key, Vsn::V2).await;
    let join_ref = sender.join_ok(ROOM, join_payload(false, true, None)).await;
    for binary in [false, true] {
        let msg_ref = if binary {
            sender
                .broadcast(ROOM, &join_ref, "big", json!({ "blob": big }))
                .await
        } else {
            sender
                .broadcast_text(ROOM, &join_ref, "big", json!({ "blob": big }))
                .await
        };
        let reply = sender.recv_message().await;
        assert_eq!(reply.msg_ref.as_deref(), Some(msg_ref.as_str()));
        assert_eq!(
            reply.as_reply(),
            Some((Status::Error, &json!({ "error": "payload_size_exceeded" }))),
            "binary: {binary}"
        );
        let n = room.send_marker().await;
        room.assert_next_is_marker(n).await;
        // The sender hears the marker too: its channel is still joined.
        let marker = sender.recv_message().await;
        assert_eq!(
            broadcast_of(&marker),
            Some(("marker".to_owned(), json!({ "n": n })))
        );
    }
    // A broadcast within the limit is acknowledged with an empty ok.
    let msg_ref = sender
        .broadcast(ROOM, &join_ref, "small", json!({ "ok": true }))
        .await;
    let reply = sender.recv_message().await;
    assert_eq!(reply.msg_ref.as_deref(), Some(msg_ref.as_str()));
    assert_eq!(reply.as_reply(), Some((Status::Ok, &json!({}))));
    let delivered = room.watcher.recv_message().await;
    assert_eq!(
        broadcast_of(&delivered),
        Some(("small".to_owned(), json!({ "ok": true })))
    );
    room.assert_still_served().await;
    t.stop().await;
}

#[tokio::test]
async fn an_oversize_broadcast_without_ack_is_dropped_silently() {
    let t = TestServer::start(test_config()).await;
    let mut room = Bystanders::join(&t).await;
    let limit = t.server.state.realtime.limits.max_payload_bytes;
    let big = "x".repeat(limit + 1);

    let (mut sender, join_ref) = joined(&t, Vsn::V2).await;
    for binary in [false, true] {
        if binary {
            sender
                .broadcast(ROOM, &join_ref, "big", json!({ "blob": big }))
                .await;
        } else {
            sender
                .broadcast_text(ROOM, &join_ref, "big", json!({ "blob": big }))
                .await;
        }
        // No reply to the sender...
        sender.heartbeat_is_next().await;
        // ...and nothing for the other subscriber: the marker sent after the
        // oversize broadcast is the first thing it receives.
        let n = room.send_marker().await;
        room.assert_next_is_marker(n).await;
        let marker = sender.recv_message().await;
        assert_eq!(
            broadcast_of(&marker),
            Some(("marker".to_owned(), json!({ "n": n })))
        );
    }
    room.assert_still_served().await;
    t.stop().await;
}

/// Sends a websocket upgrade request by hand and returns the refusal.
async fn refused_upgrade(t: &TestServer, apikey: Option<&str>) -> (StatusCode, Value) {
    let url = websocket_url(&t.server.url, apikey, Vsn::V2).replacen("ws://", "http://", 1);
    let response = t
        .http
        .get(url)
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .expect("upgrade request");
    let status = response.status();
    (status, response.json().await.expect("JSON error body"))
}

#[tokio::test]
async fn connecting_with_a_bad_apikey_is_refused_with_realtime_errors() {
    let t = TestServer::start(test_config()).await;
    let mut room = Bystanders::join(&t).await;
    let jwt = &t.server.state.jwt;
    let expired = jwt.sign(&anon_claims_expiring(unix_now() - 10));
    let forged = JwtKey::new(OTHER_SECRET).sign(&Claims::anon_key());
    let cases = [
        (Some(expired.as_str()), "Token has expired"),
        (Some(forged.as_str()), "Failed to validate JWT signature"),
        (Some("not-a-jwt"), "The token provided is not a valid JWT"),
        (Some("a.b.c"), "The token provided is not a valid JWT"),
        (Some(""), "API key is missing"),
        (None, "API key is missing"),
    ];
    for (apikey, message) in cases {
        assert_eq!(
            refused_upgrade(&t, apikey).await,
            (StatusCode::UNAUTHORIZED, json!({ "error": message })),
            "apikey {apikey:?}"
        );
        // A real websocket client sees the refused upgrade as HTTP 401.
        let url = websocket_url(&t.server.url, apikey, Vsn::V2);
        match tokio_tungstenite::connect_async(url.as_str()).await {
            Err(tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), StatusCode::UNAUTHORIZED.as_u16());
            }
            other => panic!("apikey {apikey:?}: expected HTTP 401, got {other:?}"),
        }
        room.assert_still_served().await;
    }
    t.stop().await;
}

#[tokio::test]
async fn joining_with_a_bad_access_token_is_refused() {
    let t = TestServer::start(test_config()).await;
    let mut room = Bystanders::join(&t).await;
    let session = t.sign_up().await;
    let user = session["user"]["id"].as_str().expect("user id").to_owned();
    let jwt = &t.server.state.jwt;
    let expired = jwt.sign(&user_claims(&user, unix_now() - 30));
    let forged = JwtKey::new(OTHER_SECRET).sign(&user_claims(&user, unix_now() + 3600));

    let (mut client, _) = joined(&t, Vsn::V2).await;
    let inbox = format!("realtime:inbox:{user}");
    for (topic, private) in [("realtime:other-room", false), (inbox.as_str(), true)] {
        let reason = client
            .join_refused(topic, join_payload(private, false, Some(&expired)))
            .await;
        assert!(
            reason.starts_with("InvalidJWTToken: Token has expired"),
            "{reason}"
        );
        let reason = client
            .join_refused(topic, join_payload(private, false, Some(&forged)))
            .await;
        assert_eq!(
            reason,
            "JwtSignatureError: Failed to validate JWT signature"
        );
        let reason = client
            .join_refused(topic, join_payload(private, false, Some("garbage")))
            .await;
        assert_eq!(
            reason,
            "MalformedJWT: The token provided is not a valid JWT"
        );
        // A refused join leaves nothing joined.
        let msg_ref = client.broadcast_text(topic, "x", "e", json!({})).await;
        assert_unmatched(&client.recv_message().await, topic, &msg_ref);
    }
    // The socket and its earlier channel are fine.
    let n = room.send_marker().await;
    let marker = client.recv_message().await;
    assert_eq!(
        broadcast_of(&marker),
        Some(("marker".to_owned(), json!({ "n": n })))
    );
    room.assert_next_is_marker(n).await;
    room.assert_still_served().await;
    t.stop().await;
}

#[tokio::test]
async fn someone_elses_private_topic_is_unauthorized() {
    let t = TestServer::start(test_config()).await;
    let mut room = Bystanders::join(&t).await;
    let alice = t.sign_up().await;
    let bob = t.sign_up().await;
    let alice_token = alice["access_token"].as_str().expect("token");
    let alice_id = alice["user"]["id"].as_str().expect("id");
    let bob_id = bob["user"]["id"].as_str().expect("id");

    let (mut client, _) = joined(&t, Vsn::V2).await;
    let bobs_inbox = format!("inbox:{bob_id}");
    let unauthorized = |name: &str| {
        format!("Unauthorized: You do not have permissions to read from this Channel topic: {name}")
    };
    // With Alice's token, and with no user token at all (the anon key).
    for token in [Some(alice_token), None] {
        let reason = client
            .join_refused(
                &format!("realtime:{bobs_inbox}"),
                join_payload(true, false, token),
            )
            .await;
        assert_eq!(reason, unauthorized(&bobs_inbox));
    }
    // A private topic nobody was granted.
    let reason = client
        .join_refused(
            "realtime:secret",
            join_payload(true, false, Some(alice_token)),
        )
        .await;
    assert_eq!(reason, unauthorized("secret"));
    // Her own inbox is hers.
    client
        .join_ok(
            &format!("realtime:inbox:{alice_id}"),
            join_payload(true, false, Some(alice_token)),
        )
        .await;
    room.assert_still_served().await;
    t.stop().await;
}

#[tokio::test]
async fn an_empty_topic_name_is_refused() {
    let t = TestServer::start(test_config()).await;
    let mut room = Bystanders::join(&t).await;
    let (mut client, _) = joined(&t, Vsn::V2).await;
    for private in [false, true] {
        let reason = client
            .join_refused("realtime:", join_payload(private, false, None))
            .await;
        assert_eq!(reason, "TopicNameRequired: You must provide a topic name");
    }
    client.heartbeat_is_next().await;
    room.assert_still_served().await;
    t.stop().await;
}

#[tokio::test]
async fn a_message_flood_closes_that_channel_only() {
    /// Low, so a short burst exceeds it by far however slow the machine.
    const RATE: u32 = 5;
    /// Several times the burst the token bucket allows.
    const FLOOD: usize = 60;
    let mut config = test_config();
    config.realtime.max_messages_per_second = RATE;
    let t = TestServer::start(config).await;
    let mut room = Bystanders::join(&t).await;
    let (mut flooder, join_ref) = joined(&t, Vsn::V2).await;

    let mut refs = Vec::new();
    for i in 0..FLOOD {
        refs.push(
            flooder
                .broadcast_text(ROOM, &join_ref, "flood", json!({ "i": i }))
                .await,
        );
    }
    // Without ack nothing answers the accepted broadcasts; the first thing
    // the flooder hears is the system error, then the channel's close.
    let system = flooder.recv_message().await;
    assert_system_error(&system, &join_ref, "Too many messages per second");
    assert_close(&flooder.recv_message().await, &join_ref);
    // The pushes after that are on a topic no longer joined.
    let heartbeat_ref = flooder.send_heartbeat().await;
    let mut unmatched = 0;
    loop {
        let msg = flooder.recv_message().await;
        if msg.topic == "phoenix" {
            assert_heartbeat_reply(&msg, &heartbeat_ref);
            break;
        }
        let msg_ref = msg.msg_ref.clone().expect("a reply has a ref");
        assert!(refs.contains(&msg_ref));
        assert_unmatched(&msg, ROOM, &msg_ref);
        unmatched += 1;
    }
    // The bucket starts full, so the first RATE broadcasts always pass;
    // exactly one push tripped the limit.
    let accepted = FLOOD - 1 - unmatched;
    assert!(
        accepted >= RATE as usize,
        "{accepted} of {FLOOD} broadcasts went through at {RATE}/s"
    );
    // The flooder's socket is still open and may join again.
    flooder
        .join_ok(ROOM, join_payload(false, false, None))
        .await;
    room.assert_still_served().await;
    t.stop().await;
}

#[tokio::test]
async fn a_bad_access_token_push_closes_the_channel_without_a_reply() {
    let t = TestServer::start(test_config()).await;
    let mut room = Bystanders::join(&t).await;
    let session = t.sign_up().await;
    let user = session["user"]["id"].as_str().expect("user id").to_owned();
    let jwt = &t.server.state.jwt;
    let expired = jwt.sign(&user_claims(&user, unix_now() - 30));
    let forged = JwtKey::new(OTHER_SECRET).sign(&user_claims(&user, unix_now() + 3600));
    let cases = [
        (
            "garbage".to_owned(),
            "The token provided is not a valid JWT",
        ),
        (forged, "Failed to validate JWT signature"),
        (expired, "Token has expired"),
    ];
    for (token, message) in cases {
        let (mut client, join_ref) = joined(&t, Vsn::V2).await;
        let msg_ref = client.make_ref();
        client
            .push(
                &Message::new(ROOM, event::ACCESS_TOKEN, json!({ "access_token": token }))
                    .with_refs(Some(join_ref.clone()), Some(msg_ref)),
            )
            .await;
        let system = client.recv_message().await;
        assert_eq!(system.event, event::SYSTEM, "{system:?}");
        let text = json_payload(&system)["message"]
            .as_str()
            .expect("a message")
            .to_owned();
        assert!(text.starts_with(message), "{text}");
        assert_system_error(&system, &join_ref, &text);
        assert_close(&client.recv_message().await, &join_ref);
        // Never a phx_reply: the heartbeat's reply is the next message.
        client.heartbeat_is_next().await;
        room.assert_still_served().await;
    }

    // A valid new token is taken silently and the channel stays.
    let (mut client, join_ref) = joined(&t, Vsn::V2).await;
    let fresh = session["access_token"].as_str().expect("token");
    client
        .push(
            &Message::new(ROOM, event::ACCESS_TOKEN, json!({ "access_token": fresh }))
                .with_refs(Some(join_ref.clone()), Some("77".into())),
        )
        .await;
    client.heartbeat_is_next().await;
    let n = room.send_marker().await;
    let marker = client.recv_message().await;
    assert_eq!(
        broadcast_of(&marker),
        Some(("marker".to_owned(), json!({ "n": n })))
    );
    room.assert_next_is_marker(n).await;
    t.stop().await;
}

#[tokio::test]
async fn heartbeat_replies_have_phoenix_shape() {
    let t = TestServer::start(test_config()).await;
    let mut room = Bystanders::join(&t).await;

    let mut v2 = Client::connect(&t.server.url, &t.server.anon_key, Vsn::V2).await;
    v2.send_text(r#"[null,"26","phoenix","heartbeat",{}]"#)
        .await;
    assert_eq!(
        v2.recv_json().await,
        json!([null, "26", "phoenix", "phx_reply", {"status": "ok", "response": {}}])
    );

    // vsn 1.0.0 replies carry no `join_ref` key at all.
    let mut v1 = Client::connect(&t.server.url, &t.server.anon_key, Vsn::V1).await;
    v1.send_text(r#"{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"3"}"#)
        .await;
    assert_eq!(
        v1.recv_json().await,
        json!({"topic": "phoenix", "event": "phx_reply", "ref": "3",
            "payload": {"status": "ok", "response": {}}})
    );
    room.assert_still_served().await;
    t.stop().await;
}

#[tokio::test]
async fn leaving_gets_ok_then_close_and_ends_delivery() {
    let t = TestServer::start(test_config()).await;
    let mut room = Bystanders::join(&t).await;
    let (mut leaver, join_ref) = joined(&t, Vsn::V2).await;

    leaver
        .send_text(format!(r#"["{join_ref}","9","{ROOM}","phx_leave",{{}}]"#))
        .await;
    assert_eq!(
        leaver.recv_json().await,
        json!([join_ref, "9", ROOM, "phx_reply", {"status": "ok", "response": {}}])
    );
    assert_eq!(
        leaver.recv_json().await,
        json!([join_ref, join_ref, ROOM, "phx_close", {}])
    );

    // A broadcast fanned out to the room after the leave...
    let n = room.send_marker().await;
    room.assert_next_is_marker(n).await;
    // ...never reached the leaver, and its topic is no longer joined.
    leaver.heartbeat_is_next().await;
    let msg_ref = leaver.broadcast_text(ROOM, &join_ref, "e", json!({})).await;
    assert_unmatched(&leaver.recv_message().await, ROOM, &msg_ref);
    room.assert_still_served().await;
    t.stop().await;
}

#[tokio::test]
async fn an_expired_channel_token_closes_that_channel_only() {
    let t = TestServer::start(test_config()).await;
    let mut room = Bystanders::join(&t).await;
    let session = t.sign_up().await;
    let user = session["user"]["id"].as_str().expect("user id").to_owned();
    let short = t
        .server
        .state
        .jwt
        .sign(&user_claims(&user, unix_now() + SHORT_TOKEN_LIFETIME_SECS));

    // One socket, two channels: the room with the short token, and another
    // topic with the (long-lived) connect token.
    let mut client = Client::connect(&t.server.url, &t.server.anon_key, Vsn::V2).await;
    let join_ref = client
        .join_ok(ROOM, join_payload(false, false, Some(&short)))
        .await;
    client
        .join_ok("realtime:other", join_payload(false, false, None))
        .await;

    // The periodic re-check closes the channel soon after `exp`.
    let wait = Duration::from_secs(SHORT_TOKEN_LIFETIME_SECS) + RECV_TIMEOUT;
    let system = tokio::time::timeout(wait, client.recv_message())
        .await
        .expect("the channel is closed after its token expires");
    let text = json_payload(&system)["message"]
        .as_str()
        .expect("a message")
        .to_owned();
    assert!(text.starts_with("Token has expired"), "{text}");
    assert_system_error(&system, &join_ref, &text);
    assert_close(&client.recv_message().await, &join_ref);

    // The socket and its other channel are unaffected.
    client.heartbeat_is_next().await;
    let mut speaker = Client::connect(&t.server.url, &t.server.anon_key, Vsn::V2).await;
    let speaker_join_ref = speaker
        .join_ok("realtime:other", join_payload(false, false, None))
        .await;
    speaker
        .broadcast("realtime:other", &speaker_join_ref, "still", json!(true))
        .await;
    let msg = client.recv_message().await;
    assert_eq!(msg.topic, "realtime:other");
    assert_eq!(broadcast_of(&msg), Some(("still".to_owned(), json!(true))));
    room.assert_still_served().await;
    t.stop().await;
}
