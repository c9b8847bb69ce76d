//! What goes into a [`Call`](super::Call) and what comes out: the user's
//! commands, facts the driver observed, and the side effects and state
//! changes it must carry out and report.

use std::time::Instant;

use crate::Redacted;
use crate::matchmaking::{self, MatchId, Role};

use super::state::{CallState, ErrorKind};

/// What the user asked for, through
/// [`Call::handle_command`](super::Call::handle_command).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// Find a stranger. Starts a search from `Idle`, `Ended` or `Failed`;
    /// ignored while already searching or in a call (skipping is explicit).
    Search,
    /// End the current match and search again at once. With no match yet,
    /// the same as [`Search`](Self::Search).
    Skip,
    /// Stop searching. Ends a match that is still connecting, since the user
    /// has not heard anyone yet; ignored in a call, so a late tap on the
    /// search screen never hangs up on someone.
    Cancel,
    /// End the call, or stop the search.
    HangUp,
    /// Mute or unmute the microphone. A flag, not a state: it holds across
    /// calls until changed, so a muted user is never live to a new stranger.
    SetMuted(bool),
}

/// Something the driver observed, through
/// [`Call::handle_event`](super::Call::handle_event). Events are past-tense
/// facts; one that does not fit the current state (late, duplicated, or for
/// an earlier match) is ignored and counted
/// ([`Call::ignored_inputs`](super::Call::ignored_inputs)).
///
/// Events of the room and the peer belong to the current match: the driver
/// drops those of a room it left or a peer it closed. Matchmaking events
/// carry the match id, because the inbox outlives matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The answer to [`Action::FetchCredentials`]: TURN credentials valid
    /// until `expires_at`. The driver converts the credentials' wall-clock
    /// expiry into this clock.
    CredentialsReady {
        /// When the relay stops accepting them.
        expires_at: Instant,
    },
    /// The answer to [`Action::FetchCredentials`]: none could be had. Usually
    /// [`ErrorKind::Credentials`], [`ErrorKind::Auth`] or
    /// [`ErrorKind::BackendUnreachable`].
    CredentialsFailed(ErrorKind),
    /// The matchmaker put us in the queue (`join_queue` answered `waiting`).
    Queued,
    /// The matchmaker paired us with a stranger, through `join_queue`'s
    /// answer or the inbox.
    Matched {
        /// The match.
        match_id: MatchId,
        /// Our side of the negotiation.
        role: Role,
        /// The pair's private room topic. Knowing it is enough to try to
        /// join, so it is kept out of logs.
        topic: Redacted<String>,
    },
    /// The matchmaker gave up our search after its maximum wait (inbox
    /// `search_expired`); we are no longer queued.
    SearchExpired,
    /// The matchmaker ended a match because the stranger left it (inbox
    /// `match_ended`). Every reason ends the call alike.
    PartnerLeft {
        /// The match that ended; a different one than ours is stale.
        match_id: MatchId,
        /// What the stranger did, for the logs.
        reason: matchmaking::EndReason,
    },
    /// We joined the match's room ([`Action::JoinRoom`] succeeded).
    RoomJoined,
    /// Our peer gathered its first relay candidate: our relay works.
    LocalCandidatesGathered,
    /// The peer's connection is up (ICE connected).
    PeerConnected,
    /// The peer's connection is degraded (ICE disconnected); it may recover
    /// on its own.
    PeerDisconnected,
    /// The peer's connection failed (ICE failed).
    PeerFailed,
    /// An ICE restart completed and the connection is up again.
    IceRestartSucceeded,
    /// The stranger said goodbye in the room.
    RemoteBye,
    /// The signalling connection (Realtime) stopped reconnecting.
    SignallingGaveUp,
    /// A backend request of the search failed (sign-in or the queue).
    BackendError(ErrorKind),
    /// The driver could not carry out an action, such as creating the peer or
    /// joining the room; usually [`ErrorKind::Internal`].
    ActionFailed(ErrorKind),
}

/// A side effect for the driver to carry out, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Sign in if needed, then fetch TURN credentials; answer with
    /// [`Event::CredentialsReady`] or [`Event::CredentialsFailed`]. At most one
    /// fetch is outstanding: a search that finds one in flight waits for it.
    FetchCredentials,
    /// Make sure the inbox is listened to, then join the matchmaking queue
    /// (`join_queue`); answer with [`Event::Queued`] or [`Event::Matched`].
    JoinQueue,
    /// Leave the matchmaking queue (`leave_queue`); idempotent on the server.
    LeaveQueue,
    /// Join the match's private room channel; answer with
    /// [`Event::RoomJoined`].
    JoinRoom {
        /// The room topic from [`Event::Matched`].
        topic: Redacted<String>,
    },
    /// Leave the room channel, joined or still joining.
    LeaveRoom,
    /// Create the peer with the cached TURN credentials, relay-only, and
    /// negotiate in the room: the offerer sends the offer, the answerer
    /// waits for it; both trickle candidates.
    StartPeer {
        /// Our side of the negotiation.
        role: Role,
    },
    /// Close the peer and stop its audio.
    ClosePeer,
    /// Tell the stranger in the room that we are leaving.
    SendBye,
    /// Restart ICE (offerer only): a new offer with fresh ICE credentials.
    RestartIce,
    /// Tell the matchmaker the match is over (`end_match`); idempotent on the
    /// server.
    EndMatch {
        /// The match to end: ours, or a stale one we will not join.
        match_id: MatchId,
    },
}

/// What [`Call::poll_output`](super::Call::poll_output) hands out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// A side effect to carry out now, in order.
    Action(Action),
    /// The state changed: forward it to the UI. A transition's actions come
    /// before its state change.
    StateChanged(CallState),
    /// The mute flag changed: apply it to the microphone and forward it to
    /// the UI.
    MuteChanged(bool),
    /// Nothing more to do now; call
    /// [`Call::handle_timeout`](super::Call::handle_timeout) at this
    /// instant, unless an input comes first.
    Timeout(Instant),
}
