//! Properties of the call machine under random sequences of commands,
//! events and waits in virtual time, mixed with a cooperative driver's
//! inputs so that calls really happen. After every step, the outputs are
//! checked against the promises of the module docs: side effects pair up
//! (every `StartPeer` is closed before the next, rooms and the queue are
//! left), `JoinQueue` only ever happens with credentials valid at that
//! moment, `Ended` and `Failed` behave as `Idle` until the next search, and
//! the run-loop contract holds. Nothing ever panics.

use std::time::{Duration, Instant};

use proptest::collection::vec;
use proptest::prelude::*;
use voicemeet_proto::Redacted;
use voicemeet_proto::call::{
    Action, CREDENTIALS_MIN_REMAINING, Call, CallState, Command, ErrorKind, Event, Output,
};
use voicemeet_proto::matchmaking::{self, MatchId, Role};

#[derive(Debug, Clone)]
enum Op {
    Command(Command),
    /// Any event; match ids are small numbers, so they collide with the
    /// current match now and then.
    Event(Ev),
    /// Advance virtual time by this many milliseconds.
    Wait(u64),
    /// Advance to the pending deadline.
    ToDeadline,
    /// What a working backend and peer would do next in this state; the
    /// number picks among the plausible inputs.
    Cooperate(usize),
}

#[derive(Debug, Clone)]
enum Ev {
    CredentialsReady {
        ttl_secs: u64,
    },
    CredentialsFailed(ErrorKind),
    Queued,
    Matched {
        id: u128,
        role: Role,
    },
    SearchExpired,
    /// Of the current match, or of match `id` when there is none.
    PartnerLeft {
        id: u128,
    },
    RoomJoined,
    LocalCandidatesGathered,
    PeerConnected,
    PeerDisconnected,
    PeerFailed,
    IceRestartSucceeded,
    RemoteBye,
    SignallingGaveUp,
    BackendError(ErrorKind),
    ActionFailed(ErrorKind),
}

fn error_kind() -> impl Strategy<Value = ErrorKind> {
    prop_oneof![
        Just(ErrorKind::Credentials),
        Just(ErrorKind::BackendUnreachable),
        Just(ErrorKind::Auth),
        Just(ErrorKind::Relay),
        Just(ErrorKind::SignallingLost),
        Just(ErrorKind::Internal),
    ]
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Offerer), Just(Role::Answerer)]
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        3 => Just(Command::Search),
        2 => Just(Command::Skip),
        1 => Just(Command::Cancel),
        1 => Just(Command::HangUp),
        1 => any::<bool>().prop_map(Command::SetMuted),
    ]
}

fn event() -> impl Strategy<Value = Ev> {
    prop_oneof![
        // From already expired to a day.
        (0..86_400_u64).prop_map(|ttl_secs| Ev::CredentialsReady { ttl_secs }),
        error_kind().prop_map(Ev::CredentialsFailed),
        Just(Ev::Queued),
        (1..4_u128, role()).prop_map(|(id, role)| Ev::Matched { id, role }),
        Just(Ev::SearchExpired),
        (1..4_u128).prop_map(|id| Ev::PartnerLeft { id }),
        Just(Ev::RoomJoined),
        Just(Ev::LocalCandidatesGathered),
        Just(Ev::PeerConnected),
        Just(Ev::PeerDisconnected),
        Just(Ev::PeerFailed),
        Just(Ev::IceRestartSucceeded),
        Just(Ev::RemoteBye),
        Just(Ev::SignallingGaveUp),
        error_kind().prop_map(Ev::BackendError),
        error_kind().prop_map(Ev::ActionFailed),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => command().prop_map(Op::Command),
        6 => event().prop_map(Op::Event),
        2 => (0..20_000_u64).prop_map(Op::Wait),
        1 => (0..7_200_000_u64).prop_map(Op::Wait),
        2 => Just(Op::ToDeadline),
        12 => any::<usize>().prop_map(Op::Cooperate),
    ]
}

#[expect(
    clippy::disallowed_methods,
    reason = "an arbitrary origin for virtual time"
)]
fn origin() -> Instant {
    Instant::now()
}

/// What the outputs so far say about the world, checked as they come.
struct Model {
    now: Instant,
    /// The last deadline handed out, for `ToDeadline`.
    deadline: Option<Instant>,
    /// Credentials the machine was handed in answer to its fetch: we only
    /// know it fetched when it asked.
    fetch_outstanding: bool,
    credentials: Option<Instant>,
    queued: bool,
    in_room: bool,
    peer_open: bool,
    muted: bool,
    /// The state the outputs last reported.
    reported: CallState,
    next_match: u128,
}

fn is_resting(state: CallState) -> bool {
    !state.is_active()
}

impl Model {
    fn new(now: Instant) -> Self {
        Self {
            now,
            deadline: None,
            fetch_outstanding: false,
            credentials: None,
            queued: false,
            in_room: false,
            peer_open: false,
            muted: false,
            reported: CallState::Idle,
            next_match: 100,
        }
    }

    /// The input a working driver would feed next.
    fn cooperate(&mut self, call: &Call, pick: usize) -> Op {
        let choose = |options: &[Op]| options[pick % options.len()].clone();
        match call.state() {
            CallState::Idle | CallState::Ended { .. } | CallState::Failed { .. } => {
                Op::Command(Command::Search)
            }
            CallState::Preparing => Op::Event(Ev::CredentialsReady { ttl_secs: 3600 }),
            CallState::Searching => {
                self.next_match += 1;
                let role = if (pick / 2).is_multiple_of(2) {
                    Role::Offerer
                } else {
                    Role::Answerer
                };
                choose(&[
                    Op::Event(Ev::Queued),
                    Op::Event(Ev::Matched {
                        id: self.next_match,
                        role,
                    }),
                ])
            }
            CallState::Matched => Op::Event(Ev::RoomJoined),
            CallState::Connecting => choose(&[
                Op::Event(Ev::LocalCandidatesGathered),
                Op::Event(Ev::PeerConnected),
            ]),
            CallState::InCall => choose(&[
                Op::Wait(1_000),
                Op::Event(Ev::PeerDisconnected),
                Op::Event(Ev::PeerConnected),
                Op::Event(Ev::PeerFailed),
                Op::Command(Command::Skip),
                Op::Event(Ev::RemoteBye),
            ]),
            CallState::Reconnecting => choose(&[
                Op::Event(Ev::IceRestartSucceeded),
                Op::Event(Ev::PeerConnected),
                Op::Wait(1_000),
            ]),
        }
    }

    fn to_event(&self, call: &Call, ev: &Ev) -> Event {
        match ev {
            Ev::CredentialsReady { ttl_secs } => Event::CredentialsReady {
                expires_at: self.now + Duration::from_secs(*ttl_secs),
            },
            Ev::CredentialsFailed(kind) => Event::CredentialsFailed(*kind),
            Ev::Queued => Event::Queued,
            Ev::Matched { id, role } => Event::Matched {
                match_id: MatchId::from_u128(*id),
                role: *role,
                topic: Redacted::new(format!("room:{id}")),
            },
            Ev::SearchExpired => Event::SearchExpired,
            Ev::PartnerLeft { id } => Event::PartnerLeft {
                match_id: call.match_id().unwrap_or(MatchId::from_u128(*id)),
                reason: matchmaking::EndReason::Hangup,
            },
            Ev::RoomJoined => Event::RoomJoined,
            Ev::LocalCandidatesGathered => Event::LocalCandidatesGathered,
            Ev::PeerConnected => Event::PeerConnected,
            Ev::PeerDisconnected => Event::PeerDisconnected,
            Ev::PeerFailed => Event::PeerFailed,
            Ev::IceRestartSucceeded => Event::IceRestartSucceeded,
            Ev::RemoteBye => Event::RemoteBye,
            Ev::SignallingGaveUp => Event::SignallingGaveUp,
            Ev::BackendError(kind) => Event::BackendError(*kind),
            Ev::ActionFailed(kind) => Event::ActionFailed(*kind),
        }
    }

    /// Applies one op and checks everything it produced.
    fn step(&mut self, call: &mut Call, op: Op) -> Result<(), TestCaseError> {
        let op = match op {
            Op::Cooperate(pick) => self.cooperate(call, pick),
            op => op,
        };
        let before = call.state();
        let ignored_before = call.ignored_inputs();
        let mut starts_search = false;
        match &op {
            Op::Command(command) => {
                starts_search = matches!(command, Command::Search | Command::Skip);
                call.handle_command(*command, self.now);
            }
            Op::Event(ev) => {
                let event = self.to_event(call, ev);
                match &event {
                    Event::CredentialsReady { expires_at } if self.fetch_outstanding => {
                        self.fetch_outstanding = false;
                        self.credentials = Some(*expires_at);
                    }
                    Event::CredentialsFailed(_) => self.fetch_outstanding = false,
                    // The matchmaker took us out of the queue itself.
                    Event::Matched { .. } | Event::SearchExpired
                        if before == CallState::Searching =>
                    {
                        self.queued = false;
                    }
                    _ => {}
                }
                call.handle_event(event, self.now);
            }
            Op::Wait(ms) => {
                self.now += Duration::from_millis(*ms);
                call.handle_timeout(self.now);
            }
            Op::ToDeadline => {
                if let Some(at) = self.deadline {
                    self.now = self.now.max(at);
                }
                // Left to poll_output, which must fire what is due.
            }
            Op::Cooperate(_) => unreachable!("resolved above"),
        }
        prop_assert!(call.ignored_inputs() >= ignored_before);

        let mut outputs = Vec::new();
        loop {
            match call.poll_output(self.now) {
                Some(Output::Timeout(at)) => {
                    prop_assert!(at > self.now, "deadline {at:?} is due but was handed out");
                    self.deadline = Some(at);
                    break;
                }
                Some(out) => outputs.push(out),
                None => {
                    self.deadline = None;
                    break;
                }
            }
            prop_assert!(outputs.len() < 32, "outputs never end: {outputs:?}");
        }

        // Ended, Failed and Idle ask for nothing until the next search, but
        // ending a match that comes too late.
        if is_resting(before) && !starts_search {
            for out in &outputs {
                prop_assert!(
                    matches!(
                        out,
                        Output::Action(Action::EndMatch { .. }) | Output::MuteChanged(_)
                    ),
                    "{out:?} from {before:?} after {op:?}"
                );
            }
        }

        for out in &outputs {
            self.check_output(call, out)?;
        }

        prop_assert_eq!(call.state(), self.reported, "the state reported last");
        prop_assert_eq!(call.is_muted(), self.muted);
        let state = call.state();
        prop_assert_eq!(
            self.queued,
            state == CallState::Searching,
            "queued in {:?}",
            state
        );
        let (room, peer) = match state {
            CallState::Idle
            | CallState::Preparing
            | CallState::Searching
            | CallState::Ended { .. }
            | CallState::Failed { .. } => (false, false),
            CallState::Matched => (true, false),
            CallState::Connecting | CallState::InCall | CallState::Reconnecting => (true, true),
        };
        prop_assert_eq!(
            (self.in_room, self.peer_open),
            (room, peer),
            "in {:?}",
            state
        );
        prop_assert_eq!(call.match_id().is_some(), room, "a match only with a room");
        Ok(())
    }

    fn check_output(&mut self, call: &Call, out: &Output) -> Result<(), TestCaseError> {
        match out {
            Output::Action(action) => match action {
                Action::FetchCredentials => self.fetch_outstanding = true,
                Action::JoinQueue => {
                    let left = self
                        .credentials
                        .map(|at| at.saturating_duration_since(self.now));
                    prop_assert!(
                        left.is_some_and(|left| left > CREDENTIALS_MIN_REMAINING),
                        "JoinQueue with credentials valid for {left:?}"
                    );
                    prop_assert!(!self.queued, "JoinQueue twice");
                    self.queued = true;
                }
                Action::LeaveQueue => {
                    prop_assert!(self.queued, "LeaveQueue while not queued");
                    self.queued = false;
                }
                Action::JoinRoom { .. } => {
                    prop_assert!(!self.in_room, "JoinRoom twice");
                    self.in_room = true;
                }
                Action::LeaveRoom => {
                    prop_assert!(self.in_room, "LeaveRoom while in no room");
                    prop_assert!(!self.peer_open, "the room is left before the peer closes");
                    self.in_room = false;
                }
                Action::StartPeer { role } => {
                    prop_assert!(!self.peer_open, "StartPeer before the last one was closed");
                    prop_assert_eq!(Some(*role), call.role());
                    self.peer_open = true;
                }
                Action::ClosePeer => {
                    prop_assert!(self.peer_open, "ClosePeer without a peer");
                    self.peer_open = false;
                }
                Action::SendBye => {
                    prop_assert!(self.peer_open && self.in_room, "bye outside a room");
                }
                Action::RestartIce => {
                    prop_assert!(self.peer_open, "RestartIce without a peer");
                    prop_assert_eq!(
                        call.role(),
                        Some(Role::Offerer),
                        "only the offerer restarts"
                    );
                }
                Action::EndMatch { .. } => {}
            },
            Output::StateChanged(state) => {
                prop_assert_ne!(*state, self.reported, "a change to the same state");
                self.reported = *state;
            }
            Output::MuteChanged(muted) => {
                prop_assert_ne!(*muted, self.muted);
                self.muted = *muted;
            }
            Output::Timeout(_) => unreachable!("drained above"),
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_inputs_keep_every_promise(ops in vec(op(), 1..250)) {
        let mut call = Call::new();
        let mut model = Model::new(origin());
        for op in ops {
            model.step(&mut call, op)?;
        }
    }
}

/// The inputs the property draws reach every state: a sanity check that it
/// explores calls, not just searches. The same mix, from a fixed sequence.
#[test]
fn the_input_mix_reaches_every_state() {
    let mut call = Call::new();
    let mut model = Model::new(origin());
    let mut seen = vec![std::mem::discriminant(&call.state())];
    // A linear congruential sequence: deterministic, and varied enough.
    let mut x: u64 = 1;
    for _ in 0..2_000 {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let pick = usize::try_from(x >> 33).unwrap_or_default();
        let op = match pick % 10 {
            0 => Op::ToDeadline,
            1 => Op::Event(Ev::PeerFailed),
            _ => Op::Cooperate(pick / 10),
        };
        model.step(&mut call, op).unwrap_or_else(|e| panic!("{e}"));
        let kind = std::mem::discriminant(&call.state());
        if !seen.contains(&kind) {
            seen.push(kind);
        }
    }
    assert_eq!(seen.len(), 9, "states reached: {seen:?}");
}
