//! Every transition: each state the machine can be in, crossed with every
//! input, and what must come out. A row's outputs are in order; `>state`
//! is a state change, and `(ignored)` means nothing else happened and the
//! input was counted as ignored.

use super::Sim;

/// Every input the table crosses with every state. Events carry fixed
/// values: the current match is m1 (room `room:m1`), another is m2;
/// `ready` brings credentials for an hour, `ready_short` for 30 s;
/// `timeout` jumps to the pending deadline (or an hour on, when none).
pub(super) const INPUTS: &[&str] = &[
    "search",
    "skip",
    "cancel",
    "hang_up",
    "mute",
    "unmute",
    "ready",
    "ready_short",
    "credentials_failed",
    "queued",
    "matched",
    "matched_other",
    "search_expired",
    "partner_left",
    "partner_left_other",
    "room_joined",
    "gathered",
    "peer_connected",
    "peer_disconnected",
    "peer_failed",
    "ice_restarted",
    "remote_bye",
    "signalling_gave_up",
    "backend_error",
    "action_failed",
    "timeout",
];

const TO_IN_CALL: &[&str] = &[
    "search",
    "ready",
    "queued",
    "matched",
    "room_joined",
    "gathered",
    "peer_connected",
];

const TO_IN_CALL_AS_ANSWERER: &[&str] = &[
    "search",
    "ready",
    "queued",
    "matched_answerer",
    "room_joined",
    "gathered",
    "peer_connected",
];

/// How to reach each state of the table from a new call, in virtual time
/// from the start; `+` appends to the inputs of the state named first.
const SETUPS: &[(&str, &str, &[&str])] = &[
    ("idle", "", &[]),
    // Cached credentials, valid for an hour.
    ("idle_cached", "", &["search", "ready", "cancel"]),
    // The credentials fetch of a cancelled search is still in flight.
    ("idle_fetching", "", &["search", "cancel"]),
    ("preparing", "", &["search"]),
    // Searching, `join_queue` not answered yet.
    ("joining", "", &["search", "ready"]),
    ("queued", "", &["search", "ready", "queued"]),
    ("matched", "", &["search", "ready", "queued", "matched"]),
    (
        "connecting",
        "",
        &["search", "ready", "queued", "matched", "room_joined"],
    ),
    // Connecting, and our relay gave us a candidate.
    ("gathered", "connecting", &["gathered"]),
    ("in_call", "", TO_IN_CALL),
    // In call, ICE disconnected: the restart delay runs.
    ("disconnected", "in_call", &["peer_disconnected"]),
    ("reconnecting", "in_call", &["peer_failed"]),
    ("in_call_answerer", "", TO_IN_CALL_AS_ANSWERER),
    (
        "disconnected_answerer",
        "in_call_answerer",
        &["peer_disconnected"],
    ),
    // Ended{YouLeft}, credentials still cached.
    ("ended", "in_call", &["hang_up"]),
    // Failed{Relay} at the connect timeout, credentials dropped.
    ("failed", "connecting", &["timeout"]),
];

type Rows = &'static [(&'static str, &'static str)];

const TABLE: &[(&str, Rows)] = &[
    (
        "idle",
        &[
            ("search", "fetch_credentials >preparing"),
            ("skip", "fetch_credentials >preparing"),
            ("cancel", "(ignored)"),
            ("hang_up", "(ignored)"),
            ("mute", "muted"),
            ("unmute", "(ignored)"),
            ("ready", "(ignored)"),
            ("ready_short", "(ignored)"),
            ("credentials_failed", "(ignored)"),
            ("queued", "(ignored)"),
            ("matched", "end_match(m1) (ignored)"),
            ("matched_other", "end_match(m2) (ignored)"),
            ("search_expired", "(ignored)"),
            ("partner_left", "(ignored)"),
            ("partner_left_other", "(ignored)"),
            ("room_joined", "(ignored)"),
            ("gathered", "(ignored)"),
            ("peer_connected", "(ignored)"),
            ("peer_disconnected", "(ignored)"),
            ("peer_failed", "(ignored)"),
            ("ice_restarted", "(ignored)"),
            ("remote_bye", "(ignored)"),
            ("signalling_gave_up", "(ignored)"),
            ("backend_error", "(ignored)"),
            ("action_failed", "(ignored)"),
            ("timeout", ""),
        ],
    ),
    (
        "idle_cached",
        &[
            ("search", "join_queue >searching"),
            ("skip", "join_queue >searching"),
            ("cancel", "(ignored)"),
            ("hang_up", "(ignored)"),
            ("mute", "muted"),
            ("unmute", "(ignored)"),
            ("ready", "(ignored)"),
            ("ready_short", "(ignored)"),
            ("credentials_failed", "(ignored)"),
            ("queued", "(ignored)"),
            ("matched", "end_match(m1) (ignored)"),
            ("matched_other", "end_match(m2) (ignored)"),
            ("search_expired", "(ignored)"),
            ("partner_left", "(ignored)"),
            ("partner_left_other", "(ignored)"),
            ("room_joined", "(ignored)"),
            ("gathered", "(ignored)"),
            ("peer_connected", "(ignored)"),
            ("peer_disconnected", "(ignored)"),
            ("peer_failed", "(ignored)"),
            ("ice_restarted", "(ignored)"),
            ("remote_bye", "(ignored)"),
            ("signalling_gave_up", "(ignored)"),
            ("backend_error", "(ignored)"),
            ("action_failed", "(ignored)"),
            ("timeout", ""),
        ],
    ),
    (
        "idle_fetching",
        &[
            ("search", ">preparing"),
            ("skip", ">preparing"),
            ("cancel", "(ignored)"),
            ("hang_up", "(ignored)"),
            ("mute", "muted"),
            ("unmute", "(ignored)"),
            ("ready", ""),
            ("ready_short", ""),
            ("credentials_failed", ""),
            ("queued", "(ignored)"),
            ("matched", "end_match(m1) (ignored)"),
            ("matched_other", "end_match(m2) (ignored)"),
            ("search_expired", "(ignored)"),
            ("partner_left", "(ignored)"),
            ("partner_left_other", "(ignored)"),
            ("room_joined", "(ignored)"),
            ("gathered", "(ignored)"),
            ("peer_connected", "(ignored)"),
            ("peer_disconnected", "(ignored)"),
            ("peer_failed", "(ignored)"),
            ("ice_restarted", "(ignored)"),
            ("remote_bye", "(ignored)"),
            ("signalling_gave_up", "(ignored)"),
            ("backend_error", "(ignored)"),
            ("action_failed", "(ignored)"),
            ("timeout", ""),
        ],
    ),
    (
        "preparing",
        &[
            ("search", "(ignored)"),
            ("skip", "(ignored)"),
            ("cancel", ">idle"),
            ("hang_up", ">idle"),
            ("mute", "muted"),
            ("unmute", "(ignored)"),
            ("ready", "join_queue >searching"),
            ("ready_short", ">failed(credentials)"),
            ("credentials_failed", ">failed(auth)"),
            ("queued", "(ignored)"),
            ("matched", "end_match(m1) (ignored)"),
            ("matched_other", "end_match(m2) (ignored)"),
            ("search_expired", "(ignored)"),
            ("partner_left", "(ignored)"),
            ("partner_left_other", "(ignored)"),
            ("room_joined", "(ignored)"),
            ("gathered", "(ignored)"),
            ("peer_connected", "(ignored)"),
            ("peer_disconnected", "(ignored)"),
            ("peer_failed", "(ignored)"),
            ("ice_restarted", "(ignored)"),
            ("remote_bye", "(ignored)"),
            ("signalling_gave_up", ">failed(signalling_lost)"),
            ("backend_error", ">failed(backend_unreachable)"),
            ("action_failed", ">failed(internal)"),
            ("timeout", ">failed(credentials)"),
        ],
    ),
    (
        "joining",
        &[
            ("search", "(ignored)"),
            ("skip", "(ignored)"),
            ("cancel", "leave_queue >idle"),
            ("hang_up", "leave_queue >idle"),
            ("mute", "muted"),
            ("unmute", "(ignored)"),
            ("ready", "(ignored)"),
            ("ready_short", "(ignored)"),
            ("credentials_failed", "(ignored)"),
            ("queued", ""),
            ("matched", "join_room(room:m1) >matched"),
            ("matched_other", "join_room(room:m2) >matched"),
            ("search_expired", ">ended(nobody_found)"),
            ("partner_left", "(ignored)"),
            ("partner_left_other", "(ignored)"),
            ("room_joined", "(ignored)"),
            ("gathered", "(ignored)"),
            ("peer_connected", "(ignored)"),
            ("peer_disconnected", "(ignored)"),
            ("peer_failed", "(ignored)"),
            ("ice_restarted", "(ignored)"),
            ("remote_bye", "(ignored)"),
            ("signalling_gave_up", "leave_queue >failed(signalling_lost)"),
            ("backend_error", "leave_queue >failed(backend_unreachable)"),
            ("action_failed", "leave_queue >failed(internal)"),
            ("timeout", "leave_queue >failed(backend_unreachable)"),
        ],
    ),
    (
        "queued",
        &[
            ("search", "(ignored)"),
            ("skip", "(ignored)"),
            ("cancel", "leave_queue >idle"),
            ("hang_up", "leave_queue >idle"),
            ("mute", "muted"),
            ("unmute", "(ignored)"),
            ("ready", "(ignored)"),
            ("ready_short", "(ignored)"),
            ("credentials_failed", "(ignored)"),
            ("queued", "(ignored)"),
            ("matched", "join_room(room:m1) >matched"),
            ("matched_other", "join_room(room:m2) >matched"),
            ("search_expired", ">ended(nobody_found)"),
            ("partner_left", "(ignored)"),
            ("partner_left_other", "(ignored)"),
            ("room_joined", "(ignored)"),
            ("gathered", "(ignored)"),
            ("peer_connected", "(ignored)"),
            ("peer_disconnected", "(ignored)"),
            ("peer_failed", "(ignored)"),
            ("ice_restarted", "(ignored)"),
            ("remote_bye", "(ignored)"),
            ("signalling_gave_up", "leave_queue >failed(signalling_lost)"),
            ("backend_error", "leave_queue >failed(backend_unreachable)"),
            ("action_failed", "leave_queue >failed(internal)"),
            ("timeout", "leave_queue >ended(nobody_found)"),
        ],
    ),
    (
        "matched",
        &[
            ("search", "(ignored)"),
            (
                "skip",
                "leave_room end_match(m1) >ended(skipped) join_queue >searching",
            ),
            ("cancel", "leave_room end_match(m1) >idle"),
            ("hang_up", "leave_room end_match(m1) >ended(you_left)"),
            ("mute", "muted"),
            ("unmute", "(ignored)"),
            ("ready", "(ignored)"),
            ("ready_short", "(ignored)"),
            ("credentials_failed", "(ignored)"),
            ("queued", "(ignored)"),
            ("matched", "(ignored)"),
            ("matched_other", "end_match(m2) (ignored)"),
            ("search_expired", "(ignored)"),
            ("partner_left", "leave_room >ended(stranger_left)"),
            ("partner_left_other", "(ignored)"),
            ("room_joined", "start_peer(offerer) >connecting"),
            ("gathered", "(ignored)"),
            ("peer_connected", "(ignored)"),
            ("peer_disconnected", "(ignored)"),
            ("peer_failed", "(ignored)"),
            ("ice_restarted", "(ignored)"),
            (
                "remote_bye",
                "leave_room end_match(m1) >ended(stranger_left)",
            ),
            (
                "signalling_gave_up",
                "leave_room end_match(m1) >failed(signalling_lost)",
            ),
            ("backend_error", "(ignored)"),
            (
                "action_failed",
                "leave_room end_match(m1) >failed(internal)",
            ),
            (
                "timeout",
                "leave_room end_match(m1) >failed(signalling_lost)",
            ),
        ],
    ),
    (
        "connecting",
        &[
            ("search", "(ignored)"),
            (
                "skip",
                "send_bye close_peer leave_room end_match(m1) >ended(skipped) join_queue >searching",
            ),
            (
                "cancel",
                "send_bye close_peer leave_room end_match(m1) >idle",
            ),
            (
                "hang_up",
                "send_bye close_peer leave_room end_match(m1) >ended(you_left)",
            ),
            ("mute", "muted"),
            ("unmute", "(ignored)"),
            ("ready", "(ignored)"),
            ("ready_short", "(ignored)"),
            ("credentials_failed", "(ignored)"),
            ("queued", "(ignored)"),
            ("matched", "(ignored)"),
            ("matched_other", "end_match(m2) (ignored)"),
            ("search_expired", "(ignored)"),
            (
                "partner_left",
                "close_peer leave_room >ended(stranger_left)",
            ),
            ("partner_left_other", "(ignored)"),
            ("room_joined", "(ignored)"),
            ("gathered", ""),
            ("peer_connected", ">in_call"),
            ("peer_disconnected", "(ignored)"),
            (
                "peer_failed",
                "send_bye close_peer leave_room end_match(m1) >failed(relay)",
            ),
            ("ice_restarted", "(ignored)"),
            (
                "remote_bye",
                "close_peer leave_room end_match(m1) >ended(stranger_left)",
            ),
            (
                "signalling_gave_up",
                "close_peer leave_room end_match(m1) >failed(signalling_lost)",
            ),
            ("backend_error", "(ignored)"),
            (
                "action_failed",
                "send_bye close_peer leave_room end_match(m1) >failed(internal)",
            ),
            (
                "timeout",
                "send_bye close_peer leave_room end_match(m1) >failed(relay)",
            ),
        ],
    ),
    (
        "gathered",
        &[
            ("search", "(ignored)"),
            (
                "skip",
                "send_bye close_peer leave_room end_match(m1) >ended(skipped) join_queue >searching",
            ),
            (
                "cancel",
                "send_bye close_peer leave_room end_match(m1) >idle",
            ),
            (
                "hang_up",
                "send_bye close_peer leave_room end_match(m1) >ended(you_left)",
            ),
            ("mute", "muted"),
            ("unmute", "(ignored)"),
            ("ready", "(ignored)"),
            ("ready_short", "(ignored)"),
            ("credentials_failed", "(ignored)"),
            ("queued", "(ignored)"),
            ("matched", "(ignored)"),
            ("matched_other", "end_match(m2) (ignored)"),
            ("search_expired", "(ignored)"),
            (
                "partner_left",
                "close_peer leave_room >ended(stranger_left)",
            ),
            ("partner_left_other", "(ignored)"),
            ("room_joined", "(ignored)"),
            ("gathered", "(ignored)"),
            ("peer_connected", ">in_call"),
            ("peer_disconnected", "(ignored)"),
            (
                "peer_failed",
                "send_bye close_peer leave_room end_match(m1) >ended(stranger_never_answered)",
            ),
            ("ice_restarted", "(ignored)"),
            (
                "remote_bye",
                "close_peer leave_room end_match(m1) >ended(stranger_left)",
            ),
            (
                "signalling_gave_up",
                "close_peer leave_room end_match(m1) >failed(signalling_lost)",
            ),
            ("backend_error", "(ignored)"),
            (
                "action_failed",
                "send_bye close_peer leave_room end_match(m1) >failed(internal)",
            ),
            (
                "timeout",
                "send_bye close_peer leave_room end_match(m1) >ended(stranger_never_answered)",
            ),
        ],
    ),
    (
        "in_call",
        &[
            ("search", "(ignored)"),
            (
                "skip",
                "send_bye close_peer leave_room end_match(m1) >ended(skipped) join_queue >searching",
            ),
            ("cancel", "(ignored)"),
            (
                "hang_up",
                "send_bye close_peer leave_room end_match(m1) >ended(you_left)",
            ),
            ("mute", "muted"),
            ("unmute", "(ignored)"),
            ("ready", "(ignored)"),
            ("ready_short", "(ignored)"),
            ("credentials_failed", "(ignored)"),
            ("queued", "(ignored)"),
            ("matched", "(ignored)"),
            ("matched_other", "end_match(m2) (ignored)"),
            ("search_expired", "(ignored)"),
            (
                "partner_left",
                "close_peer leave_room >ended(stranger_left)",
            ),
            ("partner_left_other", "(ignored)"),
            ("room_joined", "(ignored)"),
            ("gathered", "(ignored)"),
            ("peer_connected", "(ignored)"),
            ("peer_disconnected", ""),
            ("peer_failed", "restart_ice >reconnecting"),
            ("ice_restarted", "(ignored)"),
            (
                "remote_bye",
                "close_peer leave_room end_match(m1) >ended(stranger_left)",
            ),
            (
                "signalling_gave_up",
                "close_peer leave_room end_match(m1) >failed(signalling_lost)",
            ),
            ("backend_error", "(ignored)"),
            (
                "action_failed",
                "send_bye close_peer leave_room end_match(m1) >failed(internal)",
            ),
            ("timeout", ""),
        ],
    ),
    (
        "disconnected",
        &[
            ("search", "(ignored)"),
            (
                "skip",
                "send_bye close_peer leave_room end_match(m1) >ended(skipped) join_queue >searching",
            ),
            ("cancel", "(ignored)"),
            (
                "hang_up",
                "send_bye close_peer leave_room end_match(m1) >ended(you_left)",
            ),
            ("mute", "muted"),
            ("unmute", "(ignored)"),
            ("ready", "(ignored)"),
            ("ready_short", "(ignored)"),
            ("credentials_failed", "(ignored)"),
            ("queued", "(ignored)"),
            ("matched", "(ignored)"),
            ("matched_other", "end_match(m2) (ignored)"),
            ("search_expired", "(ignored)"),
            (
                "partner_left",
                "close_peer leave_room >ended(stranger_left)",
            ),
            ("partner_left_other", "(ignored)"),
            ("room_joined", "(ignored)"),
            ("gathered", "(ignored)"),
            ("peer_connected", ""),
            ("peer_disconnected", "(ignored)"),
            ("peer_failed", "restart_ice >reconnecting"),
            ("ice_restarted", "(ignored)"),
            (
                "remote_bye",
                "close_peer leave_room end_match(m1) >ended(stranger_left)",
            ),
            (
                "signalling_gave_up",
                "close_peer leave_room end_match(m1) >failed(signalling_lost)",
            ),
            ("backend_error", "(ignored)"),
            (
                "action_failed",
                "send_bye close_peer leave_room end_match(m1) >failed(internal)",
            ),
            ("timeout", "restart_ice >reconnecting"),
        ],
    ),
    (
        "reconnecting",
        &[
            ("search", "(ignored)"),
            (
                "skip",
                "send_bye close_peer leave_room end_match(m1) >ended(skipped) join_queue >searching",
            ),
            ("cancel", "(ignored)"),
            (
                "hang_up",
                "send_bye close_peer leave_room end_match(m1) >ended(you_left)",
            ),
            ("mute", "muted"),
            ("unmute", "(ignored)"),
            ("ready", "(ignored)"),
            ("ready_short", "(ignored)"),
            ("credentials_failed", "(ignored)"),
            ("queued", "(ignored)"),
            ("matched", "(ignored)"),
            ("matched_other", "end_match(m2) (ignored)"),
            ("search_expired", "(ignored)"),
            (
                "partner_left",
                "close_peer leave_room >ended(stranger_left)",
            ),
            ("partner_left_other", "(ignored)"),
            ("room_joined", "(ignored)"),
            ("gathered", "(ignored)"),
            ("peer_connected", ">in_call"),
            ("peer_disconnected", "(ignored)"),
            ("peer_failed", "(ignored)"),
            ("ice_restarted", ">in_call"),
            (
                "remote_bye",
                "close_peer leave_room end_match(m1) >ended(stranger_left)",
            ),
            (
                "signalling_gave_up",
                "close_peer leave_room end_match(m1) >failed(signalling_lost)",
            ),
            ("backend_error", "(ignored)"),
            (
                "action_failed",
                "send_bye close_peer leave_room end_match(m1) >failed(internal)",
            ),
            (
                "timeout",
                "send_bye close_peer leave_room end_match(m1) >ended(connection_lost)",
            ),
        ],
    ),
    (
        "in_call_answerer",
        &[
            ("search", "(ignored)"),
            (
                "skip",
                "send_bye close_peer leave_room end_match(m1) >ended(skipped) join_queue >searching",
            ),
            ("cancel", "(ignored)"),
            (
                "hang_up",
                "send_bye close_peer leave_room end_match(m1) >ended(you_left)",
            ),
            ("mute", "muted"),
            ("unmute", "(ignored)"),
            ("ready", "(ignored)"),
            ("ready_short", "(ignored)"),
            ("credentials_failed", "(ignored)"),
            ("queued", "(ignored)"),
            ("matched", "(ignored)"),
            ("matched_other", "end_match(m2) (ignored)"),
            ("search_expired", "(ignored)"),
            (
                "partner_left",
                "close_peer leave_room >ended(stranger_left)",
            ),
            ("partner_left_other", "(ignored)"),
            ("room_joined", "(ignored)"),
            ("gathered", "(ignored)"),
            ("peer_connected", "(ignored)"),
            ("peer_disconnected", ""),
            ("peer_failed", ">reconnecting"),
            ("ice_restarted", "(ignored)"),
            (
                "remote_bye",
                "close_peer leave_room end_match(m1) >ended(stranger_left)",
            ),
            (
                "signalling_gave_up",
                "close_peer leave_room end_match(m1) >failed(signalling_lost)",
            ),
            ("backend_error", "(ignored)"),
            (
                "action_failed",
                "send_bye close_peer leave_room end_match(m1) >failed(internal)",
            ),
            ("timeout", ""),
        ],
    ),
    (
        "disconnected_answerer",
        &[
            ("search", "(ignored)"),
            (
                "skip",
                "send_bye close_peer leave_room end_match(m1) >ended(skipped) join_queue >searching",
            ),
            ("cancel", "(ignored)"),
            (
                "hang_up",
                "send_bye close_peer leave_room end_match(m1) >ended(you_left)",
            ),
            ("mute", "muted"),
            ("unmute", "(ignored)"),
            ("ready", "(ignored)"),
            ("ready_short", "(ignored)"),
            ("credentials_failed", "(ignored)"),
            ("queued", "(ignored)"),
            ("matched", "(ignored)"),
            ("matched_other", "end_match(m2) (ignored)"),
            ("search_expired", "(ignored)"),
            (
                "partner_left",
                "close_peer leave_room >ended(stranger_left)",
            ),
            ("partner_left_other", "(ignored)"),
            ("room_joined", "(ignored)"),
            ("gathered", "(ignored)"),
            ("peer_connected", ""),
            ("peer_disconnected", "(ignored)"),
            ("peer_failed", ">reconnecting"),
            ("ice_restarted", "(ignored)"),
            (
                "remote_bye",
                "close_peer leave_room end_match(m1) >ended(stranger_left)",
            ),
            (
                "signalling_gave_up",
                "close_peer leave_room end_match(m1) >failed(signalling_lost)",
            ),
            ("backend_error", "(ignored)"),
            (
                "action_failed",
                "send_bye close_peer leave_room end_match(m1) >failed(internal)",
            ),
            ("timeout", ">reconnecting"),
        ],
    ),
    (
        "ended",
        &[
            ("search", "join_queue >searching"),
            ("skip", "join_queue >searching"),
            ("cancel", "(ignored)"),
            ("hang_up", "(ignored)"),
            ("mute", "muted"),
            ("unmute", "(ignored)"),
            ("ready", "(ignored)"),
            ("ready_short", "(ignored)"),
            ("credentials_failed", "(ignored)"),
            ("queued", "(ignored)"),
            ("matched", "end_match(m1) (ignored)"),
            ("matched_other", "end_match(m2) (ignored)"),
            ("search_expired", "(ignored)"),
            ("partner_left", "(ignored)"),
            ("partner_left_other", "(ignored)"),
            ("room_joined", "(ignored)"),
            ("gathered", "(ignored)"),
            ("peer_connected", "(ignored)"),
            ("peer_disconnected", "(ignored)"),
            ("peer_failed", "(ignored)"),
            ("ice_restarted", "(ignored)"),
            ("remote_bye", "(ignored)"),
            ("signalling_gave_up", "(ignored)"),
            ("backend_error", "(ignored)"),
            ("action_failed", "(ignored)"),
            ("timeout", ""),
        ],
    ),
    (
        "failed",
        &[
            ("search", "fetch_credentials >preparing"),
            ("skip", "fetch_credentials >preparing"),
            ("cancel", "(ignored)"),
            ("hang_up", "(ignored)"),
            ("mute", "muted"),
            ("unmute", "(ignored)"),
            ("ready", "(ignored)"),
            ("ready_short", "(ignored)"),
            ("credentials_failed", "(ignored)"),
            ("queued", "(ignored)"),
            ("matched", "end_match(m1) (ignored)"),
            ("matched_other", "end_match(m2) (ignored)"),
            ("search_expired", "(ignored)"),
            ("partner_left", "(ignored)"),
            ("partner_left_other", "(ignored)"),
            ("room_joined", "(ignored)"),
            ("gathered", "(ignored)"),
            ("peer_connected", "(ignored)"),
            ("peer_disconnected", "(ignored)"),
            ("peer_failed", "(ignored)"),
            ("ice_restarted", "(ignored)"),
            ("remote_bye", "(ignored)"),
            ("signalling_gave_up", "(ignored)"),
            ("backend_error", "(ignored)"),
            ("action_failed", "(ignored)"),
            ("timeout", ""),
        ],
    ),
];

fn setup_inputs(name: &str) -> Vec<&'static str> {
    let (_, base, inputs) = SETUPS
        .iter()
        .find(|(setup, _, _)| *setup == name)
        .unwrap_or_else(|| panic!("no setup {name:?}"));
    let mut all = if base.is_empty() {
        Vec::new()
    } else {
        setup_inputs(base)
    };
    all.extend_from_slice(inputs);
    all
}

fn reach(name: &str) -> Sim {
    let mut sim = Sim::new();
    for input in setup_inputs(name) {
        sim.run(input);
    }
    sim
}

#[test]
fn the_table_covers_every_state_and_input_once() {
    let states: Vec<&str> = TABLE.iter().map(|(state, _)| *state).collect();
    let setups: Vec<&str> = SETUPS.iter().map(|(setup, _, _)| *setup).collect();
    assert_eq!(states, setups);
    for (state, rows) in TABLE {
        let inputs: Vec<&str> = rows.iter().map(|(input, _)| *input).collect();
        assert_eq!(inputs, INPUTS, "the rows of {state}");
    }
}

#[test]
fn setups_reach_the_state_they_name() {
    let want = [
        ("idle", "idle"),
        ("idle_cached", "idle"),
        ("idle_fetching", "idle"),
        ("preparing", "preparing"),
        ("joining", "searching"),
        ("queued", "searching"),
        ("matched", "matched"),
        ("connecting", "connecting"),
        ("gathered", "connecting"),
        ("in_call", "in_call"),
        ("disconnected", "in_call"),
        ("reconnecting", "reconnecting"),
        ("in_call_answerer", "in_call"),
        ("disconnected_answerer", "in_call"),
        ("ended", "ended(you_left)"),
        ("failed", "failed(relay)"),
    ];
    for (setup, state) in want {
        let sim = reach(setup);
        assert_eq!(super::show_state(sim.call.state()), state, "{setup}");
        assert_eq!(sim.call.ignored_inputs(), 0, "{setup} ignored an input");
    }
}

#[test]
fn every_transition() {
    let mut failures = Vec::new();
    for (state, rows) in TABLE {
        for (input, want) in *rows {
            let mut sim = reach(state);
            let got = sim.run(input);
            if got != *want {
                failures.push(format!("{state} × {input}:\n  want {want}\n  got  {got}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
