//! Properties of the matchmaker under random sequences of calls by up to 50
//! users: its invariants hold after every step, no two users who could be
//! matched are ever left waiting together, and every outcome equals that of
//! a naive model written straight from the rules (a `Vec` scanned in full).

use std::collections::{HashMap, HashSet};

use proptest::collection::vec;
use proptest::prelude::*;
use voicemeet_proto::matchmaking::{
    EndReason, Error, Expired, JoinOutcome, JoinStatus, Match, MatchId, Matchmaker, PartnerLeft,
    UserId,
};

const MAX_WAIT_MS: u64 = 1_000;
const MAX_USERS: usize = 50;

/// Which match id an `end` or `report` names.
#[derive(Debug, Clone, Copy)]
enum Pick {
    /// The user's current match, if any, else their most recent one.
    Mine,
    /// Any id handed out so far (index modulo their number).
    Any(usize),
    /// An id never handed out.
    Unknown,
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Join(usize),
    Leave(usize),
    Disconnect(usize),
    End(usize, Pick),
    Report(usize, Pick),
    Advance(u64),
    Expire,
}

fn pick() -> impl Strategy<Value = Pick> {
    prop_oneof![
        6 => Just(Pick::Mine),
        2 => any::<usize>().prop_map(Pick::Any),
        1 => Just(Pick::Unknown),
    ]
}

fn op(users: usize) -> impl Strategy<Value = Op> {
    let u = 0..users;
    prop_oneof![
        10 => u.clone().prop_map(Op::Join),
        2 => u.clone().prop_map(Op::Leave),
        2 => u.clone().prop_map(Op::Disconnect),
        3 => (u.clone(), pick()).prop_map(|(u, p)| Op::End(u, p)),
        3 => (u, pick()).prop_map(|(u, p)| Op::Report(u, p)),
        3 => (0..1_500_u64).prop_map(Op::Advance),
        1 => Just(Op::Expire),
    ]
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    (2..=MAX_USERS).prop_flat_map(|users| vec(op(users), 1..300))
}

fn user(i: usize) -> UserId {
    UserId::new(format!("user-{i:02}"))
}

/// Ids from a counter, starting at 1; 0 is never handed out.
fn counter(last: &mut u128) -> impl FnMut() -> MatchId + '_ {
    move || {
        *last += 1;
        MatchId::from_u128(*last)
    }
}

/// The rules, implemented as plainly as possible.
#[derive(Default)]
struct Model {
    /// Waiting users and when they joined, in join order.
    queue: Vec<(UserId, u64)>,
    matches: Vec<Match>,
    last_ended: HashMap<UserId, (MatchId, UserId)>,
    blocked: HashSet<(UserId, UserId)>,
}

fn pair(a: &UserId, b: &UserId) -> (UserId, UserId) {
    (a.clone().min(b.clone()), a.clone().max(b.clone()))
}

impl Model {
    fn current(&self, u: &UserId) -> Option<&Match> {
        self.matches
            .iter()
            .find(|m| m.offerer == *u || m.answerer == *u)
    }

    fn end(&mut self, u: &UserId, only: Option<MatchId>, reason: EndReason) -> Option<PartnerLeft> {
        let i = self.matches.iter().position(|m| {
            (m.offerer == *u || m.answerer == *u) && only.is_none_or(|id| id == m.id)
        })?;
        let m = self.matches.remove(i);
        let partner = if m.offerer == *u {
            m.answerer
        } else {
            m.offerer
        };
        self.last_ended.insert(u.clone(), (m.id, partner.clone()));
        self.last_ended.insert(partner.clone(), (m.id, u.clone()));
        Some(PartnerLeft {
            notify: partner,
            match_id: m.id,
            reason,
        })
    }

    fn join(&mut self, u: UserId, now_ms: u64, ids: &mut impl FnMut() -> MatchId) -> JoinOutcome {
        if self.queue.iter().any(|(w, _)| *w == u) {
            return JoinOutcome {
                status: JoinStatus::AlreadyWaiting,
                ended: None,
            };
        }
        let ended = self.end(&u, None, EndReason::Skipped);
        let found = self
            .queue
            .iter()
            .position(|(w, _)| *w != u && !self.blocked.contains(&pair(w, &u)));
        let status = match found {
            Some(i) => {
                let (offerer, _) = self.queue.remove(i);
                let m = Match {
                    id: ids(),
                    offerer,
                    answerer: u,
                    created_at_ms: now_ms,
                };
                self.matches.push(m.clone());
                JoinStatus::Matched(m)
            }
            None => {
                self.queue.push((u, now_ms));
                JoinStatus::Queued
            }
        };
        JoinOutcome { status, ended }
    }

    fn leave(&mut self, u: &UserId) -> bool {
        let before = self.queue.len();
        self.queue.retain(|(w, _)| w != u);
        self.queue.len() != before
    }

    fn disconnect(&mut self, u: &UserId) -> Option<PartnerLeft> {
        self.leave(u);
        let left = self.end(u, None, EndReason::Disconnected);
        self.last_ended.remove(u);
        left
    }

    fn hang_up(&mut self, u: &UserId, id: MatchId) -> Result<Option<PartnerLeft>, Error> {
        if let Some(left) = self.end(u, Some(id), EndReason::Hangup) {
            return Ok(Some(left));
        }
        match self.last_ended.get(u) {
            Some((last, _)) if *last == id => Ok(None),
            _ => Err(Error::NotInMatch),
        }
    }

    fn report(&mut self, u: &UserId, id: MatchId) -> Result<Option<PartnerLeft>, Error> {
        if let Some(left) = self.end(u, Some(id), EndReason::Reported) {
            self.blocked.insert(pair(u, &left.notify));
            return Ok(Some(left));
        }
        match self.last_ended.get(u) {
            Some((last, partner)) if *last == id => {
                self.blocked.insert(pair(u, partner));
                Ok(None)
            }
            _ => Err(Error::NotInMatch),
        }
    }

    fn expire(&mut self, now_ms: u64) -> Vec<Expired> {
        let (gone, stay) = self
            .queue
            .drain(..)
            .partition(|(_, joined)| now_ms - joined >= MAX_WAIT_MS);
        self.queue = stay;
        gone.into_iter()
            .map(|(user, joined)| Expired {
                user,
                waited_ms: now_ms - joined,
            })
            .collect::<Vec<_>>()
    }
}

/// The match id `pick` stands for, given the model's state and the last id
/// it handed out.
fn name(model: &Model, last_id: u128, pick: Pick, u: &UserId) -> MatchId {
    match pick {
        Pick::Mine => model
            .current(u)
            .map(|m| m.id)
            .or_else(|| model.last_ended.get(u).map(|(id, _)| *id))
            .unwrap_or(MatchId::from_u128(0)),
        Pick::Any(i) if last_id > 0 => MatchId::from_u128(1 + (i as u128) % last_id),
        Pick::Any(_) | Pick::Unknown => MatchId::from_u128(0),
    }
}

/// Checks everything observable after a step.
fn check(mm: &Matchmaker, model: &Model, users: &[UserId]) -> Result<(), TestCaseError> {
    if let Err(violation) = mm.check_invariants() {
        return Err(TestCaseError::fail(violation));
    }
    let waiting: Vec<&UserId> = mm.waiting_users().collect();
    let expected: Vec<&UserId> = model.queue.iter().map(|(u, _)| u).collect();
    prop_assert_eq!(&waiting, &expected);
    prop_assert_eq!(mm.waiting_len(), waiting.len());
    for (i, a) in waiting.iter().enumerate() {
        for b in &waiting[i + 1..] {
            prop_assert!(
                mm.is_blocked(a, b),
                "{:?} and {:?} could be matched but both wait",
                a,
                b
            );
        }
    }
    prop_assert_eq!(mm.active_matches().len(), model.matches.len());
    for u in users {
        prop_assert_eq!(mm.current_match(u), model.current(u));
        prop_assert_eq!(mm.is_waiting(u), model.queue.iter().any(|(w, _)| w == u));
    }
    prop_assert_eq!(
        mm.next_expiry_ms(),
        model.queue.first().map(|(_, joined)| joined + MAX_WAIT_MS)
    );
    Ok(())
}

proptest! {
    #[test]
    fn matches_the_model_and_never_strands_a_pair(ops in ops()) {
        let users: Vec<UserId> = (0..MAX_USERS).map(user).collect();
        let mut mm = Matchmaker::new(MAX_WAIT_MS);
        let mut model = Model::default();
        let (mut mm_last_id, mut model_last_id) = (0, 0);
        let mut now_ms = 0;
        for op in ops {
            match op {
                Op::Join(i) => {
                    let got = mm.handle_join(users[i].clone(), now_ms, &mut counter(&mut mm_last_id));
                    let want = model.join(users[i].clone(), now_ms, &mut counter(&mut model_last_id));
                    prop_assert_eq!(got, want);
                }
                Op::Leave(i) => {
                    prop_assert_eq!(mm.handle_leave(&users[i]), model.leave(&users[i]));
                }
                Op::Disconnect(i) => {
                    prop_assert_eq!(mm.handle_disconnect(&users[i]), model.disconnect(&users[i]));
                }
                Op::End(i, pick) => {
                    let id = name(&model, model_last_id, pick, &users[i]);
                    prop_assert_eq!(mm.handle_end(&users[i], id), model.hang_up(&users[i], id));
                }
                Op::Report(i, pick) => {
                    let id = name(&model, model_last_id, pick, &users[i]);
                    prop_assert_eq!(mm.handle_report(&users[i], id), model.report(&users[i], id));
                }
                Op::Advance(ms) => now_ms += ms,
                Op::Expire => {
                    prop_assert_eq!(mm.handle_expire(now_ms), model.expire(now_ms));
                }
            }
            check(&mm, &model, &users)?;
        }
        // Nobody waits forever: whoever is left waiting is blocked with
        // everyone else left waiting, so no join could have paired them.
        let waiting: Vec<&UserId> = mm.waiting_users().collect();
        for (i, a) in waiting.iter().enumerate() {
            for b in &waiting[i + 1..] {
                prop_assert!(mm.is_blocked(a, b));
            }
        }
    }
}
