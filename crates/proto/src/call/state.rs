//! Where a call stands, as the UI shows it, and why it stopped.

/// Where the user's search or call stands: the one value the UI renders.
///
/// [`Call`](super::Call) reports every change as
/// [`Output::StateChanged`](super::Output::StateChanged), in order. Timers,
/// credentials, the match and the mute flag are not states: they live inside
/// `Call`, so this stays a small `Copy` value.
///
/// ```text
///            Search / Skip, credentials to fetch
///  ┌──────┐ ───────────────────────────────────▶ ┌───────────┐ CredentialsFailed, or
///  │ Idle │ ◀──────────────── Cancel ─────────── │ Preparing │ none in 10 s: Failed{..}
///  └──────┘                                      └───────────┘
///    │  ▲                        CredentialsReady │         ▲ credentials down to 60 s:
///    │  │                                         ▼         │ LeaveQueue, FetchCredentials
///    │  │                                     ┌───────────┐ │
///    │  └──────────────── Cancel ──────────── │ Searching │─┘ not queued in 10 s:
///    └──────────────────────────────────────▶ └───────────┘     Failed{BackendUnreachable}
///     Search / Skip, credentials cached             │         SearchExpired, or 11 min:
///                                                   │ Matched     Ended{NobodyFound}
///                                                   ▼
///                                             ┌───────────┐ room not joined 15 s after
///                        Idle ◀── Cancel ──── │  Matched  │ the match:
///                                             └───────────┘     Failed{SignallingLost}
///                                                   │ RoomJoined
///                                                   ▼
///                                            ┌────────────┐ PeerFailed, or 15 s after the
///                        Idle ◀── Cancel ─── │ Connecting │ match: Failed{Relay} without a
///                                            └────────────┘ local candidate, else
///                                                   │           Ended{StrangerNeverAnswered}
///                                                   │ PeerConnected
///                                                   ▼
///   ┌──────────────┐                          ┌───────────┐
///   │ Reconnecting │ ◀── PeerDisconnected ─── │  InCall   │
///   │ (offerer:    │  for 2 s, or PeerFailed  │           │
///   │  RestartIce) │ ── PeerConnected, ─────▶ │           │
///   └──────────────┘    IceRestartSucceeded   └───────────┘
///     10 s: Ended{ConnectionLost}
///
///  From Matched, Connecting, InCall, Reconnecting:
///    HangUp ─▶ Ended{YouLeft}          RemoteBye, PartnerLeft ─▶ Ended{StrangerLeft}
///    Skip ─▶ Ended{Skipped} ─▶ Searching, or Preparing to refresh credentials
///    SignallingGaveUp, ActionFailed ─▶ Failed{..}
///  From Preparing, Searching: HangUp ─▶ Idle; SignallingGaveUp, BackendError,
///    ActionFailed ─▶ Failed{..}
///  From Idle, Ended, Failed: only Search / Skip, to Preparing or Searching
///
/// ```
///
/// Every state but `Idle`, `InCall`, `Ended` and `Failed` has a deadline, so
/// nothing waits forever; `InCall` gets one when the path degrades.
///
/// Matches on this enum name every variant, never `_ =>`, so a new state
/// forces a decision everywhere it is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallState {
    /// Nothing is happening: before the first search, or after a cancel.
    Idle,
    /// Getting ready to search: signing in and fetching TURN credentials,
    /// before the queue is joined, so a refusal is a clear error rather than
    /// a call that never connects.
    Preparing,
    /// In the matchmaking queue, waiting for a stranger.
    Searching,
    /// A stranger was found; joining the pair's private room.
    Matched,
    /// In the room, negotiating the WebRTC connection through the relay.
    Connecting,
    /// Talking.
    InCall,
    /// The media path broke; an ICE restart is under way and the call is
    /// still alive.
    Reconnecting,
    /// The search or call is over without an error. Stays until the next
    /// search.
    Ended {
        /// Why it ended.
        reason: EndReason,
    },
    /// The search or call stopped on an error. Stays until the next search.
    Failed {
        /// What went wrong, for the UI to act on.
        error: ErrorKind,
    },
}

impl CallState {
    /// Whether a search or call is under way: anything but `Idle`, `Ended`
    /// and `Failed`, which only a new search leaves.
    pub const fn is_active(self) -> bool {
        match self {
            Self::Idle | Self::Ended { .. } | Self::Failed { .. } => false,
            Self::Preparing
            | Self::Searching
            | Self::Matched
            | Self::Connecting
            | Self::InCall
            | Self::Reconnecting => true,
        }
    }
}

/// Why a search or call ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// The user hung up.
    YouLeft,
    /// The user skipped to the next stranger; the search goes on at once, so
    /// this state is reported and left in the same step.
    Skipped,
    /// The stranger hung up, skipped, or dropped off the matchmaker. All look
    /// alike on purpose: nobody learns they were reported.
    StrangerLeft,
    /// The connection was not up within the connect timeout after the match
    /// (or failed first) although our own relay was ready: the stranger never
    /// answered, or their side never reached the relay.
    StrangerNeverAnswered,
    /// The media path broke during the call and an ICE restart did not bring
    /// it back within the reconnect grace.
    ConnectionLost,
    /// Nobody was found: the matchmaker gave up the search after its maximum
    /// wait, or we did after ours.
    NobodyFound,
}

/// What went wrong, classified so the UI can act on it: offer a retry, or
/// explain that retrying will not help.
///
/// Not `#[non_exhaustive]` on purpose: the UI's handling of every kind must
/// be decided when a kind is added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum ErrorKind {
    /// TURN credentials could not be had: the credentials service failed, did
    /// not answer in time, or handed out credentials that were about to
    /// expire. Retryable: the next search fetches afresh.
    #[error("TURN relay credentials are unavailable")]
    Credentials,
    /// The backend could not be reached or did not answer in time (sign-in,
    /// the queue). Retryable: usually the network or a brief outage.
    #[error("the VoiceMeet service is unreachable")]
    BackendUnreachable,
    /// The backend refused who we are: sign-in was rejected or the session is
    /// no longer valid. Not retryable as is: the same identity is refused
    /// again.
    #[error("the VoiceMeet service refused this device's sign-in")]
    Auth,
    /// Our TURN relay produced no relay candidate in time (the relay refused
    /// the credentials or could not be reached), so no call can connect.
    /// Retryable once: the next search fetches fresh credentials; if it fails
    /// again, the network most likely blocks the relay.
    #[error("the TURN relay could not be used")]
    Relay,
    /// The signalling connection (Realtime) was lost for good, or the
    /// match's room could not be joined in time. Retryable: a new search
    /// reconnects.
    #[error("the signalling connection was lost")]
    SignallingLost,
    /// A bug or a local fault, such as an audio device or peer that could not
    /// be created. Not retryable: the same thing would fail again.
    #[error("internal error")]
    Internal,
}

impl ErrorKind {
    /// Whether searching again has a fair chance of working. See each
    /// variant's doc for why.
    pub const fn is_retryable(self) -> bool {
        match self {
            Self::Credentials | Self::BackendUnreachable | Self::Relay | Self::SignallingLost => {
                true
            }
            Self::Auth | Self::Internal => false,
        }
    }

    /// Whether the cached TURN credentials must be dropped, so the next
    /// search fetches new ones: they were refused, or came from a session
    /// that was.
    pub(crate) const fn invalidates_credentials(self) -> bool {
        match self {
            Self::Credentials | Self::Auth | Self::Relay => true,
            Self::BackendUnreachable | Self::SignallingLost | Self::Internal => false,
        }
    }
}
