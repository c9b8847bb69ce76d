//! Every deadline: what fires, when, and what keeps it from firing.

use std::time::Duration;

use super::{HOUR, Sim};
use crate::call::{
    CONNECT_TIMEOUT, CREDENTIALS_MIN_REMAINING, CREDENTIALS_TIMEOUT, Event, Output,
    QUEUE_JOIN_TIMEOUT, RECONNECT_GRACE, RESTART_DELAY, SEARCH_TIMEOUT,
};

const MS: Duration = Duration::from_millis(1);
const ROOM: &str = "send_bye close_peer leave_room end_match(m1)";

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Searching with credentials that expire `ttl` from now.
fn searching_with(ttl: Duration) -> Sim {
    let mut sim = Sim::new();
    sim.run("search");
    let expires_at = sim.now + ttl;
    assert_eq!(
        sim.event(Event::CredentialsReady { expires_at }),
        "join_queue >searching"
    );
    sim
}

fn in_call(role_input: &str) -> Sim {
    let mut sim = Sim::new();
    for input in [
        "search",
        "ready",
        "queued",
        role_input,
        "room_joined",
        "gathered",
        "peer_connected",
    ] {
        sim.run(input);
    }
    assert_eq!(sim.call.state(), crate::call::CallState::InCall);
    sim
}

#[test]
fn credentials_fetch_times_out_with_a_clear_error() {
    let mut sim = Sim::new();
    assert_eq!(sim.run("search"), "fetch_credentials >preparing");
    assert_eq!(sim.deadline_in(), Some(CREDENTIALS_TIMEOUT));
    assert_eq!(sim.wait(CREDENTIALS_TIMEOUT - MS), "");
    assert_eq!(sim.wait(MS), ">failed(credentials)");
    // The fetch was given up: its late answer is stale, and the next search
    // fetches again rather than waiting for it.
    assert_eq!(sim.run("ready"), "(ignored)");
    assert_eq!(sim.run("search"), "fetch_credentials >preparing");
}

#[test]
fn a_cancelled_fetch_is_awaited_by_the_next_search_and_its_answer_kept() {
    let mut sim = Sim::new();
    sim.script(&[
        ("search", "fetch_credentials >preparing"),
        ("cancel", ">idle"),
        // No second fetch while the first is in flight; a fresh deadline.
        ("search", ">preparing"),
        ("cancel", ">idle"),
        ("ready", ""),
        // The answer was cached: straight into the queue.
        ("search", "join_queue >searching"),
    ]);
    assert_eq!(sim.call.ignored_inputs(), 0);
}

#[test]
fn join_queue_must_answer_in_time() {
    let mut sim = searching_with(HOUR);
    assert_eq!(sim.deadline_in(), Some(QUEUE_JOIN_TIMEOUT));
    assert_eq!(sim.wait(QUEUE_JOIN_TIMEOUT - MS), "");
    assert_eq!(sim.wait(MS), "leave_queue >failed(backend_unreachable)");

    let mut sim = searching_with(HOUR);
    assert_eq!(sim.run("queued"), "");
    assert_eq!(sim.wait(QUEUE_JOIN_TIMEOUT), "");
}

#[test]
fn a_search_ends_when_nobody_is_found() {
    let mut sim = searching_with(HOUR);
    sim.run("queued");
    assert_eq!(sim.deadline_in(), Some(SEARCH_TIMEOUT));
    assert_eq!(sim.wait(SEARCH_TIMEOUT - MS), "");
    assert_eq!(sim.wait(MS), "leave_queue >ended(nobody_found)");

    // Usually the matchmaker says so first; it already dropped us.
    let mut sim = searching_with(HOUR);
    sim.run("queued");
    assert_eq!(sim.run("search_expired"), ">ended(nobody_found)");
    assert_eq!(sim.deadline_in(), None);
}

#[test]
fn credentials_are_refreshed_before_they_expire_in_the_queue() {
    let ttl = secs(5 * 60);
    let mut sim = searching_with(ttl);
    sim.run("queued");
    let refresh = ttl - CREDENTIALS_MIN_REMAINING;
    assert_eq!(sim.deadline_in(), Some(refresh));
    assert_eq!(sim.wait(refresh - MS), "");
    assert_eq!(sim.wait(MS), "leave_queue fetch_credentials >preparing");
    assert_eq!(sim.run("ready"), "join_queue >searching");
}

#[test]
fn credentials_too_close_to_expiry_are_never_used_to_queue() {
    let mut sim = Sim::new();
    sim.run("search");
    let expires_at = sim.now + CREDENTIALS_MIN_REMAINING;
    assert_eq!(
        sim.event(Event::CredentialsReady { expires_at }),
        ">failed(credentials)"
    );
    // And they were not kept.
    assert_eq!(sim.run("search"), "fetch_credentials >preparing");
}

#[test]
fn the_room_must_be_joined_within_the_connect_timeout() {
    let mut sim = searching_with(HOUR);
    assert_eq!(sim.run("matched"), "join_room(room:m1) >matched");
    assert_eq!(sim.deadline_in(), Some(CONNECT_TIMEOUT));
    assert_eq!(sim.wait(CONNECT_TIMEOUT - MS), "");
    assert_eq!(
        sim.wait(MS),
        "leave_room end_match(m1) >failed(signalling_lost)"
    );
}

#[test]
fn the_connect_timeout_runs_from_the_match_not_the_room() {
    let mut sim = searching_with(HOUR);
    sim.run("matched");
    sim.wait(secs(10));
    assert_eq!(sim.run("room_joined"), "start_peer(offerer) >connecting");
    assert_eq!(sim.deadline_in(), Some(CONNECT_TIMEOUT));
    assert_eq!(sim.wait(secs(5)), format!("{ROOM} >failed(relay)"));
}

#[test]
fn no_relay_candidate_by_the_connect_timeout_blames_our_relay() {
    let mut sim = searching_with(HOUR);
    sim.script(&[
        ("matched", "join_room(room:m1) >matched"),
        ("room_joined", "start_peer(offerer) >connecting"),
        ("timeout", &format!("{ROOM} >failed(relay)")),
        // The relay refused us: the credentials are not reused.
        ("search", "fetch_credentials >preparing"),
    ]);
}

#[test]
fn a_relay_candidate_but_no_connection_blames_the_stranger() {
    let mut sim = searching_with(HOUR);
    sim.script(&[
        ("matched", "join_room(room:m1) >matched"),
        ("room_joined", "start_peer(offerer) >connecting"),
        ("gathered", ""),
        (
            "timeout",
            &format!("{ROOM} >ended(stranger_never_answered)"),
        ),
        // Our credentials are fine: reused.
        ("search", "join_queue >searching"),
    ]);
    assert_eq!(sim.elapsed(), CONNECT_TIMEOUT);
}

#[test]
fn the_offerer_restarts_ice_after_the_restart_delay() {
    let mut sim = in_call("matched");
    assert_eq!(sim.deadline_in(), None);
    assert_eq!(sim.run("peer_disconnected"), "");
    assert_eq!(sim.deadline_in(), Some(RESTART_DELAY));
    assert_eq!(sim.wait(RESTART_DELAY - MS), "");
    assert_eq!(sim.wait(MS), "restart_ice >reconnecting");
    assert_eq!(sim.deadline_in(), Some(RESTART_DELAY + RECONNECT_GRACE));
    assert_eq!(sim.run("ice_restarted"), ">in_call");
    assert_eq!(sim.deadline_in(), None);
}

#[test]
fn the_answerer_waits_for_the_offerers_restart() {
    let mut sim = in_call("matched_answerer");
    sim.run("peer_disconnected");
    assert_eq!(sim.wait(RESTART_DELAY), ">reconnecting");
    assert_eq!(sim.run("peer_connected"), ">in_call");
}

#[test]
fn a_brief_disconnect_that_recovers_is_invisible() {
    let mut sim = in_call("matched");
    sim.run("peer_disconnected");
    sim.wait(RESTART_DELAY - MS);
    assert_eq!(sim.run("peer_connected"), "");
    assert_eq!(sim.deadline_in(), None);
    assert_eq!(sim.wait(HOUR), "");
    assert_eq!(sim.call.ignored_inputs(), 0);
}

#[test]
fn a_repeated_disconnect_keeps_the_first_deadline() {
    let mut sim = in_call("matched");
    sim.run("peer_disconnected");
    sim.wait(secs(1));
    assert_eq!(sim.run("peer_disconnected"), "(ignored)");
    assert_eq!(sim.wait(secs(1)), "restart_ice >reconnecting");
}

#[test]
fn reconnecting_gives_up_after_the_grace() {
    let mut sim = in_call("matched");
    assert_eq!(sim.run("peer_failed"), "restart_ice >reconnecting");
    assert_eq!(sim.deadline_in(), Some(RECONNECT_GRACE));
    // A failure while restarting does not cut the grace short.
    assert_eq!(sim.run("peer_failed"), "(ignored)");
    assert_eq!(sim.wait(RECONNECT_GRACE - MS), "");
    assert_eq!(sim.wait(MS), format!("{ROOM} >ended(connection_lost)"));
}

#[test]
fn skip_refetches_credentials_near_expiry_and_reuses_them_otherwise() {
    let ttl = secs(2 * 60);
    let mut sim = searching_with(ttl);
    sim.script(&[
        ("matched", "join_room(room:m1) >matched"),
        ("room_joined", "start_peer(offerer) >connecting"),
        ("peer_connected", ">in_call"),
    ]);
    sim.wait(ttl - CREDENTIALS_MIN_REMAINING - MS);
    assert_eq!(
        sim.run("skip"),
        format!("{ROOM} >ended(skipped) join_queue >searching")
    );
    sim.script(&[
        ("matched_other", "join_room(room:m2) >matched"),
        ("room_joined", "start_peer(offerer) >connecting"),
        ("peer_connected", ">in_call"),
    ]);
    sim.wait(MS);
    assert_eq!(
        sim.run("skip"),
        "send_bye close_peer leave_room end_match(m2) >ended(skipped) fetch_credentials >preparing"
    );
    assert_eq!(sim.run("ready"), "join_queue >searching");
}

#[test]
fn poll_output_fires_deadlines_a_late_driver_missed() {
    let mut sim = Sim::new();
    sim.run("search");
    sim.now += CREDENTIALS_TIMEOUT + secs(5);
    let now = sim.now;
    assert_eq!(
        sim.call.poll_output(now),
        Some(Output::StateChanged(crate::call::CallState::Failed {
            error: crate::call::ErrorKind::Credentials
        }))
    );
    assert_eq!(sim.call.poll_output(now), None);
}

#[test]
fn a_late_wake_fires_one_deadline_and_measures_the_next_from_now() {
    let mut sim = in_call("matched");
    sim.run("peer_disconnected");
    // Asleep for an hour: the restart fires now, and the grace starts now.
    assert_eq!(sim.wait(HOUR), "restart_ice >reconnecting");
    assert_eq!(
        sim.deadline_in(),
        Some(sim.elapsed() + RECONNECT_GRACE),
        "the grace runs from the wake"
    );
}

#[test]
fn early_and_repeated_timeouts_do_nothing() {
    let mut sim = in_call("matched");
    sim.run("peer_disconnected");
    let now = sim.now;
    sim.call.handle_timeout(now);
    sim.call.handle_timeout(now + MS);
    assert_eq!(sim.wait(Duration::ZERO), "");
    assert_eq!(sim.deadline_in(), Some(sim.elapsed() + RESTART_DELAY));
}
