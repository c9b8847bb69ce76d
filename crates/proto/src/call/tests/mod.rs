//! The call machine in virtual time. Outputs print as words, so cases read
//! as data: `send_bye close_peer leave_room end_match(m1) >ended(you_left)`,
//! where `>state` is a state change and a trailing `(ignored)` says the
//! input was counted as ignored.

use std::time::{Duration, Instant};

use super::*;
use crate::Redacted;
use crate::matchmaking;

mod table;
mod timeouts;
mod two_peers;

/// The origin of virtual time. The only clock read in these tests: every
/// other instant is an offset from it, so nothing depends on its value.
#[expect(
    clippy::disallowed_methods,
    reason = "an arbitrary origin for virtual time"
)]
fn origin() -> Instant {
    Instant::now()
}

const HOUR: Duration = Duration::from_secs(3600);

fn m(n: u128) -> MatchId {
    MatchId::from_u128(n)
}

fn topic(n: u128) -> Redacted<String> {
    Redacted::new(format!("room:m{n}"))
}

fn show_state(state: CallState) -> String {
    match state {
        CallState::Idle => "idle".into(),
        CallState::Preparing => "preparing".into(),
        CallState::Searching => "searching".into(),
        CallState::Matched => "matched".into(),
        CallState::Connecting => "connecting".into(),
        CallState::InCall => "in_call".into(),
        CallState::Reconnecting => "reconnecting".into(),
        CallState::Ended { reason } => {
            let reason = match reason {
                EndReason::YouLeft => "you_left",
                EndReason::Skipped => "skipped",
                EndReason::StrangerLeft => "stranger_left",
                EndReason::StrangerNeverAnswered => "stranger_never_answered",
                EndReason::ConnectionLost => "connection_lost",
                EndReason::NobodyFound => "nobody_found",
            };
            format!("ended({reason})")
        }
        CallState::Failed { error } => {
            let error = match error {
                ErrorKind::Credentials => "credentials",
                ErrorKind::BackendUnreachable => "backend_unreachable",
                ErrorKind::Auth => "auth",
                ErrorKind::Relay => "relay",
                ErrorKind::SignallingLost => "signalling_lost",
                ErrorKind::Internal => "internal",
            };
            format!("failed({error})")
        }
    }
}

fn show_role(role: Role) -> &'static str {
    match role {
        Role::Offerer => "offerer",
        Role::Answerer => "answerer",
    }
}

fn show_action(action: &Action) -> String {
    match action {
        Action::FetchCredentials => "fetch_credentials".into(),
        Action::JoinQueue => "join_queue".into(),
        Action::LeaveQueue => "leave_queue".into(),
        Action::JoinRoom { topic } => format!("join_room({})", topic.expose()),
        Action::LeaveRoom => "leave_room".into(),
        Action::StartPeer { role } => format!("start_peer({})", show_role(*role)),
        Action::ClosePeer => "close_peer".into(),
        Action::SendBye => "send_bye".into(),
        Action::RestartIce => "restart_ice".into(),
        Action::EndMatch { match_id } => format!("end_match(m{})", match_id.to_u128()),
    }
}

enum Input {
    Command(Command),
    Event(Event),
    /// To the pending deadline, or an hour on when none is armed.
    Timeout,
}

/// A call driven in virtual time, its outputs printed as words.
struct Sim {
    call: Call,
    start: Instant,
    now: Instant,
    /// The deadline the last drain ended on.
    deadline: Option<Instant>,
}

impl Sim {
    fn new() -> Self {
        let start = origin();
        Self {
            call: Call::new(),
            start,
            now: start,
            deadline: None,
        }
    }

    /// Virtual time elapsed since the start.
    fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// The pending deadline, as an offset from the start.
    fn deadline_in(&self) -> Option<Duration> {
        self.deadline.map(|at| at - self.start)
    }

    /// Feeds one named input (see [`table::INPUTS`]) and prints what came
    /// out.
    fn run(&mut self, input: &str) -> String {
        let now = self.now;
        let fed = match input {
            "search" => Input::Command(Command::Search),
            "skip" => Input::Command(Command::Skip),
            "cancel" => Input::Command(Command::Cancel),
            "hang_up" => Input::Command(Command::HangUp),
            "mute" => Input::Command(Command::SetMuted(true)),
            "unmute" => Input::Command(Command::SetMuted(false)),
            "ready" => Input::Event(Event::CredentialsReady {
                expires_at: now + HOUR,
            }),
            "ready_short" => Input::Event(Event::CredentialsReady {
                expires_at: now + Duration::from_secs(30),
            }),
            "credentials_failed" => Input::Event(Event::CredentialsFailed(ErrorKind::Auth)),
            "queued" => Input::Event(Event::Queued),
            "matched" => Input::Event(Event::Matched {
                match_id: m(1),
                role: Role::Offerer,
                topic: topic(1),
            }),
            "matched_answerer" => Input::Event(Event::Matched {
                match_id: m(1),
                role: Role::Answerer,
                topic: topic(1),
            }),
            "matched_other" => Input::Event(Event::Matched {
                match_id: m(2),
                role: Role::Offerer,
                topic: topic(2),
            }),
            "search_expired" => Input::Event(Event::SearchExpired),
            "partner_left" => Input::Event(Event::PartnerLeft {
                match_id: m(1),
                reason: matchmaking::EndReason::Hangup,
            }),
            "partner_left_other" => Input::Event(Event::PartnerLeft {
                match_id: m(2),
                reason: matchmaking::EndReason::Skipped,
            }),
            "room_joined" => Input::Event(Event::RoomJoined),
            "gathered" => Input::Event(Event::LocalCandidatesGathered),
            "peer_connected" => Input::Event(Event::PeerConnected),
            "peer_disconnected" => Input::Event(Event::PeerDisconnected),
            "peer_failed" => Input::Event(Event::PeerFailed),
            "ice_restarted" => Input::Event(Event::IceRestartSucceeded),
            "remote_bye" => Input::Event(Event::RemoteBye),
            "signalling_gave_up" => Input::Event(Event::SignallingGaveUp),
            "backend_error" => Input::Event(Event::BackendError(ErrorKind::BackendUnreachable)),
            "action_failed" => Input::Event(Event::ActionFailed(ErrorKind::Internal)),
            "timeout" => Input::Timeout,
            _ => panic!("unknown input {input:?}"),
        };
        self.feed(fed)
    }

    /// Feeds one input and prints what came out; `(ignored)` at the end
    /// if the input was counted as ignored.
    fn feed(&mut self, input: Input) -> String {
        let ignored = self.call.ignored_inputs();
        let before = self.call.state();
        match input {
            Input::Command(c) => self.call.handle_command(c, self.now),
            Input::Event(e) => self.call.handle_event(e, self.now),
            Input::Timeout => {
                self.now = self.deadline.unwrap_or(self.now + HOUR);
                self.call.handle_timeout(self.now);
            }
        }
        let mut words = self.drain();
        if self.call.ignored_inputs() != ignored {
            assert_eq!(self.call.ignored_inputs(), ignored + 1);
            words.push("(ignored)".into());
        }
        self.check_state(before, &words);
        words.join(" ")
    }

    /// Feeds an event with values of the test's choosing.
    fn event(&mut self, event: Event) -> String {
        self.feed(Input::Event(event))
    }

    /// Advances virtual time by `by` and prints what came out.
    fn wait(&mut self, by: Duration) -> String {
        let before = self.call.state();
        self.now += by;
        self.call.handle_timeout(self.now);
        let words = self.drain();
        self.check_state(before, &words);
        words.join(" ")
    }

    /// Runs a script of inputs, each of which must print what it says.
    fn script(&mut self, steps: &[(&str, &str)]) {
        for (i, (input, want)) in steps.iter().enumerate() {
            let got = self.run(input);
            assert_eq!(got, *want, "step {i} ({input}) at {:?}", self.elapsed());
        }
    }

    /// Drains outputs as the driver must, checking the run-loop contract:
    /// actions and state changes, then the deadline or nothing.
    fn drain(&mut self) -> Vec<String> {
        let mut words = Vec::new();
        loop {
            match self.call.poll_output(self.now) {
                Some(Output::Action(action)) => words.push(show_action(&action)),
                Some(Output::StateChanged(state)) => words.push(format!(">{}", show_state(state))),
                Some(Output::MuteChanged(true)) => words.push("muted".into()),
                Some(Output::MuteChanged(false)) => words.push("unmuted".into()),
                Some(Output::Timeout(at)) => {
                    assert!(at > self.now, "a deadline that is due was not fired");
                    self.deadline = Some(at);
                    break;
                }
                None => {
                    self.deadline = None;
                    break;
                }
            }
        }
        words
    }

    /// The state reported last is the state the machine is in.
    fn check_state(&self, before: CallState, words: &[String]) {
        let reported = words
            .iter()
            .rev()
            .find_map(|w| w.strip_prefix('>'))
            .map_or_else(|| show_state(before), str::to_owned);
        assert_eq!(show_state(self.call.state()), reported);
    }
}
