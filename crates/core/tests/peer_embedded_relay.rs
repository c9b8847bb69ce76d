//! Two peers in one process calling each other through the embedded TURN
//! relay of the real local backend, with TURN credentials fetched through
//! the backend client like the app does: tones both ways, relay-only
//! candidates, early candidates buffered, ICE restart mid-call, and a wrong
//! TURN password ending in `ConnectTimeout` rather than a hang.

mod common;
mod peer_harness;

use std::time::{Duration, Instant};

use peer_harness::{
    Side, assert_all_candidates_private, config, print_report, pump_until, pump_until_or,
    tone_call, with_wrong_password,
};
use voicemeet_core::Error;
use voicemeet_core::backend::IceServer;
use voicemeet_core::peer::{PeerConfig, RelayIps, Role, Sdp, relay_ips_from_urls};
use voicemeet_server::RunningServer;

/// Connect timeout for the wrong-password test: long enough that a correct
/// setup on loopback would connect many times over, short enough to keep
/// the test quick.
const SHORT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Credentials of a fresh anonymous user, the way the app gets them.
async fn credentials(server: &RunningServer) -> Vec<IceServer> {
    common::backend(server)
        .turn_credentials()
        .await
        .expect("TURN credentials")
        .ice_servers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tones_cross_the_embedded_relay_both_ways() {
    let server = common::start(common::test_config()).await;
    let (a, b) = (credentials(&server).await, credentials(&server).await);
    let relay_ips = relay_ips_from_urls(&a);
    assert_eq!(
        relay_ips,
        vec![server.relay_addr.expect("embedded relay").ip()]
    );
    let report = tone_call(a, b, false).await;
    print_report("embedded", &report);
    assert_eq!(report.offerer_received.jitter.decoder_errors, 0);
    assert_eq!(report.answerer_received.jitter.decoder_errors, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ice_restart_keeps_audio_flowing_on_the_embedded_relay() {
    let server = common::start(common::test_config()).await;
    let (a, b) = (credentials(&server).await, credentials(&server).await);
    let report = tone_call(a, b, true).await;
    print_report("embedded+restart", &report);
    assert!(report.restart.is_some());
    // Audio resumes after the restart (checked by tone in `tone_call`), and
    // the longest pause between packets, around the restart, stays short
    // (loopback: tens of ms; a busy 2-core machine gets some slack).
    for received in [&report.offerer_received, &report.answerer_received] {
        assert!(
            received.counters.max_interarrival < Duration::from_millis(500),
            "{received:?}"
        );
        assert!(received.jitter.frames_lost <= 5, "{received:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_turn_password_ends_in_connect_timeout() {
    let server = common::start(common::test_config()).await;
    let good = credentials(&server).await;
    let bad = with_wrong_password(&good);
    let mut a_config = config(bad, Role::Offerer);
    a_config.connect_timeout = SHORT_CONNECT_TIMEOUT;
    let mut b_config = config(good, Role::Answerer);
    b_config.connect_timeout = SHORT_CONNECT_TIMEOUT;
    let mut a = Side::new("offerer", a_config).await;
    let mut b = Side::new("answerer", b_config).await;

    let started = Instant::now();
    let offer = a.peer.create_offer(false).await.expect("offer");
    let answer = b.peer.accept_offer(offer).await.expect("answer");
    a.peer.accept_answer(answer).await.expect("accept answer");
    pump_until(&mut a, &mut b, |a, b| {
        !a.connect_timeouts.is_empty() && !b.connect_timeouts.is_empty()
    })
    .await;
    let (at, after) = a.connect_timeouts[0];
    let waited = at - started;
    println!(
        "[embedded] wrong password: offerer ConnectTimeout after {:.1} ms (timeout {after:?}); \
         offerer gathering complete: {:?}, candidates: {}",
        waited.as_secs_f64() * 1000.0,
        a.gathering_complete,
        a.candidates.len()
    );
    assert_eq!(after, SHORT_CONNECT_TIMEOUT);
    assert!(waited >= SHORT_CONNECT_TIMEOUT, "{waited:?}");
    assert!(
        waited < SHORT_CONNECT_TIMEOUT + Duration::from_secs(3),
        "{waited:?}"
    );
    assert_eq!(a.connected + b.connected, 0, "nothing connects");
    assert!(
        a.candidates.is_empty(),
        "a refused allocation yields no candidate"
    );
    assert_eq!(a.gathering_complete, vec![0], "gathering still ends");
    // Reported once per attempt: nothing more comes.
    let quiet = pump_until_or(
        &mut a,
        &mut b,
        Instant::now() + Duration::from_millis(500),
        |a, _| a.connect_timeouts.len() > 1,
    )
    .await;
    assert!(!quiet, "ConnectTimeout is reported once");
    a.peer.close().await.expect("close");
    b.peer.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_generations_and_servers_are_enforced() {
    let server = common::start(common::test_config()).await;
    let servers = credentials(&server).await;

    let no_turn = vec![IceServer {
        urls: vec![
            "stun:127.0.0.1:3478".to_owned(),
            "turns:127.0.0.1:5349".to_owned(),
        ],
        username: "u".to_owned().into(),
        credential: "p".to_owned().into(),
    }];
    let err = voicemeet_core::peer::Peer::new(config(no_turn, Role::Offerer))
        .await
        .expect_err("no usable server");
    assert!(
        matches!(err, Error::NoUsableTurnServer { skipped: 2 }),
        "{err:?}"
    );

    let mut a = Side::new("offerer", config(servers.clone(), Role::Offerer)).await;
    let mut b = Side::new("answerer", config(servers.clone(), Role::Answerer)).await;
    assert!(matches!(
        b.peer.create_offer(false).await,
        Err(Error::PeerState(_))
    ));
    assert!(matches!(
        b.peer.restart_ice().await,
        Err(Error::PeerState(_))
    ));
    assert!(
        matches!(a.peer.restart_ice().await, Err(Error::PeerState(_))),
        "nothing to restart"
    );
    let offer = a.peer.create_offer(false).await.expect("offer");
    assert!(matches!(
        a.peer.accept_offer(offer.clone()).await,
        Err(Error::PeerState(_))
    ));
    let answer = b.peer.accept_offer(offer).await.expect("answer");
    let early = Sdp::new(answer.text.expose().clone(), 1);
    assert!(matches!(
        a.peer.accept_answer(early).await,
        Err(Error::PeerState(_))
    ));
    a.peer.accept_answer(answer).await.expect("answer");
    pump_until(&mut a, &mut b, |a, b| a.connected > 0 && b.connected > 0).await;

    // An offer older than the answerer's generation is refused as stale.
    let restart = a.peer.restart_ice().await.expect("restart offer");
    assert_eq!(restart.generation, 1);
    let answer = b.peer.accept_offer(restart).await.expect("restart answer");
    let stale = Sdp::new(answer.text.expose().clone(), 0);
    assert!(matches!(
        b.peer.accept_offer(stale.clone()).await,
        Err(Error::StaleGeneration { got: 0, current: 1 })
    ));
    assert!(matches!(
        a.peer.accept_answer(stale).await,
        Err(Error::StaleGeneration { got: 0, current: 1 })
    ));
    a.peer.accept_answer(answer).await.expect("restart answer");
    pump_until(&mut a, &mut b, |a, b| a.connected > 1 && b.connected > 1).await;
    assert_all_candidates_private(&a, &b);

    // A relay that must allocate elsewhere turns every candidate into a
    // reported violation, never an emitted candidate.
    let mut strict = config(servers.clone(), Role::Offerer);
    strict.relay_ips = RelayIps::Exactly(vec!["192.0.2.1".parse().expect("ip")]);
    let mut c = Side::new("strict", strict).await;
    let mut d = Side::new("other", PeerConfig::new(servers, Role::Answerer)).await;
    let offer = c.peer.create_offer(false);
    let offer = offer.await.expect("offer (no candidates in it yet)");
    drop(offer);
    pump_until(&mut c, &mut d, |c, _| {
        c.privacy_violations > 0 && !c.gathering_complete.is_empty()
    })
    .await;
    assert!(
        c.candidates.is_empty(),
        "nothing off the allowed relay IPs is emitted"
    );

    a.peer.close().await.expect("close");
    a.peer.close().await.expect("close is idempotent");
    assert!(matches!(
        a.peer.create_offer(false).await,
        Err(Error::PeerClosed)
    ));
    b.peer.close().await.expect("close");
    c.peer.close().await.expect("close");
    d.peer.close().await.expect("close");
}
