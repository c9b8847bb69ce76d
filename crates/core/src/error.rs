//! The one error type of this crate. Every variant says whether it is
//! retryable; [`Error::is_retryable`] is the single place callers ask.

use std::fmt;
use std::time::Duration;

use voicemeet_proto::phoenix::EncodeError;
use voicemeet_proto::privacy::Violation;

/// Everything that can go wrong in the engine's network clients.
///
/// "Retryable" means the same call may succeed later without any change on
/// the caller's side (after a pause; use backoff). Everything else needs a
/// change first: new credentials, a fixed configuration, another join.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration cannot work, e.g. a base URL that does not parse or
    /// is not `http(s)`. Not retryable: fix the configuration.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// The service could not be reached: DNS, a refused or reset connection,
    /// a TLS failure. Retryable.
    #[error("{service} unreachable: {detail}")]
    Unreachable {
        /// Which service (`backend` or `realtime`).
        service: &'static str,
        /// What the network stack said (never a URL: ours carry keys).
        detail: String,
    },
    /// A request or handshake got no answer within its named timeout.
    /// Retryable.
    #[error("{what} timed out after {after:?}")]
    TimedOut {
        /// What was waited for, e.g. `anonymous sign-in`, `join`.
        what: &'static str,
        /// The timeout that ran out.
        after: Duration,
    },
    /// The service refused our credentials (HTTP 401/403): the API key, the
    /// access token or its session. Not retryable as is: the backend client
    /// already renews the session once before returning this; check the
    /// API key.
    #[error("unauthorized ({}): {message}", code.as_deref().unwrap_or("no code"))]
    Unauthorized {
        /// The service's error code, e.g. `session_not_found`, if it sent one.
        code: Option<String>,
        /// The service's message.
        message: String,
    },
    /// Too many requests (HTTP 429, or Realtime's connect limits).
    /// Retryable after a pause, at least `retry_after` when given.
    #[error("rate limited: {message}")]
    RateLimited {
        /// The server's `Retry-After`, when it sent one in seconds.
        retry_after: Option<Duration>,
        /// The service's message.
        message: String,
    },
    /// Any other error status. Retryable for 5xx (the service's own trouble),
    /// not for 4xx (the request is wrong, e.g. `join_queue` before the inbox
    /// was joined: code `P0001`).
    #[error("server error {status} ({}): {message}", code.as_deref().unwrap_or("no code"))]
    Server {
        /// The HTTP status.
        status: u16,
        /// The service's error code (GoTrue `error_code`, PostgREST `code`,
        /// or the `x-sb-error-code` header), if any.
        code: Option<String>,
        /// The service's message.
        message: String,
    },
    /// An answer did not have the documented shape: a version mismatch or a
    /// bug on either side. Not retryable.
    #[error("unexpected answer from {service}: {detail}")]
    Protocol {
        /// Which service (`backend` or `realtime`).
        service: &'static str,
        /// What was wrong (never the payload itself: it may hold tokens).
        detail: String,
    },
    /// The TURN credentials hold no server webrtc-rs 0.17 can relay through
    /// (`turn:` over UDP, with a username and credential). Not retryable:
    /// the backend's TURN configuration must change.
    #[error("no usable TURN server (turn: over UDP) in the credentials; {skipped} URLs skipped")]
    NoUsableTurnServer {
        /// How many URLs were skipped as unusable.
        skipped: usize,
    },
    /// The [`SessionStore`](crate::backend::SessionStore) failed. Not
    /// retryable here; the store's own error says more.
    #[error("session store failed: {0}")]
    SessionStore(#[source] StoreError),
    /// Realtime refused to join a channel (the join reply's `reason`).
    /// Retryable when [`JoinRefusal::is_retryable`] says so.
    #[error("join refused: {reason}")]
    JoinRefused {
        /// The kind of refusal, from the reason's `Code:` prefix.
        refusal: JoinRefusal,
        /// The server's reason, e.g. `Unauthorized: You do not have
        /// permissions to read from this Channel topic: inbox:..`.
        reason: String,
    },
    /// Realtime answered a push with an error, e.g.
    /// `payload_size_exceeded`. Not retryable: change the message.
    #[error("push rejected: {reason}")]
    PushRejected {
        /// The server's reason.
        reason: String,
    },
    /// The Realtime socket is down (it reconnects by itself), or went down
    /// before the push could be confirmed. Retryable.
    #[error("realtime socket disconnected")]
    Disconnected,
    /// The channel is gone: left, closed by the server, or its client was
    /// dropped. Not retryable: join again.
    #[error("channel closed")]
    ChannelClosed,
    /// This client already has a channel on the topic; use it, or leave it
    /// first. Not retryable.
    #[error("topic already joined on this client")]
    AlreadyJoined,
    /// A message cannot be put on the wire, e.g. raw bytes on vsn 1.0.0.
    /// Not retryable: change the message.
    #[error("cannot encode message: {0}")]
    Encode(#[from] EncodeError),
    /// The WebRTC stack refused an operation of the [peer](crate::peer),
    /// e.g. a remote SDP that does not parse or does not fit the signalling
    /// state. Not retryable: the input or the call flow is wrong.
    #[error("WebRTC {during} failed: {detail}")]
    Webrtc {
        /// The operation, e.g. `set_remote_description`.
        during: &'static str,
        /// What the stack said (its errors name no addresses).
        detail: String,
    },
    /// Something the peer was about to hand to signalling failed the
    /// [privacy checks](voicemeet_proto::privacy): nothing was sent. A bug
    /// or a misconfigured TURN server, never the remote's doing. Not
    /// retryable.
    #[error("privacy check refused the local {what}: {violation}")]
    PrivacyViolation {
        /// What was refused (`offer`, `answer`).
        what: &'static str,
        /// The rule that failed (prints no address).
        violation: Violation,
    },
    /// The peer was asked for something its role or state does not allow,
    /// e.g. an answerer asked to create an offer. Not retryable: a bug in
    /// the caller's call flow.
    #[error("peer cannot do that now: {0}")]
    PeerState(&'static str),
    /// A description of an older negotiation generation than the peer's
    /// current one: it was superseded by an ICE restart. Not retryable;
    /// drop it.
    #[error("description of generation {got} is older than the current generation {current}")]
    StaleGeneration {
        /// The description's generation.
        got: u32,
        /// The peer's generation.
        current: u32,
    },
    /// The peer is closed. Not retryable: make a new one.
    #[error("peer closed")]
    PeerClosed,
    /// There is no microphone (or speaker, for
    /// [`Direction::Output`](crate::audio::device::Direction::Output)) to
    /// open: none exists, the chosen one is gone, or the device cannot work
    /// in that direction. Not retryable as is: plug one in or pick another.
    #[error("no {direction} found")]
    NoAudioDevice {
        /// Microphone or speaker.
        direction: crate::audio::device::Direction,
    },
    /// The microphone (or speaker) exists but cannot be opened now:
    /// another program holds it exclusively, or access was denied.
    /// Retryable: it may be released.
    #[error("{direction} busy: {detail}")]
    AudioDeviceBusy {
        /// Microphone or speaker.
        direction: crate::audio::device::Direction,
        /// What the audio host said.
        detail: String,
    },
    /// The audio pipeline failed: the Opus codec refused a frame or a
    /// setting, or an audio file cannot be read or written. Not retryable.
    #[error("audio {what}: {detail}")]
    Audio {
        /// What failed, e.g. `opus encode`, `WAV file`.
        what: &'static str,
        /// The codec's or the OS's message.
        detail: String,
    },
}

impl Error {
    /// Whether the same call may succeed later unchanged (see the variants).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Unreachable { .. }
            | Self::TimedOut { .. }
            | Self::RateLimited { .. }
            | Self::AudioDeviceBusy { .. }
            | Self::Disconnected => true,
            Self::Server { status, .. } => *status >= 500,
            Self::JoinRefused { refusal, .. } => refusal.is_retryable(),
            Self::InvalidConfig(_)
            | Self::Unauthorized { .. }
            | Self::Protocol { .. }
            | Self::NoUsableTurnServer { .. }
            | Self::SessionStore(_)
            | Self::PushRejected { .. }
            | Self::ChannelClosed
            | Self::AlreadyJoined
            | Self::Encode(_)
            | Self::Webrtc { .. }
            | Self::PrivacyViolation { .. }
            | Self::PeerState(_)
            | Self::StaleGeneration { .. }
            | Self::PeerClosed
            | Self::NoAudioDevice { .. }
            | Self::Audio { .. } => false,
        }
    }
}

/// A failure of a [`SessionStore`](crate::backend::SessionStore)
/// implementation (e.g. the OS keychain refused access).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

impl StoreError {
    /// Wraps any error (or message) of a store implementation.
    pub fn new(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self(source.into())
    }
}

/// Why Realtime refused a join, from the `Code:` prefix of its reason
/// (PROTOCOLS.md §1.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JoinRefusal {
    /// `Unauthorized`: a private topic this user may not read. Not
    /// retryable.
    Unauthorized,
    /// `PrivateOnly`: the project only allows private channels. Not
    /// retryable.
    PrivateOnly,
    /// `InvalidJWTToken`, `MalformedJWT`, `JwtSignatureError`: the access
    /// token is expired or bad. Not retryable as is: renew the session, then
    /// join with the new token.
    InvalidToken,
    /// `ChannelRateLimitReached`, `ClientJoinRateLimitReached`,
    /// `ConnectionRateLimitReached`: too many channels or joins. Retryable
    /// after a pause.
    RateLimited,
    /// `RealtimeRestarting`, `InitializingProjectConnection`,
    /// `IncreaseConnectionPool`, `DatabaseLackOfConnections`,
    /// `UnableToConnectToProject`: the service is busy. Retryable.
    Unavailable,
    /// `TenantNotFound`, `RealtimeDisabledForTenant`: the project cannot
    /// serve Realtime. Not retryable.
    TenantUnavailable,
    /// `TopicNameRequired`, `UnableToReplayMessages`, or Phoenix's
    /// `unmatched topic`: the join itself is wrong. Not retryable.
    BadRequest,
    /// Anything else, e.g. the bare `Unknown Error on Channel`. Not
    /// retryable.
    Other,
}

impl JoinRefusal {
    /// Classifies a join reply's `reason`.
    pub fn from_reason(reason: &str) -> Self {
        if reason == "unmatched topic" {
            return Self::BadRequest;
        }
        let Some((code, _)) = reason.split_once(':') else {
            return Self::Other;
        };
        match code.trim() {
            "Unauthorized" => Self::Unauthorized,
            "PrivateOnly" => Self::PrivateOnly,
            "InvalidJWTToken" | "MalformedJWT" | "JwtSignatureError" => Self::InvalidToken,
            "ChannelRateLimitReached"
            | "ClientJoinRateLimitReached"
            | "ConnectionRateLimitReached" => Self::RateLimited,
            "RealtimeRestarting"
            | "InitializingProjectConnection"
            | "IncreaseConnectionPool"
            | "DatabaseLackOfConnections"
            | "UnableToConnectToProject" => Self::Unavailable,
            "TenantNotFound" | "RealtimeDisabledForTenant" => Self::TenantUnavailable,
            "TopicNameRequired" | "UnableToReplayMessages" => Self::BadRequest,
            _ => Self::Other,
        }
    }

    /// Whether joining again later, unchanged, may succeed.
    pub const fn is_retryable(self) -> bool {
        match self {
            Self::RateLimited | Self::Unavailable => true,
            Self::Unauthorized
            | Self::PrivateOnly
            | Self::InvalidToken
            | Self::TenantUnavailable
            | Self::BadRequest
            | Self::Other => false,
        }
    }
}

impl fmt::Display for JoinRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::Unauthorized => "unauthorized",
            Self::PrivateOnly => "private channels only",
            Self::InvalidToken => "invalid token",
            Self::RateLimited => "rate limited",
            Self::Unavailable => "unavailable",
            Self::TenantUnavailable => "tenant unavailable",
            Self::BadRequest => "bad request",
            Self::Other => "other",
        };
        f.write_str(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_reasons_are_classified() {
        let cases = [
            (
                "Unauthorized: You do not have permissions to read from this Channel topic: inbox:x",
                JoinRefusal::Unauthorized,
            ),
            (
                "PrivateOnly: This project only allows private channels",
                JoinRefusal::PrivateOnly,
            ),
            (
                "InvalidJWTToken: Token has expired 3 seconds ago",
                JoinRefusal::InvalidToken,
            ),
            (
                "MalformedJWT: The token provided is not a valid JWT",
                JoinRefusal::InvalidToken,
            ),
            (
                "ChannelRateLimitReached: Too many channels",
                JoinRefusal::RateLimited,
            ),
            (
                "RealtimeRestarting: Realtime is restarting, please standby",
                JoinRefusal::Unavailable,
            ),
            ("TenantNotFound: nope", JoinRefusal::TenantUnavailable),
            (
                "TopicNameRequired: You must provide a topic name",
                JoinRefusal::BadRequest,
            ),
            ("unmatched topic", JoinRefusal::BadRequest),
            ("Unknown Error on Channel", JoinRefusal::Other),
            ("SomethingNew: later", JoinRefusal::Other),
        ];
        for (reason, expected) in cases {
            assert_eq!(JoinRefusal::from_reason(reason), expected, "{reason}");
        }
    }

    #[test]
    fn peer_and_audio_errors_are_not_retryable() {
        let errors = [
            Error::Webrtc {
                during: "set_remote_description",
                detail: String::new(),
            },
            Error::PrivacyViolation {
                what: "offer",
                violation: Violation::Tcp,
            },
            Error::PeerState("only the offerer creates offers"),
            Error::StaleGeneration { got: 0, current: 1 },
            Error::PeerClosed,
            Error::Audio {
                what: "opus encode",
                detail: String::new(),
            },
        ];
        for err in errors {
            assert!(!err.is_retryable(), "{err}");
        }
    }

    #[test]
    fn retryability() {
        assert!(
            Error::Unreachable {
                service: "backend",
                detail: String::new()
            }
            .is_retryable()
        );
        assert!(
            Error::Server {
                status: 503,
                code: None,
                message: String::new()
            }
            .is_retryable()
        );
        assert!(
            !Error::Server {
                status: 400,
                code: Some("P0001".into()),
                message: String::new()
            }
            .is_retryable()
        );
        assert!(
            !Error::Unauthorized {
                code: None,
                message: String::new()
            }
            .is_retryable()
        );
        assert!(!Error::NoUsableTurnServer { skipped: 3 }.is_retryable());
        assert!(
            Error::JoinRefused {
                refusal: JoinRefusal::RateLimited,
                reason: String::new()
            }
            .is_retryable()
        );
        assert!(
            !Error::JoinRefused {
                refusal: JoinRefusal::Unauthorized,
                reason: String::new()
            }
            .is_retryable()
        );
    }
}
