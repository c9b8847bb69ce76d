//! Who gets matched, and what a match is called.

use std::fmt;
use std::str::FromStr;

use super::error::ParseMatchIdError;

/// An opaque user id, e.g. the `sub` claim of the user's JWT. The
/// matchmaker only compares, hashes and orders it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(String);

impl UserId {
    /// Wraps an id.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The id as the caller gave it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Unwraps the id.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl From<String> for UserId {
    fn from(id: String) -> Self {
        Self(id)
    }
}

impl From<&str> for UserId {
    fn from(id: &str) -> Self {
        Self(id.to_owned())
    }
}

/// The id of one match, which also names the pair's private room, so it
/// must be unguessable: the server draws it from 128 random bits through an
/// [`IdSource`].
///
/// [`Display`](fmt::Display) and [`FromStr`] use 32 lowercase hex digits,
/// the form for topics and SQL. `Debug` prints only the first 8 of them:
/// enough to follow a match through the logs, too few to join its room.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MatchId(u128);

impl MatchId {
    /// The id with these 128 bits.
    pub const fn from_u128(bits: u128) -> Self {
        Self(bits)
    }

    /// The id with these 16 bytes, read big-endian (as in a UUID).
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(u128::from_be_bytes(bytes))
    }

    /// The id's 128 bits.
    pub const fn to_u128(self) -> u128 {
        self.0
    }
}

impl fmt::Display for MatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for MatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MatchId({:08x}…)", self.0 >> 96)
    }
}

impl FromStr for MatchId {
    type Err = ParseMatchIdError;

    /// Parses exactly 32 hex digits, either case; no sign, prefix or dashes.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // `from_str_radix` alone would also take a leading `+`.
        if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ParseMatchIdError);
        }
        u128::from_str_radix(s, 16)
            .map(Self)
            .map_err(|_| ParseMatchIdError)
    }
}

/// Where new [`MatchId`]s come from. The matchmaker is pure, so the caller
/// supplies the randomness: the server implements this over a CSPRNG
/// (128 random bits per id), tests over a counter.
///
/// Any `FnMut() -> MatchId` closure is an `IdSource`.
pub trait IdSource {
    /// A fresh id that no active match uses.
    fn next_match_id(&mut self) -> MatchId;
}

impl<F> IdSource for F
where
    F: FnMut() -> MatchId,
{
    fn next_match_id(&mut self) -> MatchId {
        self()
    }
}
