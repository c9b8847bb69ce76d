//! Two signalling sessions over a simulated Realtime broadcast channel that
//! loses, duplicates and reorders messages, in virtual time. Every run is
//! seeded, so a failure replays exactly.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use voicemeet_proto::Redacted;
use voicemeet_proto::signal::{
    self, Body, CandidateInit, Config, Delivered, Kind, Output, Session,
};

const CALL: &str = "0123456789abcdef0123456789abcdef";
const RELAY_A: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));
const RELAY_B: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 9));
const SDP: &str = "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n";

/// A 64-bit linear congruential generator (Knuth's MMIX constants): all
/// the randomness a lossy channel needs, without a dependency.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn percent(&mut self, p: u64) -> bool {
        self.next() % 100 < p
    }

    fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    A,
    B,
}

/// How the channel misbehaves.
#[derive(Debug, Clone, Copy)]
struct Impairment {
    loss_percent: u64,
    duplicate_percent: u64,
    min_delay_ms: u64,
    max_delay_ms: u64,
}

const LOSSY: Impairment = Impairment {
    loss_percent: 30,
    duplicate_percent: 10,
    min_delay_ms: 5,
    max_delay_ms: 250,
};

const BLACK_HOLE: Impairment = Impairment {
    loss_percent: 100,
    ..LOSSY
};

struct Net {
    rng: Lcg,
    impairment: Impairment,
    /// (arrival, tiebreak) → (to, encoded payload). Random delays reorder.
    in_flight: BTreeMap<(Duration, u64), (Side, String)>,
    counter: u64,
}

impl Net {
    fn new(seed: u64, impairment: Impairment) -> Self {
        Self {
            rng: Lcg(seed),
            impairment,
            in_flight: BTreeMap::new(),
            counter: 0,
        }
    }

    fn broadcast(&mut self, now: Duration, to: Side, envelope: &signal::Envelope) {
        let text = signal::encode(envelope).expect("sessions only emit valid envelopes");
        let imp = self.impairment;
        let copies = if self.rng.percent(imp.duplicate_percent) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            if self.rng.percent(imp.loss_percent) {
                continue;
            }
            let delay = Duration::from_millis(self.rng.between(imp.min_delay_ms, imp.max_delay_ms));
            self.counter += 1;
            self.in_flight
                .insert((now + delay, self.counter), (to, text.clone()));
        }
    }
}

/// One peer: its session plus what it has done and seen.
struct Peer {
    session: Session,
    /// Every reliable message it sent, by seq, as first sent.
    sent: BTreeMap<u64, (u32, Body)>,
    delivered: Vec<Delivered>,
    events: Vec<Output>,
}

impl Peer {
    fn new(relay: IpAddr) -> Self {
        Self {
            session: Session::new(Config::new(CALL, vec![relay])).expect("valid call id"),
            sent: BTreeMap::new(),
            delivered: Vec::new(),
            events: Vec::new(),
        }
    }

    fn candidate(relay: IpAddr, port: u16) -> CandidateInit {
        CandidateInit::new(
            format!(
                "candidate:{port} 1 udp 16777215 {relay} {port} typ relay raddr 0.0.0.0 rport 40000"
            ),
            Some("0".into()),
            Some(0),
        )
    }
}

/// A scripted action at a time.
enum Action {
    Offer,
    Candidate(u16),
    EndOfCandidates,
    Restart,
    Bye,
}

struct Sim {
    now: Duration,
    net: Net,
    a: Peer,
    b: Peer,
    /// Time-ordered script for each side.
    script: BTreeMap<(Duration, u64), (Side, Action)>,
    /// The answerer answers every offer it is delivered, and gathers two
    /// candidates and ends them 30 ms later.
    answerer_gathers: Vec<Duration>,
}

impl Sim {
    fn new(seed: u64, impairment: Impairment) -> Self {
        Self {
            now: Duration::ZERO,
            net: Net::new(seed, impairment),
            a: Peer::new(RELAY_A),
            b: Peer::new(RELAY_B),
            script: BTreeMap::new(),
            answerer_gathers: Vec::new(),
        }
    }

    fn at(&mut self, ms: u64, side: Side, action: Action) {
        let key = (Duration::from_millis(ms), self.script.len() as u64);
        self.script.insert(key, (side, action));
    }

    fn peer(&mut self, side: Side) -> &mut Peer {
        match side {
            Side::A => &mut self.a,
            Side::B => &mut self.b,
        }
    }

    fn act(&mut self, side: Side, action: Action) {
        let now = self.now;
        let relay = if side == Side::A { RELAY_A } else { RELAY_B };
        let peer = self.peer(side);
        match action {
            Action::Offer => {
                peer.session
                    .send(
                        Body::Offer {
                            sdp: Redacted::new(SDP.into()),
                        },
                        now,
                    )
                    .expect("a clean offer");
            }
            Action::Candidate(port) => peer
                .session
                .queue_candidate(Peer::candidate(relay, port), now)
                .expect("a relay candidate"),
            Action::EndOfCandidates => {
                peer.session.end_of_candidates(now);
            }
            Action::Restart => {
                let next = peer.session.generation() + 1;
                peer.session.set_generation(next).expect("forward");
                peer.session
                    .send(
                        Body::Offer {
                            sdp: Redacted::new(SDP.into()),
                        },
                        now,
                    )
                    .expect("a clean offer");
            }
            Action::Bye => {
                peer.session
                    .send(
                        Body::Bye {
                            reason: "hangup".into(),
                        },
                        now,
                    )
                    .expect("a bye");
            }
        }
    }

    /// Drains both sessions onto the network, as the run loop does.
    fn flush(&mut self) {
        let now = self.now;
        for side in [Side::A, Side::B] {
            let to = if side == Side::A { Side::B } else { Side::A };
            while let Some(envelope) = self.peer(side).session.poll_transmit(now) {
                if envelope.body.kind() != Kind::Ack {
                    let entry = (envelope.generation, envelope.body.clone());
                    self.peer(side).sent.entry(envelope.seq).or_insert(entry);
                }
                self.net.broadcast(now, to, &envelope);
            }
            while let Some(event) = self.peer(side).session.poll_event() {
                self.peer(side).events.push(event);
            }
        }
    }

    fn receive(&mut self, to: Side, text: &str) {
        let now = self.now;
        let value: serde_json::Value = serde_json::from_str(text).expect("JSON");
        let delivered = self
            .peer(to)
            .session
            .handle_payload(&value, now)
            .expect("the channel does not corrupt payloads");
        if let Some(delivered) = delivered {
            if to == Side::B && delivered.body.kind() == Kind::Offer {
                self.b
                    .session
                    .send(
                        Body::Answer {
                            sdp: Redacted::new(SDP.into()),
                        },
                        now,
                    )
                    .expect("a clean answer");
                self.answerer_gathers.push(now);
            }
            self.peer(to).delivered.push(delivered);
        }
    }

    /// Runs until nothing is scheduled, in flight or pending, or `limit`.
    fn run(&mut self, limit: Duration) {
        loop {
            self.flush();
            let gather = self
                .answerer_gathers
                .first()
                .map(|t| *t + Duration::from_millis(5));
            let next = [
                self.script.keys().next().map(|k| k.0),
                self.net.in_flight.keys().next().map(|k| k.0),
                self.a.session.poll_timeout(),
                self.b.session.poll_timeout(),
                gather,
            ]
            .into_iter()
            .flatten()
            .min();
            let Some(next) = next else {
                return;
            };
            assert!(next <= limit, "still busy at {next:?}");
            self.now = self.now.max(next);
            let now = self.now;
            while let Some(entry) = self.script.first_entry().filter(|e| e.key().0 <= now) {
                let (side, action) = entry.remove();
                self.act(side, action);
            }
            while self
                .answerer_gathers
                .first()
                .is_some_and(|t| *t + Duration::from_millis(5) <= now)
            {
                self.answerer_gathers.remove(0);
                let port = 50_000 + self.b.sent.len() as u16;
                self.act(Side::B, Action::Candidate(port));
                self.act(Side::B, Action::Candidate(port + 1));
                self.act(Side::B, Action::EndOfCandidates);
            }
            while let Some(entry) = self
                .net
                .in_flight
                .first_entry()
                .filter(|e| e.key().0 <= now)
            {
                let (to, text) = entry.remove();
                self.receive(to, &text);
            }
        }
    }
}

/// `receiver` got every message `sender` sent exactly once, except those of
/// generations it had left (counted as stale) and those `sender` reported
/// as given up. Returns whether nothing was given up.
fn assert_exactly_once(sender: &Peer, receiver: &Peer, seed: u64) -> bool {
    let gave_up: Vec<u64> = sender
        .events
        .iter()
        .map(|event| match event {
            Output::GaveUp { seq, .. } => *seq,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    let mut seen = BTreeMap::new();
    for d in &receiver.delivered {
        let first = seen.insert(d.seq, (d.generation, d.body.clone())).is_none();
        assert!(first, "seed {seed}: seq {} delivered twice", d.seq);
    }
    for (seq, sent) in &sender.sent {
        match seen.get(seq) {
            Some(got) => assert_eq!(got, sent, "seed {seed}: seq {seq}"),
            None => assert!(
                gave_up.contains(seq)
                    || (sent.0 < receiver.session.generation() && sent.1.kind() != Kind::Bye),
                "seed {seed}: seq {seq} ({:?}) lost silently",
                sent.1.kind()
            ),
        }
    }
    for seq in seen.keys() {
        assert!(
            sender.sent.contains_key(seq),
            "seed {seed}: seq {seq} was never sent"
        );
    }
    gave_up.is_empty()
}

fn call_script(sim: &mut Sim) {
    sim.at(0, Side::A, Action::Offer);
    for (t, port) in [(3, 1), (4, 2), (30, 3), (70, 4), (71, 5)] {
        sim.at(t, Side::A, Action::Candidate(port));
    }
    sim.at(100, Side::A, Action::EndOfCandidates);
    sim.at(20_000, Side::A, Action::Bye);
}

/// Runs the call script over `impairment` for `seeds`; returns how many
/// runs had a give-up.
fn lossy_calls(impairment: Impairment, seeds: std::ops::RangeInclusive<u64>) -> usize {
    let mut totals = (0, 0, 0);
    let mut runs_with_give_up = 0;
    let runs = seeds.clone().count();
    for seed in seeds {
        let mut sim = Sim::new(seed, impairment);
        call_script(&mut sim);
        sim.run(Duration::from_secs(60));
        let clean =
            assert_exactly_once(&sim.a, &sim.b, seed) & assert_exactly_once(&sim.b, &sim.a, seed);
        if !clean {
            runs_with_give_up += 1;
            continue;
        }
        for peer in [&sim.a, &sim.b] {
            assert!(peer.session.is_idle(), "seed {seed}");
            let stats = peer.session.stats();
            assert_eq!(stats.given_up, 0, "seed {seed}");
            assert_eq!(
                stats.malformed + stats.wrong_call + stats.stale_gen,
                0,
                "seed {seed}"
            );
            totals.0 += stats.retransmissions;
            totals.1 += stats.duplicates;
        }
        // A's offer, its 5 candidates in batches, end of candidates and bye.
        let kinds: Vec<Kind> = sim.b.delivered.iter().map(|d| d.body.kind()).collect();
        for kind in [
            Kind::Offer,
            Kind::Candidates,
            Kind::EndOfCandidates,
            Kind::Bye,
        ] {
            assert!(kinds.contains(&kind), "seed {seed}: {kinds:?}");
        }
        let candidates: usize = sim
            .b
            .delivered
            .iter()
            .map(|d| match &d.body {
                Body::Candidates { list } => list.len(),
                _ => 0,
            })
            .sum();
        assert_eq!(candidates, 5, "seed {seed}");
        // Answer, one batch of two candidates, end of candidates.
        assert_eq!(sim.a.delivered.len(), 3, "seed {seed}");
        totals.2 += sim.a.sent.len();
    }
    // The channel really was hostile, and batching really batched: 5
    // candidates linger into at most 3 envelopes.
    let clean = runs - runs_with_give_up;
    assert!(totals.0 >= clean as u64, "retransmissions: {}", totals.0);
    assert!(totals.2 <= clean * 6, "A sent {} messages", totals.2);
    runs_with_give_up
}

/// At 30 % loss each way, a message and all its acks can all be lost for
/// 13 s: the sender then reports it (and the call ends), but nothing is ever
/// lost silently or delivered twice, and such runs are rare.
#[test]
fn everything_is_delivered_exactly_once_despite_30_percent_loss() {
    let with_give_up = lossy_calls(LOSSY, 1..=300);
    assert!(with_give_up <= 6, "{with_give_up} of 300 runs gave up");
}

/// At 10 % loss each way, nothing is ever given up.
#[test]
fn nothing_is_given_up_at_10_percent_loss() {
    let impairment = Impairment {
        loss_percent: 10,
        ..LOSSY
    };
    assert_eq!(lossy_calls(impairment, 1..=300), 0);
}

#[test]
fn an_ice_restart_mid_setup_drops_only_the_old_generation() {
    let mut runs_with_give_up = 0;
    let mut stale = 0;
    for seed in 1..=200 {
        let mut sim = Sim::new(seed, LOSSY);
        call_script(&mut sim);
        sim.at(150, Side::A, Action::Restart);
        for (t, port) in [(160, 11), (161, 12)] {
            sim.at(t, Side::A, Action::Candidate(port));
        }
        sim.at(200, Side::A, Action::EndOfCandidates);
        sim.run(Duration::from_secs(60));
        let clean =
            assert_exactly_once(&sim.a, &sim.b, seed) & assert_exactly_once(&sim.b, &sim.a, seed);
        if !clean {
            runs_with_give_up += 1;
            continue;
        }
        assert_eq!(sim.a.session.generation(), 1);
        assert_eq!(sim.b.session.generation(), 1, "seed {seed}");
        // The last offer B saw is the restart's, and every message of
        // generation 1 from A arrived.
        let last_offer = sim
            .b
            .delivered
            .iter()
            .rev()
            .find(|d| d.body.kind() == Kind::Offer);
        assert_eq!(last_offer.map(|d| d.generation), Some(1), "seed {seed}");
        for (seq, (generation, _)) in &sim.a.sent {
            if *generation == 1 {
                assert!(
                    sim.b.delivered.iter().any(|d| d.seq == *seq),
                    "seed {seed}: seq {seq}"
                );
            }
        }
        for peer in [&sim.a, &sim.b] {
            assert!(peer.session.is_idle(), "seed {seed}");
            stale += peer.session.stats().stale_gen;
        }
    }
    assert!(
        runs_with_give_up <= 4,
        "{runs_with_give_up} of 200 runs gave up"
    );
    assert!(
        stale > 0,
        "some old-generation messages arrived late and were dropped"
    );
}

#[test]
fn a_dead_channel_ends_in_give_up_events() {
    let mut sim = Sim::new(7, BLACK_HOLE);
    sim.at(0, Side::A, Action::Offer);
    sim.at(1, Side::A, Action::Candidate(1));
    sim.run(Duration::from_secs(60));
    assert_eq!(
        sim.a.events,
        [
            Output::GaveUp {
                seq: 1,
                kind: Kind::Offer
            },
            Output::GaveUp {
                seq: 2,
                kind: Kind::Candidates
            },
        ]
    );
    assert!(
        sim.now <= Duration::from_secs(14),
        "gave up at {:?}",
        sim.now
    );
    assert_eq!(sim.a.session.stats().given_up, 2);
    assert!(sim.b.delivered.is_empty());
}
