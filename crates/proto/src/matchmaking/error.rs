//! Errors of the matchmaker. None is retryable: the same call would fail the
//! same way, because the state it refers to is gone or never existed.

/// A request the matchmaker refused. Nothing changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The user is neither in an active match with this id nor was it their
    /// most recent match: it ended long ago, it belongs to other users, or
    /// the user disconnected since. Not retryable.
    #[error("the user is not in that match")]
    NotInMatch,
}

/// A string that is not a [`MatchId`](super::MatchId): those are exactly
/// 32 hex digits. Not retryable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a match id is exactly 32 hexadecimal digits")]
pub struct ParseMatchIdError;
