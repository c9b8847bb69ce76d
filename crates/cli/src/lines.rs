//! The stdout protocol of `call` and `echo-bot`: one `key: value` line per
//! engine event, stable so that scripts and tests can wait for exact lines.
//! Progress and errors go to stderr instead.
//!
//! ```text
//! state: idle | preparing | searching | matched | connecting | in-call | reconnecting
//! state: ended (you-left | skipped | stranger-left | stranger-never-answered
//!               | connection-lost | nobody-found)
//! state: failed (credentials | backend-unreachable | auth | relay
//!                | signalling-lost | internal)
//! role: offerer | answerer          the match's negotiation role
//! audio: first-frame                the call's first decoded audio arrived
//! muted: on | off
//! ```
//!
//! The names are this module's, not `Debug` output, so renaming a Rust
//! variant cannot change what scripts see.

use voicemeet_core::ClientEvent;
use voicemeet_core::proto::call::{CallState, EndReason, ErrorKind};
use voicemeet_core::proto::matchmaking::Role;

/// `in-call`, `ended (stranger-left)`, `failed (relay)`, ...
pub fn state_name(state: CallState) -> String {
    match state {
        CallState::Idle => "idle".to_owned(),
        CallState::Preparing => "preparing".to_owned(),
        CallState::Searching => "searching".to_owned(),
        CallState::Matched => "matched".to_owned(),
        CallState::Connecting => "connecting".to_owned(),
        CallState::InCall => "in-call".to_owned(),
        CallState::Reconnecting => "reconnecting".to_owned(),
        CallState::Ended { reason } => format!("ended ({})", end_reason_name(reason)),
        CallState::Failed { error } => format!("failed ({})", error_kind_name(error)),
    }
}

/// `stranger-left`, ...
pub const fn end_reason_name(reason: EndReason) -> &'static str {
    match reason {
        EndReason::YouLeft => "you-left",
        EndReason::Skipped => "skipped",
        EndReason::StrangerLeft => "stranger-left",
        EndReason::StrangerNeverAnswered => "stranger-never-answered",
        EndReason::ConnectionLost => "connection-lost",
        EndReason::NobodyFound => "nobody-found",
    }
}

/// `relay`, ...
pub const fn error_kind_name(error: ErrorKind) -> &'static str {
    match error {
        ErrorKind::Credentials => "credentials",
        ErrorKind::BackendUnreachable => "backend-unreachable",
        ErrorKind::Auth => "auth",
        ErrorKind::Relay => "relay",
        ErrorKind::SignallingLost => "signalling-lost",
        ErrorKind::Internal => "internal",
    }
}

/// `offerer` or `answerer`.
pub const fn role_name(role: Role) -> &'static str {
    match role {
        Role::Offerer => "offerer",
        Role::Answerer => "answerer",
    }
}

/// The line for an event, without the newline; `None` for events this
/// protocol does not (yet) show.
pub fn event_line(event: &ClientEvent) -> Option<String> {
    match event {
        ClientEvent::StateChanged(state) => Some(format!("state: {}", state_name(*state))),
        ClientEvent::Matched { role } => Some(format!("role: {}", role_name(*role))),
        ClientEvent::FirstAudio => Some("audio: first-frame".to_owned()),
        ClientEvent::MuteChanged(muted) => {
            Some(format!("muted: {}", if *muted { "on" } else { "off" }))
        }
        // `ClientEvent` is non-exhaustive: a new event stays off stdout
        // until it is given a documented line here.
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_have_stable_names() {
        let cases = [
            (CallState::Idle, "idle"),
            (CallState::Preparing, "preparing"),
            (CallState::Searching, "searching"),
            (CallState::Matched, "matched"),
            (CallState::Connecting, "connecting"),
            (CallState::InCall, "in-call"),
            (CallState::Reconnecting, "reconnecting"),
            (
                CallState::Ended {
                    reason: EndReason::StrangerLeft,
                },
                "ended (stranger-left)",
            ),
            (
                CallState::Ended {
                    reason: EndReason::StrangerNeverAnswered,
                },
                "ended (stranger-never-answered)",
            ),
            (
                CallState::Failed {
                    error: ErrorKind::BackendUnreachable,
                },
                "failed (backend-unreachable)",
            ),
        ];
        for (state, name) in cases {
            assert_eq!(state_name(state), name);
        }
    }

    #[test]
    fn events_become_lines() {
        assert_eq!(
            event_line(&ClientEvent::StateChanged(CallState::InCall)).as_deref(),
            Some("state: in-call")
        );
        assert_eq!(
            event_line(&ClientEvent::Matched {
                role: Role::Answerer
            })
            .as_deref(),
            Some("role: answerer")
        );
        assert_eq!(
            event_line(&ClientEvent::FirstAudio).as_deref(),
            Some("audio: first-frame")
        );
        assert_eq!(
            event_line(&ClientEvent::MuteChanged(true)).as_deref(),
            Some("muted: on")
        );
    }
}
