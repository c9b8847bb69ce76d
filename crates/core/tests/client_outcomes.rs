//! Every way a call can go wrong ends in its defined state within its
//! timeout, never a hang: an unreachable backend, a TURN server that
//! refuses our credentials, a stranger who never answers; and a stranger who
//! hangs up or skips is noticed at once.

mod common;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use voicemeet_core::audio::{AudioSink, AudioSource, MemorySink, ToneSource};
use voicemeet_core::backend::{BackendClient, QueueStatus, inbox_topic};
use voicemeet_core::proto::Redacted;
use voicemeet_core::proto::call::{CallState, EndReason, ErrorKind};
use voicemeet_core::realtime::{ChannelConfig, RealtimeClient};
use voicemeet_core::{Client, ClientConfig, ClientEvent};
use voicemeet_server::{Config, TurnMode};

/// Longer than every timeout of the call machine (15 s connect), so a test
/// that times out here found a hang, not a slow path.
const OUTCOME_TIMEOUT: Duration = Duration::from_secs(30);
/// The product promise for a stranger who hangs up or skips.
const STRANGER_LEFT_WITHIN: Duration = Duration::from_secs(1);

struct Tone(f64);

impl voicemeet_core::audio::PacedIo for Tone {
    fn source(&self) -> Box<dyn AudioSource> {
        Box::new(ToneSource::new(self.0))
    }

    fn sink(&self) -> Box<dyn AudioSink> {
        Box::new(MemorySink::new())
    }
}

fn client(
    backend: voicemeet_core::backend::BackendConfig,
) -> (Client, mpsc::Receiver<ClientEvent>) {
    Client::start(ClientConfig::new(backend, Arc::new(Tone(440.0)))).expect("client starts")
}

async fn next_state(
    events: &mut mpsc::Receiver<ClientEvent>,
    within: Duration,
    wanted: impl Fn(&CallState) -> bool,
) -> CallState {
    tokio::time::timeout(within, async {
        loop {
            match events.recv().await {
                Some(ClientEvent::StateChanged(state)) if wanted(&state) => return state,
                Some(_) => {}
                None => panic!("the client stopped"),
            }
        }
    })
    .await
    .expect("the outcome arrives within its bound")
}

fn is_final(state: &CallState) -> bool {
    matches!(state, CallState::Ended { .. } | CallState::Failed { .. })
}

#[tokio::test]
async fn an_unreachable_backend_fails_before_queueing() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let backend =
        voicemeet_core::backend::BackendConfig::new(format!("http://127.0.0.1:{port}"), "key");
    let (client, mut events) = client(backend);
    client.search().await.expect("search");
    let state = next_state(&mut events, OUTCOME_TIMEOUT, is_final).await;
    assert_eq!(
        state,
        CallState::Failed {
            error: ErrorKind::BackendUnreachable
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_refuses_our_credentials_is_a_relay_error() {
    // Server A runs the relay; server B mints credentials for it with the
    // wrong secret, so the relay refuses every allocation.
    let relay = common::start(common::test_config()).await;
    let mut config: Config = common::test_config();
    config.turn.mode = TurnMode::External {
        urls: relay.turn_urls.clone(),
    };
    config.turn.secret = Some(Redacted::new("not-the-relays-secret".to_owned()));
    let server = common::start(config).await;

    let (alice, mut alice_events) = client(common::backend_config(&server));
    let (bob, mut bob_events) = client(common::backend_config(&server));
    alice.search().await.expect("search");
    next_state(&mut alice_events, OUTCOME_TIMEOUT, |s| {
        *s == CallState::Searching
    })
    .await;
    bob.search().await.expect("search");
    let state = next_state(&mut alice_events, OUTCOME_TIMEOUT, is_final).await;
    assert_eq!(
        state,
        CallState::Failed {
            error: ErrorKind::Relay
        }
    );
    let state = next_state(&mut bob_events, OUTCOME_TIMEOUT, is_final).await;
    assert!(is_final(&state));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_who_never_answers_ends_the_call() {
    let server = common::start(common::test_config()).await;
    let (client, mut events) = client(common::backend_config(&server));
    client.search().await.expect("search");
    next_state(&mut events, OUTCOME_TIMEOUT, |s| *s == CallState::Searching).await;

    // The silent stranger: queues, joins the room, then says nothing.
    let backend: BackendClient = common::backend(&server);
    let session = backend.ensure_session().await.expect("sign in");
    let realtime = RealtimeClient::connect(common::realtime_config(
        &server,
        voicemeet_core::proto::phoenix::Vsn::V2,
    ))
    .await
    .expect("connect");
    let private = ChannelConfig {
        private: true,
        ..ChannelConfig::default()
    };
    let _inbox = realtime
        .join(
            &inbox_topic(&session.user_id),
            private.clone(),
            Some(session.access_token.expose()),
        )
        .await
        .expect("inbox");
    let QueueStatus::Matched(info) = backend.join_queue().await.expect("queue") else {
        panic!("the waiting client is matched at once");
    };
    let _room = realtime
        .join(&info.topic.0, private, Some(session.access_token.expose()))
        .await
        .expect("room");

    let state = next_state(&mut events, OUTCOME_TIMEOUT, is_final).await;
    assert_eq!(
        state,
        CallState::Ended {
            reason: EndReason::StrangerNeverAnswered
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_and_hang_up_reach_the_stranger_within_a_second() {
    let server = common::start(common::test_config()).await;
    let (alice, mut alice_events) = client(common::backend_config(&server));
    let (bob, mut bob_events) = client(common::backend_config(&server));

    alice.search().await.expect("search");
    next_state(&mut alice_events, OUTCOME_TIMEOUT, |s| {
        *s == CallState::Searching
    })
    .await;
    bob.search().await.expect("search");
    next_state(&mut alice_events, OUTCOME_TIMEOUT, |s| {
        *s == CallState::InCall
    })
    .await;
    next_state(&mut bob_events, OUTCOME_TIMEOUT, |s| {
        *s == CallState::InCall
    })
    .await;

    // Bob skips: Alice hears "stranger left", Bob searches again.
    bob.skip().await.expect("skip");
    let state = next_state(&mut alice_events, STRANGER_LEFT_WITHIN, is_final).await;
    assert_eq!(
        state,
        CallState::Ended {
            reason: EndReason::StrangerLeft
        }
    );
    next_state(&mut bob_events, OUTCOME_TIMEOUT, |s| {
        *s == CallState::Searching
    })
    .await;

    // They meet again; this time Alice hangs up.
    alice.search().await.expect("search");
    next_state(&mut alice_events, OUTCOME_TIMEOUT, |s| {
        *s == CallState::InCall
    })
    .await;
    next_state(&mut bob_events, OUTCOME_TIMEOUT, |s| {
        *s == CallState::InCall
    })
    .await;
    alice.hang_up().await.expect("hang up");
    let state = next_state(&mut bob_events, STRANGER_LEFT_WITHIN, is_final).await;
    assert_eq!(
        state,
        CallState::Ended {
            reason: EndReason::StrangerLeft
        }
    );
}
