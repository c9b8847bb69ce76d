//! The call state machine: tap search, get matched, talk, skip, hang up.
//!
//! [`Call`] is sans-IO, like the matchmaker: it performs no IO and never
//! reads the clock. The driver (`voicemeet-core`'s `Driver` task) feeds it the
//! user's [`Command`]s, the [`Event`]s it observed and the current time, and
//! carries out the [`Action`]s it asks for. The states, and what moves
//! between them, are drawn on [`CallState`].
//!
//! # The run loop
//!
//! After **every** `handle_*` call, drain [`Call::poll_output`] until it
//! returns [`Output::Timeout`] or `None`; then wait for the next input or
//! that deadline, whichever comes first, and call
//! [`Call::handle_timeout`] at the deadline. `None` means no timer is armed.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use voicemeet_proto::call::{Action, Call, Command, Event, Output};
//!
//! let mut call = Call::new();
//! let start = Instant::now(); // the driver's clock; the machine never reads it
//! call.handle_command(Command::Search, start);
//! let mut actions = Vec::new();
//! let deadline = loop {
//!     match call.poll_output(start) {
//!         Some(Output::Action(action)) => actions.push(action), // carry it out
//!         Some(Output::StateChanged(_) | Output::MuteChanged(_)) => {} // tell the UI
//!         Some(Output::Timeout(at)) => break Some(at),
//!         None => break None,
//!     }
//! };
//! assert_eq!(actions, [Action::FetchCredentials]);
//! assert_eq!(deadline, Some(start + voicemeet_proto::call::CREDENTIALS_TIMEOUT));
//!
//! // The fetch answered: credentials for an hour. Now the queue is joined.
//! let expires_at = start + Duration::from_secs(3600);
//! call.handle_event(Event::CredentialsReady { expires_at }, start);
//! assert!(std::iter::from_fn(|| call.poll_output(start))
//!     .any(|out| out == Output::Action(Action::JoinQueue)));
//! ```
//!
//! # Rules
//!
//! - TURN credentials are fetched **before** the queue is joined, so a
//!   refusal is a clear [`ErrorKind::Credentials`] and never a match that
//!   cannot connect. Credentials are cached and reused while they have more
//!   than [`CREDENTIALS_MIN_REMAINING`] left; `JoinQueue` is only ever asked
//!   for with such credentials, and a search whose credentials reach that
//!   margin leaves the queue to refresh them.
//! - Every wait has a named deadline (the consts below), and each ends in a
//!   clear outcome: an [`EndReason`] or an [`ErrorKind`], never a hang.
//! - Every `StartPeer` is followed by a `ClosePeer`, every `JoinRoom` by a
//!   `LeaveRoom`, and every `JoinQueue` by a `LeaveQueue` unless the
//!   matchmaker took us out of the queue itself, before the state reaches
//!   `Idle`, `Ended` or `Failed`. Those three states ask for nothing until
//!   the next search, except ending a match that arrives after we stopped
//!   searching ([`Action::EndMatch`]), so nobody waits for us in vain.
//! - Only the offerer restarts ICE; the answerer waits for the offerer's
//!   restart. Roles come from the matchmaker.
//! - Inputs that do not fit the state (late, duplicated, or for another
//!   match) change nothing and are counted ([`Call::ignored_inputs`]); no
//!   input panics.

mod io;
mod state;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::mem;
use std::time::{Duration, Instant};

use crate::matchmaking::{MatchId, Role};

pub use io::{Action, Command, Event, Output};
pub use state::{CallState, EndReason, ErrorKind};

/// How long a credentials fetch (with sign-in, if needed) may take before
/// the search fails with [`ErrorKind::Credentials`]. Two HTTPS round trips
/// take well under a second; ten means the backend is down or the network
/// is, and the user should hear so rather than watch a spinner.
pub const CREDENTIALS_TIMEOUT: Duration = Duration::from_secs(10);

/// Cached TURN credentials are reused only while they have more than this
/// left. A match can come the moment the queue is joined, and the peer then
/// needs them for up to [`CONNECT_TIMEOUT`]; the rest covers clock skew
/// between us and the relay.
pub const CREDENTIALS_MIN_REMAINING: Duration = Duration::from_secs(60);

/// How long `join_queue` may take to answer (queued or matched) before the
/// search fails with [`ErrorKind::BackendUnreachable`]: one HTTPS request.
pub const QUEUE_JOIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest a search lasts before it ends with
/// [`EndReason::NobodyFound`]. A backstop: the matchmaker gives up after its
/// own maximum wait (10 minutes on the local server) and says so, which
/// ends the search first. A search never runs unattended for long, so
/// nobody is matched with an app left open and abandoned.
pub const SEARCH_TIMEOUT: Duration = Duration::from_secs(11 * 60);

/// How long after the match the connection may take to come up: joining
/// the room, the offer and answer, and ICE through both relays, which takes
/// one to three seconds on a working path. Past it, the call ends as
/// [`EndReason::StrangerNeverAnswered`] if our relay gave us a candidate,
/// else fails with [`ErrorKind::Relay`] (or [`ErrorKind::SignallingLost`]
/// if the room was never joined).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a call stays degraded (ICE disconnected) before an ICE restart
/// is tried. ICE often recovers on its own from a brief loss, and a restart
/// costs a round trip of signalling, so it is not tried at once; meanwhile
/// the state stays `InCall` and the UI does not flicker.
pub const RESTART_DELAY: Duration = Duration::from_secs(2);

/// How long `Reconnecting` may last before the call ends with
/// [`EndReason::ConnectionLost`]. A restart over working signalling takes
/// about a second or two; a user will not sit through much more silence.
pub const RECONNECT_GRACE: Duration = Duration::from_secs(10);

/// One call's state machine. See the [module docs](self) for the run loop
/// and the rules, and [`CallState`] for the states.
#[derive(Debug, Clone)]
pub struct Call {
    phase: Phase,
    /// When the cached TURN credentials expire, if any are cached.
    credentials: Option<Instant>,
    /// A [`Action::FetchCredentials`] is awaiting its answer.
    fetching: bool,
    muted: bool,
    ignored: u64,
    /// The last state handed out as [`Output::StateChanged`].
    reported: CallState,
    out: VecDeque<Output>,
}

/// [`CallState`] with the data and deadlines of each state.
#[derive(Debug, Clone)]
enum Phase {
    Idle,
    Preparing {
        deadline: Instant,
    },
    Searching {
        /// Until `join_queue` answers.
        join_deadline: Option<Instant>,
        search_deadline: Instant,
        /// When the credentials reach [`CREDENTIALS_MIN_REMAINING`].
        refresh_at: Instant,
    },
    Matched {
        current: Match,
        deadline: Instant,
    },
    Connecting {
        current: Match,
        deadline: Instant,
        gathered: bool,
    },
    InCall {
        current: Match,
        /// Degraded since `PeerDisconnected`: restart at this instant.
        restart_at: Option<Instant>,
    },
    Reconnecting {
        current: Match,
        deadline: Instant,
    },
    Ended(EndReason),
    Failed(ErrorKind),
}

#[derive(Debug, Clone)]
struct Match {
    id: MatchId,
    role: Role,
}

/// How far into the match we are, which decides what leaving undoes.
#[derive(Debug, Clone, Copy)]
enum Stage {
    /// `JoinRoom` asked for; no peer yet.
    JoiningRoom,
    /// In the room, with a peer.
    InRoom,
}

/// Who ends the match, which decides who must still be told.
#[derive(Debug, Clone, Copy)]
enum Farewell {
    /// We end it: tell the stranger and the matchmaker.
    Ours,
    /// The stranger said bye, or our signalling is gone: only the
    /// matchmaker can (still) be told.
    MatchmakerOnly,
    /// The matchmaker ended it and told us: nobody to tell.
    Nobody,
}

/// The timers of the searching state, in the order they win a tie.
#[derive(Debug, Clone, Copy)]
enum SearchTimer {
    Join,
    Refresh,
    Search,
}

impl Default for Call {
    fn default() -> Self {
        Self::new()
    }
}

impl Call {
    /// An idle call: no credentials cached, not muted.
    pub fn new() -> Self {
        Self {
            phase: Phase::Idle,
            credentials: None,
            fetching: false,
            muted: false,
            ignored: 0,
            reported: CallState::Idle,
            out: VecDeque::new(),
        }
    }

    /// The current state.
    pub fn state(&self) -> CallState {
        self.phase.state()
    }

    /// Whether the microphone is muted.
    pub fn is_muted(&self) -> bool {
        self.muted
    }

    /// The current match, from `Matched` until the call ends.
    pub fn match_id(&self) -> Option<MatchId> {
        self.phase.current().map(|m| m.id)
    }

    /// Our role in the current match.
    pub fn role(&self) -> Option<Role> {
        self.phase.current().map(|m| m.role)
    }

    /// How many inputs were ignored because they did not fit the state:
    /// late, duplicated, or for another match. For metrics and tests.
    pub fn ignored_inputs(&self) -> u64 {
        self.ignored
    }

    /// The user asked for something at `now`. Drain
    /// [`poll_output`](Self::poll_output) afterwards.
    pub fn handle_command(&mut self, command: Command, now: Instant) {
        let phase = mem::replace(&mut self.phase, Phase::Idle);
        let next = self.on_command(command, phase, now);
        self.enter(next);
    }

    /// The driver observed `event` at `now`. Drain
    /// [`poll_output`](Self::poll_output) afterwards.
    pub fn handle_event(&mut self, event: Event, now: Instant) {
        let phase = mem::replace(&mut self.phase, Phase::Idle);
        let next = self.on_event(event, phase, now);
        self.enter(next);
    }

    /// Time has reached `now`: fire every deadline at or before it. Early
    /// and repeated calls are harmless. Drain
    /// [`poll_output`](Self::poll_output) afterwards.
    pub fn handle_timeout(&mut self, now: Instant) {
        // Terminates: firing a timer always leaves its state, for one with
        // no deadline or one a whole timeout after `now`.
        while self.phase.next_deadline().is_some_and(|at| at <= now) {
            let phase = mem::replace(&mut self.phase, Phase::Idle);
            let next = self.on_timeout(phase, now);
            self.enter(next);
        }
    }

    /// The next output. First fires the deadlines at or before `now`, so a
    /// driver that polls late misses none. Returns queued actions and state
    /// changes in order, then [`Output::Timeout`] with the next deadline, or
    /// `None` when no timer is armed.
    pub fn poll_output(&mut self, now: Instant) -> Option<Output> {
        self.handle_timeout(now);
        self.out
            .pop_front()
            .or_else(|| self.phase.next_deadline().map(Output::Timeout))
    }

    fn on_command(&mut self, command: Command, phase: Phase, now: Instant) -> Phase {
        match command {
            Command::Search => match phase {
                Phase::Idle | Phase::Ended(_) | Phase::Failed(_) => self.start_search(now),
                Phase::Preparing { .. }
                | Phase::Searching { .. }
                | Phase::Matched { .. }
                | Phase::Connecting { .. }
                | Phase::InCall { .. }
                | Phase::Reconnecting { .. } => self.ignore(phase),
            },
            Command::Skip => match phase {
                Phase::Idle | Phase::Ended(_) | Phase::Failed(_) => self.start_search(now),
                Phase::Preparing { .. } | Phase::Searching { .. } => self.ignore(phase),
                Phase::Matched { current, .. } => self.skip(&current, Stage::JoiningRoom, now),
                Phase::Connecting { current, .. }
                | Phase::InCall { current, .. }
                | Phase::Reconnecting { current, .. } => self.skip(&current, Stage::InRoom, now),
            },
            Command::Cancel => match phase {
                Phase::Idle | Phase::Ended(_) | Phase::Failed(_) => self.ignore(phase),
                Phase::Preparing { .. } => Phase::Idle,
                Phase::Searching { .. } => {
                    self.act(Action::LeaveQueue);
                    Phase::Idle
                }
                Phase::Matched { current, .. } => {
                    self.leave(&current, Stage::JoiningRoom, Farewell::Ours);
                    Phase::Idle
                }
                Phase::Connecting { current, .. } => {
                    self.leave(&current, Stage::InRoom, Farewell::Ours);
                    Phase::Idle
                }
                Phase::InCall { .. } | Phase::Reconnecting { .. } => self.ignore(phase),
            },
            Command::HangUp => match phase {
                Phase::Idle | Phase::Ended(_) | Phase::Failed(_) => self.ignore(phase),
                Phase::Preparing { .. } => Phase::Idle,
                Phase::Searching { .. } => {
                    self.act(Action::LeaveQueue);
                    Phase::Idle
                }
                Phase::Matched { current, .. } => {
                    self.leave(&current, Stage::JoiningRoom, Farewell::Ours);
                    Phase::Ended(EndReason::YouLeft)
                }
                Phase::Connecting { current, .. }
                | Phase::InCall { current, .. }
                | Phase::Reconnecting { current, .. } => {
                    self.leave(&current, Stage::InRoom, Farewell::Ours);
                    Phase::Ended(EndReason::YouLeft)
                }
            },
            Command::SetMuted(muted) => {
                if muted == self.muted {
                    self.ignore(phase)
                } else {
                    self.muted = muted;
                    self.out.push_back(Output::MuteChanged(muted));
                    phase
                }
            }
        }
    }

    fn on_event(&mut self, event: Event, phase: Phase, now: Instant) -> Phase {
        match event {
            Event::CredentialsReady { expires_at } => {
                if !self.fetching {
                    return self.ignore(phase);
                }
                self.fetching = false;
                self.credentials = Some(expires_at);
                match phase {
                    Phase::Preparing { .. } => match self.usable_credentials(now) {
                        Some(expires_at) => self.join_queue(expires_at, now),
                        // Expiring already: the backend's clock or TTL is off.
                        None => self.fail(ErrorKind::Credentials),
                    },
                    // An answer to a fetch whose search was cancelled or
                    // failed meanwhile: kept for the next search.
                    Phase::Idle
                    | Phase::Searching { .. }
                    | Phase::Matched { .. }
                    | Phase::Connecting { .. }
                    | Phase::InCall { .. }
                    | Phase::Reconnecting { .. }
                    | Phase::Ended(_)
                    | Phase::Failed(_) => phase,
                }
            }
            Event::CredentialsFailed(kind) => {
                if !self.fetching {
                    return self.ignore(phase);
                }
                self.fetching = false;
                match phase {
                    Phase::Preparing { .. } => self.fail(kind),
                    // Nobody is waiting for this fetch any more.
                    Phase::Idle
                    | Phase::Searching { .. }
                    | Phase::Matched { .. }
                    | Phase::Connecting { .. }
                    | Phase::InCall { .. }
                    | Phase::Reconnecting { .. }
                    | Phase::Ended(_)
                    | Phase::Failed(_) => phase,
                }
            }
            Event::Queued => match phase {
                Phase::Searching {
                    join_deadline: Some(_),
                    search_deadline,
                    refresh_at,
                } => Phase::Searching {
                    join_deadline: None,
                    search_deadline,
                    refresh_at,
                },
                Phase::Searching {
                    join_deadline: None,
                    ..
                }
                | Phase::Idle
                | Phase::Preparing { .. }
                | Phase::Matched { .. }
                | Phase::Connecting { .. }
                | Phase::InCall { .. }
                | Phase::Reconnecting { .. }
                | Phase::Ended(_)
                | Phase::Failed(_) => self.ignore(phase),
            },
            Event::Matched {
                match_id,
                role,
                topic,
            } => match phase {
                Phase::Searching { .. } => {
                    self.act(Action::JoinRoom { topic });
                    Phase::Matched {
                        current: Match { id: match_id, role },
                        deadline: now + CONNECT_TIMEOUT,
                    }
                }
                Phase::Idle
                | Phase::Preparing { .. }
                | Phase::Matched { .. }
                | Phase::Connecting { .. }
                | Phase::InCall { .. }
                | Phase::Reconnecting { .. }
                | Phase::Ended(_)
                | Phase::Failed(_) => {
                    // A match we will not join (it crossed a cancel, say):
                    // end it, or the stranger waits for us in vain.
                    if phase.current().is_none_or(|m| m.id != match_id) {
                        self.act(Action::EndMatch { match_id });
                    }
                    self.ignore(phase)
                }
            },
            Event::SearchExpired => match phase {
                Phase::Searching { .. } => Phase::Ended(EndReason::NobodyFound),
                Phase::Idle
                | Phase::Preparing { .. }
                | Phase::Matched { .. }
                | Phase::Connecting { .. }
                | Phase::InCall { .. }
                | Phase::Reconnecting { .. }
                | Phase::Ended(_)
                | Phase::Failed(_) => self.ignore(phase),
            },
            Event::PartnerLeft {
                match_id,
                reason: _,
            } => {
                if phase.current().is_none_or(|m| m.id != match_id) {
                    return self.ignore(phase);
                }
                self.end_in_match(phase, Farewell::Nobody, EndReason::StrangerLeft)
            }
            Event::RoomJoined => match phase {
                Phase::Matched { current, deadline } => {
                    self.act(Action::StartPeer { role: current.role });
                    Phase::Connecting {
                        current,
                        deadline,
                        gathered: false,
                    }
                }
                Phase::Idle
                | Phase::Preparing { .. }
                | Phase::Searching { .. }
                | Phase::Connecting { .. }
                | Phase::InCall { .. }
                | Phase::Reconnecting { .. }
                | Phase::Ended(_)
                | Phase::Failed(_) => self.ignore(phase),
            },
            Event::LocalCandidatesGathered => match phase {
                Phase::Connecting {
                    current,
                    deadline,
                    gathered: false,
                } => Phase::Connecting {
                    current,
                    deadline,
                    gathered: true,
                },
                Phase::Connecting { gathered: true, .. }
                | Phase::Idle
                | Phase::Preparing { .. }
                | Phase::Searching { .. }
                | Phase::Matched { .. }
                | Phase::InCall { .. }
                | Phase::Reconnecting { .. }
                | Phase::Ended(_)
                | Phase::Failed(_) => self.ignore(phase),
            },
            Event::PeerConnected => match phase {
                Phase::Connecting { current, .. }
                | Phase::Reconnecting { current, .. }
                | Phase::InCall {
                    current,
                    restart_at: Some(_),
                } => Phase::InCall {
                    current,
                    restart_at: None,
                },
                Phase::InCall {
                    restart_at: None, ..
                }
                | Phase::Idle
                | Phase::Preparing { .. }
                | Phase::Searching { .. }
                | Phase::Matched { .. }
                | Phase::Ended(_)
                | Phase::Failed(_) => self.ignore(phase),
            },
            Event::PeerDisconnected => match phase {
                Phase::InCall {
                    current,
                    restart_at: None,
                } => Phase::InCall {
                    current,
                    restart_at: Some(now + RESTART_DELAY),
                },
                // Before the call is up the connect timeout covers it; while
                // reconnecting, the grace does; a repeat keeps its deadline.
                Phase::InCall {
                    restart_at: Some(_),
                    ..
                }
                | Phase::Idle
                | Phase::Preparing { .. }
                | Phase::Searching { .. }
                | Phase::Matched { .. }
                | Phase::Connecting { .. }
                | Phase::Reconnecting { .. }
                | Phase::Ended(_)
                | Phase::Failed(_) => self.ignore(phase),
            },
            Event::PeerFailed => match phase {
                Phase::Connecting {
                    current, gathered, ..
                } => self.connect_failed(&current, gathered),
                Phase::InCall { current, .. } => self.reconnect(current, now),
                // The restart may still bring it back: the grace decides.
                Phase::Reconnecting { .. }
                | Phase::Idle
                | Phase::Preparing { .. }
                | Phase::Searching { .. }
                | Phase::Matched { .. }
                | Phase::Ended(_)
                | Phase::Failed(_) => self.ignore(phase),
            },
            Event::IceRestartSucceeded => match phase {
                Phase::Reconnecting { current, .. } => Phase::InCall {
                    current,
                    restart_at: None,
                },
                Phase::Idle
                | Phase::Preparing { .. }
                | Phase::Searching { .. }
                | Phase::Matched { .. }
                | Phase::Connecting { .. }
                | Phase::InCall { .. }
                | Phase::Ended(_)
                | Phase::Failed(_) => self.ignore(phase),
            },
            Event::RemoteBye => {
                self.end_in_match(phase, Farewell::MatchmakerOnly, EndReason::StrangerLeft)
            }
            Event::SignallingGaveUp => self.fail_active(
                phase,
                Farewell::MatchmakerOnly,
                ErrorKind::SignallingLost,
                true,
            ),
            Event::BackendError(kind) => self.fail_active(phase, Farewell::Ours, kind, false),
            Event::ActionFailed(kind) => self.fail_active(phase, Farewell::Ours, kind, true),
        }
    }

    fn on_timeout(&mut self, phase: Phase, now: Instant) -> Phase {
        let due = |at: Instant| at <= now;
        match phase {
            Phase::Preparing { deadline } if due(deadline) => {
                // Given up: a late answer is ignored, the next search fetches.
                self.fetching = false;
                self.fail(ErrorKind::Credentials)
            }
            Phase::Searching {
                join_deadline,
                search_deadline,
                refresh_at,
            } => {
                let timers = [
                    (join_deadline, SearchTimer::Join),
                    (Some(refresh_at), SearchTimer::Refresh),
                    (Some(search_deadline), SearchTimer::Search),
                ];
                let fired = timers
                    .into_iter()
                    .filter_map(|(at, timer)| at.filter(|&at| due(at)).map(|at| (at, timer)))
                    .min_by_key(|&(at, _)| at);
                match fired {
                    None => phase,
                    Some((_, timer)) => {
                        self.act(Action::LeaveQueue);
                        match timer {
                            SearchTimer::Join => self.fail(ErrorKind::BackendUnreachable),
                            SearchTimer::Refresh => self.prepare(now),
                            SearchTimer::Search => Phase::Ended(EndReason::NobodyFound),
                        }
                    }
                }
            }
            Phase::Matched { current, deadline } if due(deadline) => {
                self.leave(&current, Stage::JoiningRoom, Farewell::Ours);
                self.fail(ErrorKind::SignallingLost)
            }
            Phase::Connecting {
                current,
                deadline,
                gathered,
            } if due(deadline) => self.connect_failed(&current, gathered),
            Phase::InCall {
                current,
                restart_at: Some(at),
            } if due(at) => self.reconnect(current, now),
            Phase::Reconnecting { current, deadline } if due(deadline) => {
                self.leave(&current, Stage::InRoom, Farewell::Ours);
                Phase::Ended(EndReason::ConnectionLost)
            }
            Phase::Idle
            | Phase::Preparing { .. }
            | Phase::Matched { .. }
            | Phase::Connecting { .. }
            | Phase::InCall { .. }
            | Phase::Reconnecting { .. }
            | Phase::Ended(_)
            | Phase::Failed(_) => phase,
        }
    }

    /// Starts a search: straight into the queue with usable cached
    /// credentials, else fetch them first (or wait for the fetch in flight).
    fn start_search(&mut self, now: Instant) -> Phase {
        match self.usable_credentials(now) {
            Some(expires_at) => self.join_queue(expires_at, now),
            None => self.prepare(now),
        }
    }

    /// Fetches credentials (or waits for the fetch in flight) before the
    /// queue is joined.
    fn prepare(&mut self, now: Instant) -> Phase {
        self.credentials = None;
        if !self.fetching {
            self.fetching = true;
            self.act(Action::FetchCredentials);
        }
        Phase::Preparing {
            deadline: now + CREDENTIALS_TIMEOUT,
        }
    }

    /// Joins the queue with credentials that expire at `expires_at`, which
    /// [`usable_credentials`](Self::usable_credentials) vouched for.
    fn join_queue(&mut self, expires_at: Instant, now: Instant) -> Phase {
        self.act(Action::JoinQueue);
        let margin = expires_at
            .saturating_duration_since(now)
            .saturating_sub(CREDENTIALS_MIN_REMAINING);
        Phase::Searching {
            join_deadline: Some(now + QUEUE_JOIN_TIMEOUT),
            search_deadline: now + SEARCH_TIMEOUT,
            refresh_at: now + margin,
        }
    }

    /// The cached credentials' expiry, if they may still be used at `now`.
    fn usable_credentials(&self, now: Instant) -> Option<Instant> {
        self.credentials
            .filter(|at| at.saturating_duration_since(now) > CREDENTIALS_MIN_REMAINING)
    }

    fn skip(&mut self, current: &Match, stage: Stage, now: Instant) -> Phase {
        self.leave(current, stage, Farewell::Ours);
        // Reported and left in one step, so the UI's history shows the skip.
        self.report(CallState::Ended {
            reason: EndReason::Skipped,
        });
        self.start_search(now)
    }

    /// The connection did not come up: blame our relay if it never gave us
    /// a candidate, else the stranger's side.
    fn connect_failed(&mut self, current: &Match, gathered: bool) -> Phase {
        self.leave(current, Stage::InRoom, Farewell::Ours);
        if gathered {
            Phase::Ended(EndReason::StrangerNeverAnswered)
        } else {
            self.fail(ErrorKind::Relay)
        }
    }

    fn reconnect(&mut self, current: Match, now: Instant) -> Phase {
        match current.role {
            Role::Offerer => self.act(Action::RestartIce),
            Role::Answerer => {}
        }
        Phase::Reconnecting {
            current,
            deadline: now + RECONNECT_GRACE,
        }
    }

    /// Ends the match, if there is one, with `reason`; otherwise the input
    /// is stale.
    fn end_in_match(&mut self, phase: Phase, farewell: Farewell, reason: EndReason) -> Phase {
        match phase {
            Phase::Matched { current, .. } => {
                self.leave(&current, Stage::JoiningRoom, farewell);
                Phase::Ended(reason)
            }
            Phase::Connecting { current, .. }
            | Phase::InCall { current, .. }
            | Phase::Reconnecting { current, .. } => {
                self.leave(&current, Stage::InRoom, farewell);
                Phase::Ended(reason)
            }
            Phase::Idle
            | Phase::Preparing { .. }
            | Phase::Searching { .. }
            | Phase::Ended(_)
            | Phase::Failed(_) => self.ignore(phase),
        }
    }

    /// Fails an active search or call with `kind`, undoing what it started.
    /// `in_match` says whether the failure applies to a match too; a
    /// backend error does not, since a call needs no backend request.
    fn fail_active(
        &mut self,
        phase: Phase,
        farewell: Farewell,
        kind: ErrorKind,
        in_match: bool,
    ) -> Phase {
        match phase {
            // A fetch in flight stays so: its answer is cached if it comes.
            Phase::Preparing { .. } => self.fail(kind),
            Phase::Searching { .. } => {
                self.act(Action::LeaveQueue);
                self.fail(kind)
            }
            Phase::Matched { current, .. } if in_match => {
                self.leave(&current, Stage::JoiningRoom, farewell);
                self.fail(kind)
            }
            Phase::Connecting { current, .. }
            | Phase::InCall { current, .. }
            | Phase::Reconnecting { current, .. }
                if in_match =>
            {
                self.leave(&current, Stage::InRoom, farewell);
                self.fail(kind)
            }
            Phase::Matched { .. }
            | Phase::Connecting { .. }
            | Phase::InCall { .. }
            | Phase::Reconnecting { .. }
            | Phase::Idle
            | Phase::Ended(_)
            | Phase::Failed(_) => self.ignore(phase),
        }
    }

    /// Undoes what the match started, in this order: say bye, close the
    /// peer, leave the room, tell the matchmaker.
    fn leave(&mut self, current: &Match, stage: Stage, farewell: Farewell) {
        let in_room = match stage {
            Stage::JoiningRoom => false,
            Stage::InRoom => true,
        };
        let (bye, end_match) = match farewell {
            Farewell::Ours => (true, true),
            Farewell::MatchmakerOnly => (false, true),
            Farewell::Nobody => (false, false),
        };
        if in_room && bye {
            self.act(Action::SendBye);
        }
        if in_room {
            self.act(Action::ClosePeer);
        }
        self.act(Action::LeaveRoom);
        if end_match {
            self.act(Action::EndMatch {
                match_id: current.id,
            });
        }
    }

    fn fail(&mut self, kind: ErrorKind) -> Phase {
        if kind.invalidates_credentials() {
            self.credentials = None;
        }
        Phase::Failed(kind)
    }

    fn ignore(&mut self, phase: Phase) -> Phase {
        self.ignored = self.ignored.saturating_add(1);
        phase
    }

    fn act(&mut self, action: Action) {
        self.out.push_back(Output::Action(action));
    }

    /// Reports `state` unless it is the one last reported.
    fn report(&mut self, state: CallState) {
        if state != self.reported {
            self.reported = state;
            self.out.push_back(Output::StateChanged(state));
        }
    }

    fn enter(&mut self, phase: Phase) {
        self.phase = phase;
        self.report(self.phase.state());
    }
}

impl Phase {
    fn state(&self) -> CallState {
        match self {
            Self::Idle => CallState::Idle,
            Self::Preparing { .. } => CallState::Preparing,
            Self::Searching { .. } => CallState::Searching,
            Self::Matched { .. } => CallState::Matched,
            Self::Connecting { .. } => CallState::Connecting,
            Self::InCall { .. } => CallState::InCall,
            Self::Reconnecting { .. } => CallState::Reconnecting,
            Self::Ended(reason) => CallState::Ended { reason: *reason },
            Self::Failed(error) => CallState::Failed { error: *error },
        }
    }

    fn current(&self) -> Option<&Match> {
        match self {
            Self::Matched { current, .. }
            | Self::Connecting { current, .. }
            | Self::InCall { current, .. }
            | Self::Reconnecting { current, .. } => Some(current),
            Self::Idle
            | Self::Preparing { .. }
            | Self::Searching { .. }
            | Self::Ended(_)
            | Self::Failed(_) => None,
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        match self {
            Self::Preparing { deadline }
            | Self::Matched { deadline, .. }
            | Self::Connecting { deadline, .. }
            | Self::Reconnecting { deadline, .. } => Some(*deadline),
            Self::Searching {
                join_deadline,
                search_deadline,
                refresh_at,
            } => Some(
                join_deadline
                    .map_or(*search_deadline, |at| at.min(*search_deadline))
                    .min(*refresh_at),
            ),
            Self::InCall { restart_at, .. } => *restart_at,
            Self::Idle | Self::Ended(_) | Self::Failed(_) => None,
        }
    }
}
