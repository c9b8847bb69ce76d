//! What the matchmaker tells its caller: matches made, matches ended, and
//! searches given up. Each `handle_*` method returns its own outcome type;
//! [`Event`] is the one enum they all convert into, for code that fans
//! notifications out to users.

use super::ids::{MatchId, UserId};

/// Which side of the WebRTC negotiation a user takes in a [`Match`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Creates the SDP offer: the user who waited in the queue.
    Offerer,
    /// Answers the offer: the user whose join found the partner.
    Answerer,
}

/// Two users paired for one call.
///
/// Roles: the user who waited longer is the [`offerer`](Self::offerer). A
/// match is made when a join finds someone already waiting, so that is
/// always the waiting user; the joiner is the answerer. Their client has sat
/// idle and ready the longest, so it should be the one to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    /// The match's unguessable id, which also names the pair's private room.
    pub id: MatchId,
    /// The user who waited longer and sends the SDP offer.
    pub offerer: UserId,
    /// The user who joined last and answers.
    pub answerer: UserId,
    /// The caller's clock when the match was made, in milliseconds.
    pub created_at_ms: u64,
}

impl Match {
    /// The role `user` plays in this match, or `None` if they are not in it.
    pub fn role_of(&self, user: &UserId) -> Option<Role> {
        if *user == self.offerer {
            Some(Role::Offerer)
        } else if *user == self.answerer {
            Some(Role::Answerer)
        } else {
            None
        }
    }

    /// The other user of the match, or `None` if `user` is not in it.
    pub fn partner_of(&self, user: &UserId) -> Option<&UserId> {
        match self.role_of(user)? {
            Role::Offerer => Some(&self.answerer),
            Role::Answerer => Some(&self.offerer),
        }
    }

    /// Both users, offerer first.
    pub fn users(&self) -> [&UserId; 2] {
        [&self.offerer, &self.answerer]
    }
}

/// Why a match ended, as told to the user who did not end it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// The partner hung up ([`handle_end`](super::Matchmaker::handle_end)).
    Hangup,
    /// The partner searched for someone new while still in this match
    /// ([`handle_join`](super::Matchmaker::handle_join)).
    Skipped,
    /// The partner's connection dropped
    /// ([`handle_disconnect`](super::Matchmaker::handle_disconnect)).
    Disconnected,
    /// The partner reported the user
    /// ([`handle_report`](super::Matchmaker::handle_report)); the two are
    /// never matched again. The server may show this as a plain hang-up so
    /// as not to tell an abuser they were reported.
    Reported,
}

/// A match ended by one of its users; the other must be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartnerLeft {
    /// The user who stayed and must be told: the partner of whoever ended it.
    pub notify: UserId,
    /// The match that ended.
    pub match_id: MatchId,
    /// What the partner did.
    pub reason: EndReason,
}

/// A user removed from the queue because nobody compatible joined within
/// the matchmaker's maximum wait; they must be told, so nobody waits
/// forever without knowing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    /// The user who is no longer waiting.
    pub user: UserId,
    /// How long they waited, in milliseconds.
    pub waited_ms: u64,
}

/// What a join did for the joiner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinStatus {
    /// The user was already waiting; nothing changed, and they keep their
    /// place in line.
    AlreadyWaiting,
    /// No compatible user was waiting, so the joiner now waits.
    Queued,
    /// The joiner was paired with the longest-waiting compatible user, who
    /// is the match's offerer; the joiner is its answerer. Both must be told.
    Matched(Match),
}

/// The result of [`handle_join`](super::Matchmaker::handle_join).
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "the users in it must be notified"]
pub struct JoinOutcome {
    /// Where the joiner stands now.
    pub status: JoinStatus,
    /// The joiner's previous match, ended because they searched again while
    /// in it ([`EndReason::Skipped`]); its partner must be told.
    pub ended: Option<PartnerLeft>,
}

impl JoinOutcome {
    /// The notifications for other users' sake, in order: the ended match
    /// first, then the new one. `AlreadyWaiting` and `Queued` concern only
    /// the joiner and yield nothing.
    pub fn into_events(self) -> impl Iterator<Item = Event> {
        let matched = match self.status {
            JoinStatus::Matched(m) => Some(Event::Matched(m)),
            JoinStatus::AlreadyWaiting | JoinStatus::Queued => None,
        };
        self.ended
            .map(Event::PartnerLeft)
            .into_iter()
            .chain(matched)
    }
}

/// Everything the matchmaker can ask its caller to tell users about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A match was made: tell the offerer and the answerer, each with their
    /// role and the match id.
    Matched(Match),
    /// A match ended: tell [`PartnerLeft::notify`].
    PartnerLeft(PartnerLeft),
    /// A search gave up: tell [`Expired::user`] that nobody was found.
    Expired(Expired),
}

impl From<Match> for Event {
    fn from(m: Match) -> Self {
        Self::Matched(m)
    }
}

impl From<PartnerLeft> for Event {
    fn from(left: PartnerLeft) -> Self {
        Self::PartnerLeft(left)
    }
}

impl From<Expired> for Event {
    fn from(expired: Expired) -> Self {
        Self::Expired(expired)
    }
}
