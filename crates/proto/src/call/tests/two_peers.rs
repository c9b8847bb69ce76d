//! Two calls against the real matchmaker, a fake room and a fake relay, in
//! virtual time. [`World::progress`] carries each side's actions to the
//! matchmaker and to the other side, and their answers back, until both
//! sides are quiet.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::{HOUR, origin};
use crate::Redacted;
use crate::call::{
    Action, CONNECT_TIMEOUT, Call, CallState, Command, EndReason, ErrorKind, Event, Output,
    RESTART_DELAY,
};
use crate::matchmaking::{JoinStatus, MatchId, Matchmaker, PartnerLeft, Role, UserId};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    A,
    B,
}

use Side::{A, B};

impl Side {
    fn other(self) -> Self {
        match self {
            A => B,
            B => A,
        }
    }

    fn index(self) -> usize {
        match self {
            A => 0,
            B => 1,
        }
    }
}

struct Peer {
    call: Call,
    user: UserId,
    /// Events on their way to this side, in order.
    inbox: VecDeque<Event>,
    /// The room topic this side is in.
    room: Option<String>,
    peer_open: bool,
    /// Every state this side reported, in order.
    states: Vec<CallState>,
    actions: Vec<Action>,
    /// Hangs for good when told of a match: an app that froze.
    hang_on_match: bool,
    hung: bool,
}

struct World {
    start: Instant,
    now: Instant,
    mm: Matchmaker,
    last_id: u128,
    sides: [Peer; 2],
    relay_up: bool,
}

impl World {
    fn new() -> Self {
        let start = origin();
        let peer = |name: &str| Peer {
            call: Call::new(),
            user: UserId::from(name),
            inbox: VecDeque::new(),
            room: None,
            peer_open: false,
            states: Vec::new(),
            actions: Vec::new(),
            hang_on_match: false,
            hung: false,
        };
        Self {
            start,
            now: start,
            mm: Matchmaker::new(10 * 60 * 1000),
            last_id: 0,
            sides: [peer("a"), peer("b")],
            relay_up: true,
        }
    }

    fn side(&self, side: Side) -> &Peer {
        &self.sides[side.index()]
    }

    fn side_mut(&mut self, side: Side) -> &mut Peer {
        &mut self.sides[side.index()]
    }

    fn side_of(&self, user: &UserId) -> Side {
        if *user == self.side(A).user { A } else { B }
    }

    fn state(&self, side: Side) -> CallState {
        self.side(side).call.state()
    }

    fn tell(&mut self, side: Side, event: Event) {
        self.side_mut(side).inbox.push_back(event);
    }

    fn tell_partner_left(&mut self, left: PartnerLeft) {
        let side = self.side_of(&left.notify);
        self.tell(
            side,
            Event::PartnerLeft {
                match_id: left.match_id,
                reason: left.reason,
            },
        );
    }

    fn command(&mut self, side: Side, command: Command) {
        let now = self.now;
        self.side_mut(side).call.handle_command(command, now);
        self.progress();
    }

    /// Moves virtual time on and fires what is due on both sides.
    fn advance(&mut self, by: Duration) {
        self.now += by;
        for side in [A, B] {
            let now = self.now;
            let peer = self.side_mut(side);
            if !peer.hung {
                peer.call.handle_timeout(now);
            }
        }
        self.progress();
    }

    /// Runs both sides until neither has anything left to do.
    fn progress(&mut self) {
        // Bounded: a side that never settles is a bug.
        for _ in 0..1000 {
            let mut busy = false;
            for side in [A, B] {
                let now = self.now;
                while let Some(event) = self.side_mut(side).inbox.pop_front() {
                    let peer = self.side_mut(side);
                    if peer.hung {
                        continue;
                    }
                    if peer.hang_on_match && matches!(event, Event::Matched { .. }) {
                        peer.hung = true;
                        continue;
                    }
                    busy = true;
                    peer.call.handle_event(event, now);
                }
                if self.side(side).hung {
                    continue;
                }
                loop {
                    match self.side_mut(side).call.poll_output(now) {
                        Some(Output::Action(action)) => {
                            busy = true;
                            self.side_mut(side).actions.push(action.clone());
                            self.carry_out(side, action);
                        }
                        Some(Output::StateChanged(state)) => self.side_mut(side).states.push(state),
                        Some(Output::MuteChanged(_)) => {}
                        Some(Output::Timeout(_)) | None => break,
                    }
                }
            }
            if !busy {
                return;
            }
        }
        panic!("the two sides never settled");
    }

    fn same_room(&self) -> bool {
        self.side(A).room.is_some() && self.side(A).room == self.side(B).room
    }

    fn connected(&self) -> bool {
        self.relay_up && self.same_room() && self.side(A).peer_open && self.side(B).peer_open
    }

    fn carry_out(&mut self, side: Side, action: Action) {
        let other = side.other();
        match action {
            Action::FetchCredentials => self.tell(
                side,
                Event::CredentialsReady {
                    expires_at: self.now + HOUR,
                },
            ),
            Action::JoinQueue => {
                let now_ms = u64::try_from((self.now - self.start).as_millis()).unwrap_or(u64::MAX);
                let user = self.side(side).user.clone();
                let last_id = &mut self.last_id;
                let mut ids = || {
                    *last_id += 1;
                    MatchId::from_u128(*last_id)
                };
                let outcome = self.mm.handle_join(user, now_ms, &mut ids);
                if let Some(left) = outcome.ended {
                    self.tell_partner_left(left);
                }
                match outcome.status {
                    JoinStatus::AlreadyWaiting | JoinStatus::Queued => {
                        self.tell(side, Event::Queued)
                    }
                    JoinStatus::Matched(m) => {
                        for user in m.users() {
                            let role = m.role_of(user).unwrap_or(Role::Answerer);
                            let to = self.side_of(user);
                            self.tell(
                                to,
                                Event::Matched {
                                    match_id: m.id,
                                    role,
                                    topic: Redacted::new(format!("room:{}", m.id)),
                                },
                            );
                        }
                    }
                }
            }
            Action::LeaveQueue => {
                let user = self.side(side).user.clone();
                self.mm.handle_leave(&user);
            }
            Action::JoinRoom { topic } => {
                self.side_mut(side).room = Some(topic.into_inner());
                self.tell(side, Event::RoomJoined);
            }
            Action::LeaveRoom => self.side_mut(side).room = None,
            Action::StartPeer { role: _ } => {
                self.side_mut(side).peer_open = true;
                if self.relay_up {
                    self.tell(side, Event::LocalCandidatesGathered);
                }
                if self.connected() {
                    self.tell(A, Event::PeerConnected);
                    self.tell(B, Event::PeerConnected);
                }
            }
            Action::ClosePeer => {
                self.side_mut(side).peer_open = false;
                if self.same_room() && self.side(other).peer_open {
                    self.tell(other, Event::PeerDisconnected);
                }
            }
            Action::SendBye => {
                if self.same_room() {
                    self.tell(other, Event::RemoteBye);
                }
            }
            Action::RestartIce => {
                if self.connected() {
                    self.tell(side, Event::IceRestartSucceeded);
                    self.tell(other, Event::PeerConnected);
                }
            }
            Action::EndMatch { match_id } => {
                let user = self.side(side).user.clone();
                if let Ok(Some(left)) = self.mm.handle_end(&user, match_id) {
                    self.tell_partner_left(left);
                }
            }
        }
    }

    /// Both sides left their room, closed their peer, and no match is open.
    fn assert_all_released(&self) {
        for side in [A, B] {
            assert_eq!(self.side(side).room, None, "{side:?} is still in a room");
            assert!(!self.side(side).peer_open, "{side:?} still has a peer");
        }
        assert_eq!(self.mm.active_matches().len(), 0);
    }
}

const THE_WAY_IN: [CallState; 5] = [
    CallState::Preparing,
    CallState::Searching,
    CallState::Matched,
    CallState::Connecting,
    CallState::InCall,
];

#[test]
fn two_strangers_meet_one_skips_they_meet_again_and_hang_up() {
    let mut w = World::new();
    w.command(A, Command::Search);
    assert_eq!(w.state(A), CallState::Searching);
    w.advance(Duration::from_secs(3));
    w.command(B, Command::Search);
    assert_eq!(
        (w.state(A), w.state(B)),
        (CallState::InCall, CallState::InCall)
    );
    // Whoever waited longer offers.
    assert_eq!(w.side(A).call.role(), Some(Role::Offerer));
    assert_eq!(w.side(B).call.role(), Some(Role::Answerer));
    let first = w.side(A).call.match_id();
    assert_eq!(first, w.side(B).call.match_id());

    w.command(B, Command::Skip);
    let stranger_left = CallState::Ended {
        reason: EndReason::StrangerLeft,
    };
    assert_eq!(w.state(A), stranger_left);
    assert_eq!(w.state(B), CallState::Searching);
    assert!(w.mm.is_waiting(&w.side(B).user));
    // The bye came first; the matchmaker's word and the closing peer are
    // then stale for A.
    assert_eq!(w.side(A).call.ignored_inputs(), 2);

    w.command(A, Command::Search);
    assert_eq!(
        (w.state(A), w.state(B)),
        (CallState::InCall, CallState::InCall)
    );
    assert_eq!(w.side(B).call.role(), Some(Role::Offerer));
    assert_ne!(w.side(A).call.match_id(), first);

    w.command(A, Command::HangUp);
    let you_left = CallState::Ended {
        reason: EndReason::YouLeft,
    };
    assert_eq!((w.state(A), w.state(B)), (you_left, stranger_left));
    w.assert_all_released();

    // Credentials were fetched once per side and reused after.
    let mut a_states = THE_WAY_IN.to_vec();
    a_states.push(stranger_left);
    a_states.extend_from_slice(&THE_WAY_IN[1..]);
    a_states.push(you_left);
    assert_eq!(w.side(A).states, a_states);
    let mut b_states = THE_WAY_IN.to_vec();
    b_states.push(CallState::Ended {
        reason: EndReason::Skipped,
    });
    b_states.extend_from_slice(&THE_WAY_IN[1..]);
    b_states.push(stranger_left);
    assert_eq!(w.side(B).states, b_states);
}

#[test]
fn a_degraded_path_comes_back_through_the_offerers_ice_restart() {
    let mut w = World::new();
    w.command(A, Command::Search);
    w.command(B, Command::Search);
    assert_eq!(
        (w.state(A), w.state(B)),
        (CallState::InCall, CallState::InCall)
    );

    w.tell(A, Event::PeerDisconnected);
    w.tell(B, Event::PeerDisconnected);
    w.progress();
    w.advance(RESTART_DELAY);
    assert_eq!(
        (w.state(A), w.state(B)),
        (CallState::InCall, CallState::InCall)
    );
    let restarts = |side| {
        w.side(side)
            .actions
            .iter()
            .filter(|a| **a == Action::RestartIce)
            .count()
    };
    assert_eq!((restarts(A), restarts(B)), (1, 0));
    assert!(w.side(A).states.contains(&CallState::Reconnecting));
}

#[test]
fn a_relay_that_refuses_us_fails_both_sides_clearly() {
    let mut w = World::new();
    w.relay_up = false;
    w.command(A, Command::Search);
    w.command(B, Command::Search);
    assert_eq!(w.state(A), CallState::Connecting);
    w.advance(CONNECT_TIMEOUT);
    let relay = CallState::Failed {
        error: ErrorKind::Relay,
    };
    assert_eq!((w.state(A), w.state(B)), (relay, relay));
    w.assert_all_released();
}

#[test]
fn a_stranger_whose_app_hung_never_answers() {
    let mut w = World::new();
    w.command(A, Command::Search);
    w.side_mut(B).hang_on_match = true;
    w.command(B, Command::Search);
    assert_eq!(w.state(A), CallState::Connecting);
    w.advance(CONNECT_TIMEOUT);
    assert_eq!(
        w.state(A),
        CallState::Ended {
            reason: EndReason::StrangerNeverAnswered
        }
    );
    // A told the matchmaker, so the stranger is not left in a match.
    assert_eq!(w.mm.active_matches().len(), 0);
}
