//! Two peers in one process calling each other through a real coturn on
//! loopback (started here with the MACHINE.md recipe, on random ports with a
//! random secret, and killed by PID at the end): tones both ways, relay-only
//! candidates, early candidates buffered, ICE restart mid-call, and a wrong
//! TURN password ending in `ConnectTimeout`. Skipped, with a message, only
//! if `/usr/bin/turnserver` is not installed.

mod coturn;
mod peer_harness;

use std::time::{Duration, Instant};

use coturn::Coturn;

use peer_harness::{Side, config, print_report, pump_until, tone_call, with_wrong_password};
use voicemeet_core::peer::Role;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tones_cross_coturn_both_ways_and_survive_an_ice_restart() {
    let Some(coturn) = Coturn::start() else {
        return;
    };
    let report = tone_call(coturn.credentials("alice"), coturn.credentials("bob"), true).await;
    print_report("coturn", &report);
    assert!(report.restart.is_some());
    // The longest pause between packets, around the restart, stays short
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
async fn wrong_password_on_coturn_ends_in_connect_timeout() {
    let Some(coturn) = Coturn::start() else {
        return;
    };
    let timeout = Duration::from_secs(2);
    let mut a_config = config(
        with_wrong_password(&coturn.credentials("alice")),
        Role::Offerer,
    );
    a_config.connect_timeout = timeout;
    let mut b_config = config(coturn.credentials("bob"), Role::Answerer);
    b_config.connect_timeout = timeout;
    let mut a = Side::new("offerer", a_config).await;
    let mut b = Side::new("answerer", b_config).await;

    let started = Instant::now();
    let offer = a.peer.create_offer(false).await.expect("offer");
    let answer = b.peer.accept_offer(offer).await.expect("answer");
    a.peer.accept_answer(answer).await.expect("accept answer");
    pump_until(&mut a, &mut b, |a, _| !a.connect_timeouts.is_empty()).await;
    let waited = a.connect_timeouts[0].0 - started;
    println!(
        "[coturn] wrong password: offerer ConnectTimeout after {:.1} ms; candidates {}",
        waited.as_secs_f64() * 1000.0,
        a.candidates.len()
    );
    assert!(
        waited >= timeout && waited < timeout + Duration::from_secs(3),
        "{waited:?}"
    );
    assert_eq!(a.connected, 0);
    assert!(
        a.candidates.is_empty(),
        "a refused allocation yields no candidate"
    );
    a.peer.close().await.expect("close");
    b.peer.close().await.expect("close");
}
