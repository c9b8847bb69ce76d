//! Table-driven scripts: each case is a list of commands and the outcome
//! each must print. Match ids come from a counter and print as `m1`, `m2`…;
//! the invariants and the "no compatible pair waits" rule are checked after
//! every step.

use super::*;

const MAX_WAIT_MS: u64 = 1_000;

/// A matchmaker in virtual time with counter ids.
struct Sim {
    mm: Matchmaker,
    now_ms: u64,
    last_id: u128,
}

fn user(name: &str) -> UserId {
    UserId::from(name)
}

fn match_id(name: &str) -> MatchId {
    let n = name
        .strip_prefix('m')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("match ids are written m<n>, not {name}"));
    MatchId::from_u128(n)
}

fn show_id(id: MatchId) -> String {
    format!("m{}", id.to_u128())
}

fn show_match(m: &Match) -> String {
    format!(
        "{}: {} offers to {} at {}",
        show_id(m.id),
        m.offerer.as_str(),
        m.answerer.as_str(),
        m.created_at_ms
    )
}

fn show_left(left: &PartnerLeft) -> String {
    let reason = match left.reason {
        EndReason::Hangup => "hangup",
        EndReason::Skipped => "skipped",
        EndReason::Disconnected => "disconnected",
        EndReason::Reported => "reported",
    };
    format!(
        "{} told {} {reason}",
        left.notify.as_str(),
        show_id(left.match_id)
    )
}

fn show_ended(result: Result<Option<PartnerLeft>, Error>) -> String {
    match result {
        Ok(Some(left)) => show_left(&left),
        Ok(None) => "already ended".into(),
        Err(Error::NotInMatch) => "error: not in match".into(),
    }
}

fn or_dash(s: String) -> String {
    if s.is_empty() { "-".into() } else { s }
}

impl Sim {
    fn new() -> Self {
        Self {
            mm: Matchmaker::new(MAX_WAIT_MS),
            now_ms: 0,
            last_id: 0,
        }
    }

    fn run(&mut self, command: &str) -> String {
        let words: Vec<&str> = command.split_whitespace().collect();
        match words[..] {
            ["join", u] => {
                let last_id = &mut self.last_id;
                let mut ids = || {
                    *last_id += 1;
                    MatchId::from_u128(*last_id)
                };
                let outcome = self.mm.handle_join(user(u), self.now_ms, &mut ids);
                let status = match &outcome.status {
                    JoinStatus::AlreadyWaiting => "already waiting".to_owned(),
                    JoinStatus::Queued => "queued".to_owned(),
                    JoinStatus::Matched(m) => show_match(m),
                };
                match &outcome.ended {
                    Some(left) => format!("{}; {status}", show_left(left)),
                    None => status,
                }
            }
            ["leave", u] => match self.mm.handle_leave(&user(u)) {
                true => "left".into(),
                false => "not waiting".into(),
            },
            ["disconnect", u] => or_dash(
                self.mm
                    .handle_disconnect(&user(u))
                    .as_ref()
                    .map(show_left)
                    .unwrap_or_default(),
            ),
            ["end", u, m] => show_ended(self.mm.handle_end(&user(u), match_id(m))),
            ["report", u, m] => show_ended(self.mm.handle_report(&user(u), match_id(m))),
            ["wait", ms] => {
                self.now_ms += ms.parse::<u64>().expect("wait takes milliseconds");
                String::new()
            }
            ["expire"] => or_dash(
                self.mm
                    .handle_expire(self.now_ms)
                    .iter()
                    .map(|e| format!("{} after {}", e.user.as_str(), e.waited_ms))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            ["deadline"] => self
                .mm
                .next_expiry_ms()
                .map_or_else(|| "-".into(), |t| t.to_string()),
            ["waiting"] => or_dash(
                self.mm
                    .waiting_users()
                    .map(UserId::as_str)
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            ["match", u] => self
                .mm
                .current_match(&user(u))
                .map_or_else(|| "-".into(), show_match),
            ["matches"] => self.mm.active_matches().len().to_string(),
            ["blocked", a, b] => self.mm.is_blocked(&user(a), &user(b)).to_string(),
            _ => panic!("unknown command {command:?}"),
        }
    }

    fn check(&self) -> Result<(), String> {
        self.mm.check_invariants()?;
        if self.mm.waiting_len() != self.mm.waiting_users().count() {
            return Err("waiting_len disagrees with waiting_users".into());
        }
        let waiting: Vec<&UserId> = self.mm.waiting_users().collect();
        for (i, a) in waiting.iter().enumerate() {
            for b in &waiting[i + 1..] {
                if !self.mm.is_blocked(a, b) {
                    return Err(format!("{a:?} and {b:?} could be matched but both wait"));
                }
            }
        }
        Ok(())
    }
}

type Case = (&'static str, &'static [(&'static str, &'static str)]);

/// Makes `a` and `b` a reported pair: matched as m1, then reported.
const A_REPORTS_B: &[(&str, &str)] = &[
    ("join a", "queued"),
    ("join b", "m1: a offers to b at 0"),
    ("report a m1", "b told m1 reported"),
];

const CASES: &[Case] = &[
    (
        "the first user waits",
        &[("join a", "queued"), ("waiting", "a"), ("match a", "-")],
    ),
    (
        "the user who waited offers, the joiner answers",
        &[
            ("join a", "queued"),
            ("wait 5", ""),
            ("join b", "m1: a offers to b at 5"),
            ("waiting", "-"),
            ("match a", "m1: a offers to b at 5"),
            ("match b", "m1: a offers to b at 5"),
            ("matches", "1"),
        ],
    ),
    (
        "a double join is idempotent and never matches a user with themselves",
        &[
            ("join a", "queued"),
            ("join a", "already waiting"),
            ("waiting", "a"),
            ("join b", "m1: a offers to b at 0"),
        ],
    ),
    (
        "leaving is idempotent and never touches a match",
        &[
            ("leave a", "not waiting"),
            ("join a", "queued"),
            ("leave a", "left"),
            ("leave a", "not waiting"),
            ("join b", "queued"),
            ("join a", "m1: b offers to a at 0"),
            ("leave a", "not waiting"),
            ("match b", "m1: b offers to a at 0"),
        ],
    ),
    (
        "a disconnect while waiting leaves the queue, no ghost is matched",
        &[
            ("join a", "queued"),
            ("disconnect a", "-"),
            ("waiting", "-"),
            ("join b", "queued"),
            ("disconnect nobody", "-"),
        ],
    ),
    (
        "a disconnect while matched tells the partner, who is not requeued",
        &[
            ("join a", "queued"),
            ("join b", "m1: a offers to b at 0"),
            ("disconnect b", "a told m1 disconnected"),
            ("match a", "-"),
            ("waiting", "-"),
            ("matches", "0"),
            ("disconnect b", "-"),
        ],
    ),
    (
        "both sides disconnecting at once leaves nobody stuck",
        &[
            ("join a", "queued"),
            ("join b", "m1: a offers to b at 0"),
            ("disconnect a", "b told m1 disconnected"),
            ("disconnect b", "-"),
            ("join c", "queued"),
            ("join a", "m2: c offers to a at 0"),
        ],
    ),
    (
        "a hang-up tells the partner and requeues nobody; crossed hang-ups are fine",
        &[
            ("join a", "queued"),
            ("join b", "m1: a offers to b at 0"),
            ("end a m1", "b told m1 hangup"),
            ("waiting", "-"),
            ("match b", "-"),
            ("end b m1", "already ended"),
            ("end a m1", "already ended"),
        ],
    ),
    (
        "ending a match you are not in is an error and changes nothing",
        &[
            ("join a", "queued"),
            ("join b", "m1: a offers to b at 0"),
            ("join c", "queued"),
            ("end c m1", "error: not in match"),
            ("end a m2", "error: not in match"),
            ("report c m1", "error: not in match"),
            ("match a", "m1: a offers to b at 0"),
            ("waiting", "c"),
        ],
    ),
    (
        "a reported pair is never matched again, even after both requeue",
        &[
            ("join a", "queued"),
            ("join b", "m1: a offers to b at 0"),
            ("report a m1", "b told m1 reported"),
            ("blocked b a", "true"),
            ("waiting", "-"),
            ("join b", "queued"),
            ("join a", "queued"),
            ("join a", "already waiting"),
            ("waiting", "b,a"),
            ("join c", "m2: b offers to c at 0"),
            ("join d", "m3: a offers to d at 0"),
            ("end c m2", "b told m2 hangup"),
            ("end d m3", "a told m3 hangup"),
            ("join a", "queued"),
            ("join b", "queued"),
            ("waiting", "a,b"),
        ],
    ),
    (
        "the reported user's side is blocked too",
        &[
            ("join a", "queued"),
            ("join b", "m1: a offers to b at 0"),
            ("report b m1", "a told m1 reported"),
            ("join a", "queued"),
            ("join b", "queued"),
        ],
    ),
    (
        "a report after the partner hung up still blocks the pair",
        &[
            ("join a", "queued"),
            ("join b", "m1: a offers to b at 0"),
            ("end b m1", "a told m1 hangup"),
            ("report a m1", "already ended"),
            ("report a m1", "already ended"),
            ("join a", "queued"),
            ("join b", "queued"),
        ],
    ),
    (
        "a report of the previous partner works from inside the next match",
        &[
            ("join a", "queued"),
            ("join b", "m1: a offers to b at 0"),
            ("join c", "queued"),
            ("join b", "a told m1 skipped; m2: c offers to b at 0"),
            ("report a m1", "already ended"),
            ("match b", "m2: c offers to b at 0"),
            ("end b m2", "c told m2 hangup"),
            ("join a", "queued"),
            ("join b", "queued"),
        ],
    ),
    (
        "a disconnect forgets the user's last match",
        &[
            ("join a", "queued"),
            ("join b", "m1: a offers to b at 0"),
            ("end b m1", "a told m1 hangup"),
            ("disconnect a", "-"),
            ("report a m1", "error: not in match"),
            ("end a m1", "error: not in match"),
            ("report b m1", "already ended"),
        ],
    ),
    (
        "joining while matched ends the old match first",
        &[
            ("join a", "queued"),
            ("join b", "m1: a offers to b at 0"),
            ("join a", "b told m1 skipped; queued"),
            ("match b", "-"),
            ("waiting", "a"),
            ("join c", "m2: a offers to c at 0"),
            ("end b m1", "already ended"),
        ],
    ),
    (
        "joining while matched can go straight into a new match",
        &[
            ("join a", "queued"),
            ("join b", "m1: a offers to b at 0"),
            ("join c", "queued"),
            ("wait 3", ""),
            ("join a", "b told m1 skipped; m2: c offers to a at 3"),
            ("matches", "1"),
        ],
    ),
    (
        "a pair who only skipped each other may meet again",
        &[
            ("join a", "queued"),
            ("join b", "m1: a offers to b at 0"),
            ("join a", "b told m1 skipped; queued"),
            ("join b", "m2: a offers to b at 0"),
        ],
    ),
    (
        "the longest-waiting compatible user is picked, skipping blocked ones",
        &[
            // a-b and a-c are reported pairs; b-c is not.
            ("join a", "queued"),
            ("join b", "m1: a offers to b at 0"),
            ("report a m1", "b told m1 reported"),
            ("join a", "queued"),
            ("join c", "m2: a offers to c at 0"),
            ("report c m2", "a told m2 reported"),
            ("join a", "queued"),
            ("wait 1", ""),
            ("join b", "queued"),
            ("join c", "m3: b offers to c at 1"),
            ("waiting", "a"),
            ("join d", "m4: a offers to d at 1"),
        ],
    ),
    (
        "a user who leaves and rejoins goes to the back of the line",
        &[
            ("join a", "queued"),
            ("join b", "m1: a offers to b at 0"),
            ("report a m1", "b told m1 reported"),
            ("join a", "queued"),
            ("join b", "queued"),
            ("leave a", "left"),
            ("join a", "queued"),
            ("waiting", "b,a"),
            ("join c", "m2: b offers to c at 0"),
        ],
    ),
    (
        "users who waited the maximum expire, oldest first, and are told",
        &[
            ("join a", "queued"),
            ("join b", "m1: a offers to b at 0"),
            ("report a m1", "b told m1 reported"),
            ("deadline", "-"),
            ("join a", "queued"),
            ("deadline", "1000"),
            ("wait 400", ""),
            ("join b", "queued"),
            ("wait 599", ""),
            ("expire", "-"),
            ("wait 1", ""),
            ("expire", "a after 1000"),
            ("waiting", "b"),
            ("deadline", "1400"),
            ("wait 1000", ""),
            ("expire", "b after 1600"),
            ("expire", "-"),
            ("deadline", "-"),
            ("waiting", "-"),
        ],
    ),
    (
        "expiry passes over users who left, and spares matched ones",
        &[
            ("join a", "queued"),
            ("join b", "m1: a offers to b at 0"),
            ("report a m1", "b told m1 reported"),
            ("join a", "queued"),
            ("join b", "queued"),
            ("leave a", "left"),
            ("deadline", "1000"),
            ("join c", "m2: b offers to c at 0"),
            ("join d", "queued"),
            ("wait 5000", ""),
            ("expire", "d after 5000"),
            ("match b", "m2: b offers to c at 0"),
        ],
    ),
];

#[test]
fn scripted_cases() {
    for (name, steps) in CASES {
        let mut sim = Sim::new();
        for (i, (command, expected)) in steps.iter().enumerate() {
            let got = sim.run(command);
            assert_eq!(
                got, *expected,
                "case {name:?}, step {i} `{command}`: expected {expected:?}, got {got:?}"
            );
            if let Err(violation) = sim.check() {
                panic!("case {name:?}, step {i} `{command}`: {violation}");
            }
        }
    }
}

#[test]
fn reused_prefix_blocks_the_pair() {
    let mut sim = Sim::new();
    for (command, expected) in A_REPORTS_B {
        assert_eq!(sim.run(command), *expected, "{command}");
    }
    assert_eq!(sim.run("blocked a b"), "true");
    assert_eq!(sim.run("blocked a c"), "false");
    assert_eq!(sim.run("blocked a a"), "false");
}

#[test]
fn join_outcome_events_come_ended_first() {
    let mut mm = Matchmaker::new(MAX_WAIT_MS);
    let mut n = 0;
    let mut ids = || {
        n += 1;
        MatchId::from_u128(n)
    };
    let (a, b, c) = (user("a"), user("b"), user("c"));
    assert_eq!(
        mm.handle_join(a.clone(), 0, &mut ids).into_events().count(),
        0
    );
    let first: Vec<Event> = mm
        .handle_join(b.clone(), 0, &mut ids)
        .into_events()
        .collect();
    let [Event::Matched(m1)] = &first[..] else {
        panic!("expected one match, got {first:?}");
    };
    assert_eq!(m1.role_of(&a), Some(Role::Offerer));
    assert_eq!(m1.role_of(&b), Some(Role::Answerer));
    assert_eq!(m1.role_of(&c), None);
    assert_eq!(m1.partner_of(&b), Some(&a));
    assert_eq!(mm.get_match(m1.id), Some(m1));

    let _ = mm.handle_join(c.clone(), 0, &mut ids);
    let events: Vec<Event> = mm
        .handle_join(a.clone(), 0, &mut ids)
        .into_events()
        .collect();
    assert_eq!(
        events,
        [
            Event::from(PartnerLeft {
                notify: b,
                match_id: m1.id,
                reason: EndReason::Skipped,
            }),
            Event::from(Match {
                id: MatchId::from_u128(2),
                offerer: c,
                answerer: a,
                created_at_ms: 0,
            }),
        ]
    );
    assert_eq!(mm.get_match(m1.id), None);
}

#[test]
#[should_panic(expected = "not random")]
fn an_id_source_that_repeats_active_ids_is_a_bug() {
    let mut mm = Matchmaker::new(MAX_WAIT_MS);
    let mut same = || MatchId::from_u128(7);
    for name in ["a", "b", "c", "d"] {
        let _ = mm.handle_join(user(name), 0, &mut same);
    }
}

#[test]
fn an_id_source_may_repeat_an_ended_id() {
    let mut mm = Matchmaker::new(MAX_WAIT_MS);
    let mut same = || MatchId::from_u128(7);
    let _ = mm.handle_join(user("a"), 0, &mut same);
    let _ = mm.handle_join(user("b"), 0, &mut same);
    let _ = mm.handle_end(&user("a"), MatchId::from_u128(7));
    let _ = mm.handle_join(user("c"), 0, &mut same);
    let outcome = mm.handle_join(user("d"), 0, &mut same);
    assert!(matches!(outcome.status, JoinStatus::Matched(_)));
    assert_eq!(mm.check_invariants(), Ok(()));
}

#[test]
fn dead_entries_do_not_pile_up() {
    // a and b are a reported pair, so b's entries pile up behind a.
    let mut sim = Sim::new();
    for (command, expected) in A_REPORTS_B {
        assert_eq!(sim.run(command), *expected, "{command}");
    }
    assert_eq!(sim.run("join a"), "queued");
    for _ in 0..10 * COMPACT_SLACK {
        assert_eq!(sim.run("join b"), "queued");
        assert_eq!(sim.run("leave b"), "left");
    }
    assert!(
        sim.mm.queue.len() <= 2 + COMPACT_SLACK,
        "{}",
        sim.mm.queue.len()
    );
    assert_eq!(sim.check(), Ok(()));
    assert_eq!(sim.run("join c"), "m2: a offers to c at 0");
}

#[test]
fn match_ids_print_in_full_but_debug_in_part() {
    let id = MatchId::from_u128(0x0123_4567_89ab_cdef_0011_2233_4455_6677);
    assert_eq!(id.to_string(), "0123456789abcdef0011223344556677");
    assert_eq!(format!("{id:?}"), "MatchId(01234567…)");
    assert_eq!("0123456789ABCDEF0011223344556677".parse(), Ok(id));
    assert_eq!(
        MatchId::from_bytes([
            0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55,
            0x66, 0x77
        ]),
        id
    );
    for bad in [
        "",
        "0123456789abcdef001122334455667",
        "0123456789abcdef00112233445566770",
        "+123456789abcdef0011223344556677",
        "0123456789abcdef001122334455667g",
        "01234567-89ab-cdef-0011-223344556677",
    ] {
        assert_eq!(bad.parse::<MatchId>(), Err(ParseMatchIdError), "{bad:?}");
    }
}
