//! The backend client against the real local backend: sessions (sign-in,
//! reuse, refresh, fallback to a new sign-in), TURN credentials, the
//! matchmaking RPCs, and failures.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{backend, backend_config, next_broadcast, realtime_config, start, test_config};
use serde_json::json;
use voicemeet_core::Error;
use voicemeet_core::backend::{
    BackendClient, BackendConfig, InboxEvent, MemoryStore, QueueStatus, SessionStore, inbox_topic,
};
use voicemeet_core::proto::matchmaking::Role;
use voicemeet_core::proto::phoenix::Vsn;
use voicemeet_core::realtime::{Channel, ChannelConfig, RealtimeClient};
use voicemeet_server::{RunningServer, TurnMode};

fn unix_now() -> u64 {
    voicemeet_server::clock::unix_now()
}

/// Uses a refresh token behind the client's back, as a second device (or
/// an attacker) would. GoTrue-style rotation makes the client's copy stale.
async fn refresh_externally(server: &RunningServer, refresh_token: &str) -> reqwest::StatusCode {
    reqwest::Client::new()
        .post(format!(
            "{}/auth/v1/token?grant_type=refresh_token",
            server.url
        ))
        .header("apikey", &server.anon_key)
        .json(&json!({ "refresh_token": refresh_token }))
        .send()
        .await
        .expect("refresh request")
        .status()
}

#[tokio::test]
async fn anonymous_sign_in_stores_the_session() {
    let server = start(test_config()).await;
    let store = Arc::new(MemoryStore::new());
    let client =
        BackendClient::with_store(backend_config(&server), store.clone()).expect("valid config");

    let session = client.ensure_session().await.expect("signed in");
    assert!(!session.user_id.is_empty());
    assert!(session.access_token.expose().starts_with("ey"));
    assert!(
        session.expires_at > unix_now() + 3000,
        "GoTrue's 1 h default"
    );
    assert_eq!(store.load().expect("store readable"), Some(session.clone()));
    // Debug output never carries the tokens.
    let printed = format!("{session:?}");
    assert!(
        !printed.contains(session.access_token.expose()),
        "{printed}"
    );
    assert!(
        !printed.contains(session.refresh_token.expose()),
        "{printed}"
    );
}

#[tokio::test]
async fn a_stored_session_is_reused_without_a_request() {
    let server = start(test_config()).await;
    let store = Arc::new(MemoryStore::new());
    let first = BackendClient::with_store(backend_config(&server), store.clone())
        .expect("valid config")
        .ensure_session()
        .await
        .expect("signed in");

    // A new client (the next app start) over the same store.
    let again = BackendClient::with_store(backend_config(&server), store)
        .expect("valid config")
        .ensure_session()
        .await
        .expect("session");
    assert_eq!(again, first, "same tokens: neither refreshed nor signed in");
}

#[tokio::test]
async fn a_token_near_expiry_is_refreshed_first() {
    let mut config = test_config();
    // Inside the client's 60 s refresh margin from the start.
    config.access_token_ttl = Duration::from_secs(30);
    let server = start(config).await;
    let client = backend(&server);

    let first = client.ensure_session().await.expect("signed in");
    let second = client.ensure_session().await.expect("refreshed");
    assert_eq!(second.user_id, first.user_id, "same user");
    assert_ne!(
        second.refresh_token, first.refresh_token,
        "refresh tokens rotate"
    );
    // The old refresh token is spent; the new one works.
    let third = client.refresh_session().await.expect("refreshed again");
    assert_eq!(third.user_id, first.user_id);
    assert_ne!(third.refresh_token, second.refresh_token);
}

#[tokio::test]
async fn a_used_refresh_token_falls_back_to_a_new_sign_in() {
    let mut config = test_config();
    config.access_token_ttl = Duration::from_secs(30);
    let server = start(config).await;
    let store = Arc::new(MemoryStore::new());
    let client =
        BackendClient::with_store(backend_config(&server), store.clone()).expect("valid config");

    let first = client.ensure_session().await.expect("signed in");
    assert!(
        refresh_externally(&server, first.refresh_token.expose())
            .await
            .is_success()
    );

    // The stored refresh token is now "already used": refused, so a new
    // anonymous identity replaces the session.
    let second = client.ensure_session().await.expect("signed in anew");
    assert_ne!(second.user_id, first.user_id);
    assert_eq!(store.load().expect("store readable"), Some(second));
}

#[tokio::test]
async fn a_revoked_session_is_renewed_when_a_call_is_refused() {
    let server = start(test_config()).await;
    let client = backend(&server);
    let first = client.ensure_session().await.expect("signed in");

    // Reusing a refresh token revokes the whole session server-side; the
    // client's access token still looks fresh to it.
    let token = first.refresh_token.expose();
    assert!(refresh_externally(&server, token).await.is_success());
    assert!(!refresh_externally(&server, token).await.is_success());

    let credentials = client
        .turn_credentials()
        .await
        .expect("renewed after the 401, then served");
    assert!(!credentials.ice_servers.is_empty());
    let renewed = client.ensure_session().await.expect("session");
    assert_ne!(renewed.user_id, first.user_id, "a new sign-in was needed");
}

#[tokio::test]
async fn turn_credentials_are_parsed_filtered_and_cached() {
    let server = start(test_config()).await;
    let client = backend(&server);

    let credentials = client.turn_credentials().await.expect("credentials");
    assert_eq!(credentials.ice_servers.len(), 1);
    let ice = &credentials.ice_servers[0];
    assert_eq!(
        ice.urls, server.turn_urls,
        "the embedded relay's turn:udp URL"
    );
    assert!(ice.urls[0].starts_with("turn:") && ice.urls[0].ends_with("?transport=udp"));
    // Expiry from the TURN REST username: the 12 h we asked for (the server
    // allows up to 24 h).
    let user = client.ensure_session().await.expect("session").user_id;
    let (expiry, id) = ice
        .username
        .expose()
        .split_once(':')
        .expect("<expiry>:<id> username");
    assert_eq!(id, user);
    assert_eq!(credentials.expires_at.to_string(), expiry);
    let wanted = unix_now() + 12 * 3600;
    assert!(credentials.expires_at.abs_diff(wanted) <= 5);
    assert!(!ice.credential.expose().is_empty());
    assert!(!format!("{credentials:?}").contains(ice.credential.expose()));

    // Cached: the same credentials again, not a new mint.
    assert_eq!(
        client.turn_credentials().await.expect("cached"),
        credentials
    );
}

#[tokio::test]
async fn unusable_turn_urls_are_dropped_and_none_left_is_an_error() {
    let mut config = test_config();
    config.turn.secret = Some(voicemeet_core::proto::Redacted::new("s".into()));
    config.turn.mode = TurnMode::External {
        urls: vec![
            "turns:turn.example:5349?transport=tcp".into(),
            "turn:turn.example:3478?transport=udp".into(),
            "turn:turn.example:80?transport=tcp".into(),
        ],
    };
    let server = start(config).await;
    let credentials = backend(&server).turn_credentials().await.expect("one left");
    assert_eq!(
        credentials.ice_servers[0].urls,
        ["turn:turn.example:3478?transport=udp"]
    );

    let mut config = test_config();
    config.turn.secret = Some(voicemeet_core::proto::Redacted::new("s".into()));
    config.turn.mode = TurnMode::External {
        urls: vec![
            "turns:turn.example:443?transport=tcp".into(),
            "turn:turn.example:80?transport=tcp".into(),
        ],
    };
    let server = start(config).await;
    let err = backend(&server)
        .turn_credentials()
        .await
        .expect_err("nothing usable");
    assert!(
        matches!(err, Error::NoUsableTurnServer { skipped: 2 }),
        "{err:?}"
    );
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn an_unreachable_backend_fails_fast_and_retryably() {
    // A port that was just free: nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    drop(listener);

    let client = BackendClient::new(BackendConfig::new(format!("http://{addr}"), "key"))
        .expect("valid config");
    let started = Instant::now();
    let err = client.ensure_session().await.expect_err("nothing listens");
    assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(
        !err.to_string().contains(&addr.port().to_string()),
        "no URL in the message: {err}"
    );
}

#[tokio::test]
async fn a_wrong_api_key_is_unauthorized() {
    let server = start(test_config()).await;
    let client = BackendClient::new(BackendConfig::new(server.url.clone(), "not-a-key"))
        .expect("valid config");
    let err = client.ensure_session().await.expect_err("refused");
    assert!(
        matches!(&err, Error::Unauthorized { message, .. } if message == "Invalid API key"),
        "{err:?}"
    );
    assert!(!err.is_retryable());
}

/// Signs a user in and joins their private inbox, as the app does before
/// searching.
async fn listening_user(
    server: &RunningServer,
    realtime: &RealtimeClient,
) -> (BackendClient, Channel) {
    let client = backend(server);
    let session = client.ensure_session().await.expect("signed in");
    let inbox = realtime
        .join(
            &inbox_topic(&session.user_id),
            ChannelConfig {
                private: true,
                ..ChannelConfig::default()
            },
            Some(session.access_token.expose()),
        )
        .await
        .expect("own inbox joins");
    (client, inbox)
}

async fn next_inbox_event(inbox: &mut Channel) -> InboxEvent {
    let (event, payload) = next_broadcast(inbox).await;
    InboxEvent::parse(&event, &payload)
        .expect("well-formed")
        .expect("a known inbox event")
}

#[tokio::test]
async fn matchmaking_round_trip() {
    let server = start(test_config()).await;
    let realtime = RealtimeClient::connect(realtime_config(&server, Vsn::V2))
        .await
        .expect("realtime connects");

    // Searching without listening on the inbox is refused, with a code.
    let deaf = backend(&server);
    let err = deaf.join_queue().await.expect_err("not listening");
    assert!(
        matches!(&err, Error::Server { status: 400, code: Some(c), .. } if c == "P0001"),
        "{err:?}"
    );

    let (alice, mut alice_inbox) = listening_user(&server, &realtime).await;
    let (bob, mut bob_inbox) = listening_user(&server, &realtime).await;

    assert_eq!(
        alice.join_queue().await.expect("queued"),
        QueueStatus::Waiting
    );
    assert_eq!(
        alice.join_queue().await.expect("still queued"),
        QueueStatus::Waiting
    );
    let QueueStatus::Matched(bob_match) = bob.join_queue().await.expect("matched") else {
        panic!("bob should be matched with the waiting alice");
    };
    assert_eq!(bob_match.role, Role::Answerer);

    let InboxEvent::Matched(alice_match) = next_inbox_event(&mut alice_inbox).await else {
        panic!("alice hears of the match");
    };
    assert_eq!(alice_match.match_id, bob_match.match_id);
    assert_eq!(alice_match.topic, bob_match.topic);
    assert_eq!(alice_match.role, Role::Offerer);
    let InboxEvent::Matched(told_bob) = next_inbox_event(&mut bob_inbox).await else {
        panic!("bob's inbox hears of it too");
    };
    assert_eq!(told_bob, bob_match);

    bob.end_match(bob_match.match_id).await.expect("ended");
    let InboxEvent::MatchEnded { match_id, reason } = next_inbox_event(&mut alice_inbox).await
    else {
        panic!("alice is told the match ended");
    };
    assert_eq!((match_id, reason.as_str()), (bob_match.match_id, "hangup"));

    // Reporting the match just ended still counts: the pair is blocked.
    alice
        .report_stranger(bob_match.match_id)
        .await
        .expect("reported after the end");
    let err = alice
        .end_match(voicemeet_core::proto::matchmaking::MatchId::from_u128(7))
        .await
        .expect_err("not a match of alice's");
    assert!(
        matches!(&err, Error::Server { status: 400, code: Some(c), .. } if c == "P0001"),
        "{err:?}"
    );

    // Blocked: both wait, neither is matched with the other again.
    assert_eq!(
        bob.join_queue().await.expect("queued"),
        QueueStatus::Waiting
    );
    assert_eq!(
        alice.join_queue().await.expect("queued"),
        QueueStatus::Waiting
    );
    assert!(alice.leave_queue().await.expect("left").was_waiting);
    assert!(bob.leave_queue().await.expect("left").was_waiting);
    assert!(!bob.leave_queue().await.expect("left").was_waiting);
}
