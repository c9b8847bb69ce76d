//! The matchmaking queue: tap one button, get paired with a random stranger.
//!
//! [`Matchmaker`] is a pure, deterministic state machine. The local server
//! keeps one behind one lock, so every `handle_*` call is atomic, and tells
//! users what each call returns; production mirrors the same rules in SQL
//! (one transaction per call). Time is an argument and randomness comes from
//! the caller's [`IdSource`], so tests replay it exactly.
//!
//! Start at [`Matchmaker::handle_join`].
//!
//! # A user's states
//!
//! ```text
//!         join, nobody compatible waits
//!   Idle ────────────────────────────────▶ Waiting
//!    ▲ ◀──── leave / disconnect / expire ────┘ │
//!    │ │                                       │ a compatible user joins
//!    │ │ join, someone compatible waits        ▼
//!    │ └─────────────────────────────────▶ Matched
//!    │                                         │ end / report / disconnect (either
//!    └─────────────────────────────────────────┘ side), or join: ends, then as Idle
//! ```
//!
//! Nobody is ever requeued on their own: a user whose partner left is Idle
//! and is told so ([`PartnerLeft`]); their client decides whether to search
//! again.
//!
//! # The rules, and the failures they rule out
//!
//! - A join pairs the joiner with the **longest-waiting compatible** user
//!   (FIFO). Compatible means a different user with whom neither ever
//!   reported the other. So the queue never holds two users who could be
//!   matched: nobody waits while a possible partner waits too.
//! - Every call is idempotent where a retry or a race can repeat it: joining
//!   while waiting keeps the user's place; leaving when not waiting does
//!   nothing; hanging up a match that just ended (both sides at once) is not
//!   an error.
//! - A user is in at most one place: waiting, or in exactly one match.
//!   Joining while in a match ends it ([`EndReason::Skipped`]) and tells the
//!   partner; a disconnect removes the user from the queue *and* ends their
//!   match, so no ghost is ever matched or left on the line.
//! - Waiting has a deadline ([`Matchmaker::handle_expire`]), so a user the
//!   server lost track of cannot block the queue, and nobody waits forever
//!   without being told.
//! - A user may report the partner of their most recent match even after it
//!   ended (the abuser hung up first); the pair is never matched again.
//!
//! Rematching a pair who merely skipped each other is allowed: with few
//! users online it is the only match there is.
//!
//! # Cost
//!
//! The queue is a `VecDeque` of entries plus a map from each waiting user to
//! their live entry; leaving only removes the map entry, and dead entries
//! are dropped when they reach the front or by an occasional compaction, so
//! leaving is O(1) amortized. A join scans from the front for the first
//! compatible user, and every user it passes is one the joiner is blocked
//! with: without reports the queue holds at most one user (any two waiting
//! users would have been matched), and in general every two waiting users
//! are blocked with each other. So a join is O(1) amortized, plus one step
//! per waiting user the joiner reported or was reported by. So the scan
//! past blocked users is bounded by the data and needs no cap; a cap would
//! let two compatible users wait side by side.
//! Everything else is O(1) expected, except [`Matchmaker::handle_expire`]:
//! O(1) plus one step per expired user. All maps are `HashMap`s; reported
//! pairs are a `HashSet` of ordered pairs and are kept forever.

mod error;
mod event;
mod ids;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet, VecDeque};

pub use error::{Error, ParseMatchIdError};
pub use event::{EndReason, Event, Expired, JoinOutcome, JoinStatus, Match, PartnerLeft, Role};
pub use ids::{IdSource, MatchId, UserId};

/// How many ids already in use an [`IdSource`] may return in a row before it
/// is declared broken. A 128-bit random source repeats one of `n` active ids
/// with probability about `n / 2^128`, so a retry never happens in practice.
const MAX_ID_DRAWS: usize = 4;

/// The queue is compacted once it holds this many dead entries more than
/// live ones; below that, dead entries wait to be dropped at the front.
/// Keeps compaction, which costs one pass over the queue, rare.
const COMPACT_SLACK: usize = 64;

/// The matchmaking queue and the matches it made. See the
/// [module docs](self) for the rules and their costs.
#[derive(Debug, Clone)]
pub struct Matchmaker {
    max_wait_ms: u64,
    /// Waiting users in join order. An entry is live while `waiting` maps
    /// its user to its ticket; other entries are dead and skipped.
    queue: VecDeque<Entry>,
    waiting: HashMap<UserId, Waiting>,
    matches: HashMap<MatchId, Match>,
    match_of: HashMap<UserId, MatchId>,
    /// Each user's most recent ended match, so a hang-up that crossed the
    /// partner's is not an error and a report can come after the end.
    /// Dropped when the user disconnects.
    last_ended: HashMap<UserId, Ended>,
    /// Pairs never to match again, smaller id first.
    blocked: HashSet<(UserId, UserId)>,
    next_ticket: u64,
}

#[derive(Debug, Clone)]
struct Entry {
    user: UserId,
    ticket: u64,
}

#[derive(Debug, Clone, Copy)]
struct Waiting {
    ticket: u64,
    joined_at_ms: u64,
}

#[derive(Debug, Clone)]
struct Ended {
    match_id: MatchId,
    partner: UserId,
}

impl Matchmaker {
    /// An empty matchmaker whose users wait at most `max_wait_ms` before
    /// [`handle_expire`](Self::handle_expire) gives up on them.
    pub fn new(max_wait_ms: u64) -> Self {
        Self {
            max_wait_ms,
            queue: VecDeque::new(),
            waiting: HashMap::new(),
            matches: HashMap::new(),
            match_of: HashMap::new(),
            last_ended: HashMap::new(),
            blocked: HashSet::new(),
            next_ticket: 0,
        }
    }

    /// The user searches for a partner at `now_ms`.
    ///
    /// - Already waiting: nothing changes ([`JoinStatus::AlreadyWaiting`]).
    /// - In a match: it ends first, with [`EndReason::Skipped`] for the
    ///   partner ([`JoinOutcome::ended`]), then the search goes on.
    /// - Someone compatible waits: the longest-waiting one becomes the
    ///   offerer of a new match with an id from `ids`, and the joiner its
    ///   answerer ([`JoinStatus::Matched`]).
    /// - Otherwise the user waits at the back of the line
    ///   ([`JoinStatus::Queued`]).
    ///
    /// # Panics
    ///
    /// If `ids` returns ids of active matches several times in a row: it is
    /// not random, which is a bug in the caller.
    pub fn handle_join(
        &mut self,
        user: UserId,
        now_ms: u64,
        ids: &mut impl IdSource,
    ) -> JoinOutcome {
        if self.waiting.contains_key(&user) {
            return JoinOutcome {
                status: JoinStatus::AlreadyWaiting,
                ended: None,
            };
        }
        let ended = self.end_current(&user, None, EndReason::Skipped);
        let status = match self.take_partner_for(&user) {
            Some(partner) => JoinStatus::Matched(self.start_match(partner, user, now_ms, ids)),
            None => {
                self.enqueue(user, now_ms);
                JoinStatus::Queued
            }
        };
        JoinOutcome { status, ended }
    }

    /// The user stops searching. Returns whether they were waiting; leaving
    /// when not waiting does nothing, and a match the user is in stays.
    pub fn handle_leave(&mut self, user: &UserId) -> bool {
        let was_waiting = self.waiting.remove(user).is_some();
        if was_waiting {
            self.drop_dead_entries();
        }
        was_waiting
    }

    /// The user's connection dropped: they leave the queue and their match,
    /// whose partner is returned to be told ([`EndReason::Disconnected`]).
    /// Also forgets their most recent match, so the matchmaker keeps nothing
    /// for users who are gone except the pairs they reported.
    pub fn handle_disconnect(&mut self, user: &UserId) -> Option<PartnerLeft> {
        self.handle_leave(user);
        let left = self.end_current(user, None, EndReason::Disconnected);
        self.last_ended.remove(user);
        left
    }

    /// The user hangs up `match_id` (or skips it; to skip *and* search
    /// again, call [`handle_join`](Self::handle_join) instead). Returns the
    /// partner to tell ([`EndReason::Hangup`]), or `None` if it is the user's
    /// most recent match and already ended, e.g. both hung up at once.
    /// Neither user is requeued.
    ///
    /// # Errors
    ///
    /// [`Error::NotInMatch`] if the user is not in that match and it is not
    /// their most recent one.
    pub fn handle_end(
        &mut self,
        user: &UserId,
        match_id: MatchId,
    ) -> Result<Option<PartnerLeft>, Error> {
        if let Some(left) = self.end_current(user, Some(match_id), EndReason::Hangup) {
            return Ok(Some(left));
        }
        match self.last_ended.get(user) {
            Some(ended) if ended.match_id == match_id => Ok(None),
            _ => Err(Error::NotInMatch),
        }
    }

    /// The user reports their partner in `match_id`: the two are never
    /// matched again. If the match is still on it ends, and the partner is
    /// returned to be told ([`EndReason::Reported`]); a report of the user's
    /// most recent match after it ended blocks the pair and returns `None`.
    /// Reporting twice is harmless. Neither user is requeued.
    ///
    /// # Errors
    ///
    /// [`Error::NotInMatch`] if the user is not in that match and it is not
    /// their most recent one.
    pub fn handle_report(
        &mut self,
        reporter: &UserId,
        match_id: MatchId,
    ) -> Result<Option<PartnerLeft>, Error> {
        if let Some(left) = self.end_current(reporter, Some(match_id), EndReason::Reported) {
            self.blocked.insert(ordered(reporter, &left.notify));
            return Ok(Some(left));
        }
        match self.last_ended.get(reporter) {
            Some(ended) if ended.match_id == match_id => {
                let pair = ordered(reporter, &ended.partner);
                self.blocked.insert(pair);
                Ok(None)
            }
            _ => Err(Error::NotInMatch),
        }
    }

    /// Gives up on everyone who has waited `max_wait_ms` or longer at
    /// `now_ms`, oldest first; each must be told. Call it at
    /// [`next_expiry_ms`](Self::next_expiry_ms).
    ///
    /// `now_ms` is expected not to go backwards between calls: the queue is
    /// in join order, so this stops at the first user still within the
    /// deadline.
    pub fn handle_expire(&mut self, now_ms: u64) -> Vec<Expired> {
        let mut expired = Vec::new();
        while let Some(front) = self.queue.front() {
            if let Some(waiting) = self.live(front) {
                let waited_ms = now_ms.saturating_sub(waiting.joined_at_ms);
                if waited_ms < self.max_wait_ms {
                    break;
                }
                self.waiting.remove(&front.user);
                expired.push(Expired {
                    user: front.user.clone(),
                    waited_ms,
                });
            }
            self.queue.pop_front();
        }
        expired
    }

    /// When the longest-waiting user reaches the maximum wait, i.e. when to
    /// call [`handle_expire`](Self::handle_expire) next; `None` if nobody
    /// waits.
    pub fn next_expiry_ms(&self) -> Option<u64> {
        self.queue
            .iter()
            .find_map(|entry| self.live(entry))
            .map(|waiting| waiting.joined_at_ms.saturating_add(self.max_wait_ms))
    }

    /// Whether the user is in the queue.
    pub fn is_waiting(&self, user: &UserId) -> bool {
        self.waiting.contains_key(user)
    }

    /// The match the user is in, if any.
    pub fn current_match(&self, user: &UserId) -> Option<&Match> {
        self.matches.get(self.match_of.get(user)?)
    }

    /// The active match with this id, if any: e.g. to check that a user may
    /// join its room.
    pub fn get_match(&self, id: MatchId) -> Option<&Match> {
        self.matches.get(&id)
    }

    /// How many users wait.
    pub fn waiting_len(&self) -> usize {
        self.waiting.len()
    }

    /// The waiting users, longest-waiting first.
    pub fn waiting_users(&self) -> impl Iterator<Item = &UserId> {
        self.queue
            .iter()
            .filter(|entry| self.live(entry).is_some())
            .map(|entry| &entry.user)
    }

    /// The active matches, in no particular order.
    pub fn active_matches(&self) -> impl ExactSizeIterator<Item = &Match> {
        self.matches.values()
    }

    /// Whether `a` and `b` were ever reported by either one, so they are
    /// never matched.
    pub fn is_blocked(&self, a: &UserId, b: &UserId) -> bool {
        self.blocked.contains(&ordered(a, b))
    }

    /// Checks the state's consistency; a debug helper for tests, O(size).
    /// Holds after every call:
    ///
    /// - every waiting user has exactly one live queue entry, in join order;
    /// - nobody is both waiting and in a match;
    /// - every match's two users are distinct and map back to it, and every
    ///   user mapped to a match is in it, so nobody is in two matches;
    /// - reported pairs are stored smaller id first, and never one user twice.
    ///
    /// # Errors
    ///
    /// A description of the first violation found.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut live = HashSet::new();
        let mut last_ticket = None;
        for entry in &self.queue {
            if last_ticket.is_some_and(|last| entry.ticket <= last) {
                return Err(format!("queue out of order at {:?}", entry.user));
            }
            last_ticket = Some(entry.ticket);
            if self.live(entry).is_some() && !live.insert(&entry.user) {
                return Err(format!("{:?} has two live entries", entry.user));
            }
        }
        if live.len() != self.waiting.len() {
            return Err(format!(
                "{} users wait but {} have a live entry",
                self.waiting.len(),
                live.len()
            ));
        }
        if let Some(user) = self.waiting.keys().find(|u| self.match_of.contains_key(*u)) {
            return Err(format!("{user:?} is both waiting and matched"));
        }
        for (id, m) in &self.matches {
            if m.id != *id {
                return Err(format!("{id:?} is stored as {:?}", m.id));
            }
            if m.offerer == m.answerer {
                return Err(format!("{:?} is matched with themselves", m.offerer));
            }
            for user in m.users() {
                if self.match_of.get(user) != Some(id) {
                    return Err(format!("{user:?} of {id:?} does not map back to it"));
                }
            }
        }
        for (user, id) in &self.match_of {
            if self.matches.get(id).and_then(|m| m.role_of(user)).is_none() {
                return Err(format!("{user:?} maps to {id:?} but is not in it"));
            }
        }
        if let Some((a, b)) = self.blocked.iter().find(|(a, b)| a >= b) {
            return Err(format!("blocked pair ({a:?}, {b:?}) is not ordered"));
        }
        Ok(())
    }

    /// The user's waiting state if `entry` is their live entry.
    fn live(&self, entry: &Entry) -> Option<&Waiting> {
        self.waiting
            .get(&entry.user)
            .filter(|waiting| waiting.ticket == entry.ticket)
    }

    fn enqueue(&mut self, user: UserId, now_ms: u64) {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        let waiting = Waiting {
            ticket,
            joined_at_ms: now_ms,
        };
        self.waiting.insert(user.clone(), waiting);
        self.queue.push_back(Entry { user, ticket });
    }

    /// Removes and returns the longest-waiting user compatible with `user`.
    fn take_partner_for(&mut self, user: &UserId) -> Option<UserId> {
        self.drop_dead_entries();
        let position = self.queue.iter().position(|entry| {
            self.live(entry).is_some() && entry.user != *user && !self.is_blocked(user, &entry.user)
        })?;
        // Costs at most `position` moves, which the scan already paid for.
        let entry = self.queue.remove(position)?;
        self.waiting.remove(&entry.user);
        Some(entry.user)
    }

    fn start_match(
        &mut self,
        offerer: UserId,
        answerer: UserId,
        now_ms: u64,
        ids: &mut impl IdSource,
    ) -> Match {
        let id = (0..MAX_ID_DRAWS)
            .map(|_| ids.next_match_id())
            .find(|id| !self.matches.contains_key(id))
            .unwrap_or_else(|| {
                panic!("IdSource returned {MAX_ID_DRAWS} ids in use in a row; it is not random")
            });
        let m = Match {
            id,
            offerer,
            answerer,
            created_at_ms: now_ms,
        };
        self.match_of.insert(m.offerer.clone(), id);
        self.match_of.insert(m.answerer.clone(), id);
        self.matches.insert(id, m.clone());
        m
    }

    /// Ends the match `user` is in on their behalf, if they are in one and
    /// (when `only` is given) it is that one; returns its partner to tell.
    fn end_current(
        &mut self,
        user: &UserId,
        only: Option<MatchId>,
        reason: EndReason,
    ) -> Option<PartnerLeft> {
        let match_id = *self.match_of.get(user)?;
        if only.is_some_and(|only| only != match_id) {
            return None;
        }
        let notify = self.matches.get(&match_id)?.partner_of(user)?.clone();
        self.matches.remove(&match_id);
        self.match_of.remove(user);
        self.match_of.remove(&notify);
        let ended = |partner: &UserId| Ended {
            match_id,
            partner: partner.clone(),
        };
        self.last_ended.insert(user.clone(), ended(&notify));
        self.last_ended.insert(notify.clone(), ended(user));
        Some(PartnerLeft {
            notify,
            match_id,
            reason,
        })
    }

    /// Drops dead entries from the front, and compacts the queue when dead
    /// entries pile up behind a long-waiting user.
    fn drop_dead_entries(&mut self) {
        while self.queue.front().is_some_and(|e| self.live(e).is_none()) {
            self.queue.pop_front();
        }
        if self.queue.len() > 2 * self.waiting.len() + COMPACT_SLACK {
            let waiting = &self.waiting;
            self.queue
                .retain(|e| waiting.get(&e.user).is_some_and(|w| w.ticket == e.ticket));
        }
    }
}

/// The key of a reported pair: the smaller id first.
fn ordered(a: &UserId, b: &UserId) -> (UserId, UserId) {
    if a <= b {
        (a.clone(), b.clone())
    } else {
        (b.clone(), a.clone())
    }
}
