//! Two real `Peer`s in one process, wired together directly: descriptions
//! and candidates are passed in memory (no signalling server), media goes
//! through a real TURN relay on loopback. Used by the `peer_*` tests.
// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

use std::net::IpAddr;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use voicemeet_core::audio::{
    AudioIo as _, AudioSink, AudioSource, CallAudio, MemorySink, PacedIo, ReceiveStats, Receiver,
    SAMPLE_RATE, SendStats, ToneSource, capture_queue, dominant_frequency, receive_task, send_task,
    tone_energy_fraction,
};
use voicemeet_core::backend::IceServer;
use voicemeet_core::peer::{
    CandidateInit, Peer, PeerConfig, PeerEvent, RemoteAudio, RemoteCandidate, Role, Sdp,
};
use voicemeet_core::proto::privacy::{
    Address, CandidateType, Transport, check_sdp, parse_candidate,
};

/// Bound on any one phase of a call on loopback (connecting, restarting,
/// hearing audio). Loopback needs milliseconds; this turns a hang into a
/// failure, with room for a busy 2-core machine.
pub const PHASE_TIMEOUT: Duration = Duration::from_secs(20);

/// The tone each side sends.
pub const OFFERER_TONE: f64 = 440.0;
pub const ANSWERER_TONE: f64 = 660.0;

/// How much received audio the frequency check looks at: one second.
pub const CHECKED_SAMPLES: usize = SAMPLE_RATE as usize;

/// One side of a call and everything it reported.
pub struct Side {
    pub name: &'static str,
    pub peer: Peer,
    events: mpsc::Receiver<PeerEvent>,
    /// Every local candidate emitted, with its generation.
    pub candidates: Vec<(CandidateInit, u32)>,
    /// What the *other* side did with each of this side's candidates.
    pub delivered: Vec<(u32, RemoteCandidate)>,
    pub gathering_complete: Vec<u32>,
    pub connected: usize,
    pub connected_at: Vec<Instant>,
    pub disconnected: usize,
    pub failed: usize,
    pub connect_timeouts: Vec<(Instant, Duration)>,
    pub privacy_violations: usize,
    pub remote_audio: Option<RemoteAudio>,
    /// Candidates not forwarded yet (held back by the test).
    pending: Vec<(CandidateInit, u32)>,
}

impl Side {
    pub async fn new(name: &'static str, config: PeerConfig) -> Self {
        let (peer, events) = Peer::new(config).await.expect("peer");
        Self {
            name,
            peer,
            events,
            candidates: Vec::new(),
            delivered: Vec::new(),
            gathering_complete: Vec::new(),
            connected: 0,
            connected_at: Vec::new(),
            disconnected: 0,
            failed: 0,
            connect_timeouts: Vec::new(),
            privacy_violations: 0,
            remote_audio: None,
            pending: Vec::new(),
        }
    }

    fn record(&mut self, event: PeerEvent) {
        match event {
            PeerEvent::LocalCandidate {
                candidate,
                generation,
            } => {
                self.candidates.push((candidate.clone(), generation));
                self.pending.push((candidate, generation));
            }
            PeerEvent::GatheringComplete { generation } => self.gathering_complete.push(generation),
            PeerEvent::Connected => {
                self.connected += 1;
                self.connected_at.push(Instant::now());
            }
            PeerEvent::Disconnected => self.disconnected += 1,
            PeerEvent::Failed => self.failed += 1,
            PeerEvent::ConnectTimeout { after } => {
                self.connect_timeouts.push((Instant::now(), after));
            }
            PeerEvent::RemoteAudio(remote) => self.remote_audio = Some(remote),
            PeerEvent::PrivacyViolation { .. } => self.privacy_violations += 1,
            other => panic!("{}: unexpected event {other:?}", self.name),
        }
    }

    /// Waits for the next event and records it.
    pub async fn next_event(&mut self) {
        let event = tokio::time::timeout(PHASE_TIMEOUT, self.events.recv())
            .await
            .unwrap_or_else(|_| panic!("{}: no event within {PHASE_TIMEOUT:?}", self.name))
            .unwrap_or_else(|| panic!("{}: event stream ended", self.name));
        self.record(event);
    }

    /// Waits until this side has emitted a candidate of `generation` that
    /// was not forwarded yet, and takes it out of the pending list.
    pub async fn take_candidate(&mut self, generation: u32) -> CandidateInit {
        loop {
            if let Some(at) = self.pending.iter().position(|(_, g)| *g == generation) {
                return self.pending.remove(at).0;
            }
            self.next_event().await;
        }
    }
}

/// Hands `candidate` of `generation` from `from` to `to`, recording the
/// outcome on `from`.
pub async fn deliver(
    from: &mut Side,
    to: &mut Side,
    candidate: CandidateInit,
    generation: u32,
) -> RemoteCandidate {
    let outcome = to
        .peer
        .add_remote_candidate(candidate, generation)
        .await
        .expect("add_remote_candidate");
    from.delivered.push((generation, outcome.clone()));
    outcome
}

async fn forward_pending(from: &mut Side, to: &mut Side) {
    for (candidate, generation) in std::mem::take(&mut from.pending) {
        deliver(from, to, candidate, generation).await;
    }
}

/// Runs both sides' event streams, forwarding every new candidate to the
/// other side, until `done` holds; panics after [`PHASE_TIMEOUT`].
pub async fn pump_until(a: &mut Side, b: &mut Side, done: impl Fn(&Side, &Side) -> bool) {
    let deadline = tokio::time::Instant::now() + PHASE_TIMEOUT;
    loop {
        forward_pending(a, b).await;
        forward_pending(b, a).await;
        if done(a, b) {
            return;
        }
        enum From {
            A(Option<PeerEvent>),
            B(Option<PeerEvent>),
        }
        let event = tokio::select! {
            event = a.events.recv() => From::A(event),
            event = b.events.recv() => From::B(event),
            () = tokio::time::sleep_until(deadline) => {
                panic!("condition not met within {PHASE_TIMEOUT:?}");
            }
        };
        match event {
            From::A(Some(event)) => a.record(event),
            From::B(Some(event)) => b.record(event),
            From::A(None) | From::B(None) => panic!("an event stream ended"),
        }
    }
}

/// Like [`pump_until`] for a fixed time, without the timeout panic.
pub async fn pump_for(a: &mut Side, b: &mut Side, duration: Duration) {
    let until = Instant::now() + duration;
    pump_until_or(a, b, until, |_, _| false).await;
}

/// Pumps until `done` holds or `until` passes; returns whether `done` held.
pub async fn pump_until_or(
    a: &mut Side,
    b: &mut Side,
    until: Instant,
    done: impl Fn(&Side, &Side) -> bool,
) -> bool {
    let deadline = tokio::time::Instant::from_std(until);
    loop {
        forward_pending(a, b).await;
        forward_pending(b, a).await;
        if done(a, b) {
            return true;
        }
        let event = tokio::select! {
            event = a.events.recv() => Some((true, event)),
            event = b.events.recv() => Some((false, event)),
            () = tokio::time::sleep_until(deadline) => None,
        };
        match event {
            None => return false,
            Some((true, Some(event))) => a.record(event),
            Some((false, Some(event))) => b.record(event),
            Some((_, None)) => panic!("an event stream ended"),
        }
    }
}

/// Timings of one negotiation.
#[derive(Debug, Clone, Copy)]
pub struct Timings {
    /// From `create_offer` to the offerer's `Connected`.
    pub offer_to_offerer_connected: Duration,
    /// From `create_offer` to the answerer's `Connected`.
    pub offer_to_answerer_connected: Duration,
    /// From applying the answer to the offerer's `Connected`.
    pub answer_to_offerer_connected: Duration,
}

/// The offer/answer exchange of `generation` (0, or an ICE restart),
/// delivering one candidate each way *before* the receiving side has the
/// remote description of that generation, to exercise the buffering. Then
/// pumps until both sides report one more `Connected`.
pub async fn negotiate(a: &mut Side, b: &mut Side, restart: bool) -> Timings {
    let connected_before = (a.connected, b.connected);
    let started = Instant::now();
    let offer = if restart {
        a.peer.restart_ice().await.expect("restart offer")
    } else {
        a.peer.create_offer(false).await.expect("offer")
    };
    let generation = offer.generation;
    assert_sdp_private(&offer, a.peer.relay_ips());

    // The offerer's first candidate of this generation reaches the answerer
    // before the offer does.
    let early = a.take_candidate(generation).await;
    let outcome = deliver(a, b, early, generation).await;
    assert_eq!(
        outcome,
        RemoteCandidate::Buffered,
        "a candidate before its offer waits"
    );

    let answer = b.peer.accept_offer(offer).await.expect("answer");
    assert_eq!(answer.generation, generation);
    assert_sdp_private(&answer, b.peer.relay_ips());

    // And the answerer's first candidate reaches the offerer before the
    // answer does.
    let early = b.take_candidate(generation).await;
    let outcome = deliver(b, a, early, generation).await;
    assert_eq!(
        outcome,
        RemoteCandidate::Buffered,
        "a candidate before its answer waits"
    );

    let answered = Instant::now();
    a.peer.accept_answer(answer).await.expect("accept answer");
    pump_until(a, b, |a, b| {
        a.connected > connected_before.0 && b.connected > connected_before.1
    })
    .await;
    let a_at = *a.connected_at.last().expect("connected");
    let b_at = *b.connected_at.last().expect("connected");
    Timings {
        offer_to_offerer_connected: a_at - started,
        offer_to_answerer_connected: b_at - started,
        answer_to_offerer_connected: a_at.saturating_duration_since(answered),
    }
}

/// The SDP passes the privacy check against the relay IPs and has no
/// candidate but relay ones.
pub fn assert_sdp_private(sdp: &Sdp, relay_ips: &[IpAddr]) {
    let text = sdp.text.expose();
    check_sdp(text, relay_ips).expect("local SDP passes the privacy check");
    for line in text.lines() {
        if let Some(candidate) = line.strip_prefix("a=")
            && candidate.starts_with("candidate:")
        {
            assert_relay_only(candidate, relay_ips);
        }
    }
    assert!(text.contains("useinbandfec=1"), "Opus with in-band FEC");
    assert!(text.contains("opus/48000"), "Opus at 48 kHz");
}

/// A candidate line is a UDP relay candidate on a relay IP, with no local
/// address anywhere in it.
pub fn assert_relay_only(line: &str, relay_ips: &[IpAddr]) {
    let parsed = parse_candidate(line).expect("well-formed candidate");
    assert_eq!(parsed.kind, CandidateType::Relay, "only relay candidates");
    assert_eq!(parsed.transport, Transport::Udp);
    match parsed.address.expose() {
        Address::Ip(ip) => assert!(relay_ips.contains(ip), "candidate on a relay IP"),
        Address::Mdns(_) | Address::Hostname(_) => panic!("candidate address is a name"),
    }
    if let Some(related) = &parsed.related_address {
        assert!(
            matches!(related.expose(), Address::Ip(ip) if ip.is_unspecified()),
            "raddr must not be a local address"
        );
    }
    assert_eq!(parsed.related_port.unwrap_or(0), 0, "rport scrubbed");
}

/// Every candidate either side emitted is relay-only, and nothing failed
/// the privacy gate.
pub fn assert_all_candidates_private(a: &Side, b: &Side) {
    for side in [a, b] {
        assert!(
            !side.candidates.is_empty(),
            "{} emitted candidates",
            side.name
        );
        for (candidate, _) in &side.candidates {
            assert_relay_only(candidate.candidate.expose(), side.peer.relay_ips());
            assert_eq!(candidate.sdp_mid, None);
            assert_eq!(candidate.sdp_mline_index, Some(0));
        }
        assert_eq!(
            side.privacy_violations, 0,
            "{}: privacy violations",
            side.name
        );
    }
}

/// Records what is played from the first audible sample on: the playout
/// runs from the start of the call, with silence until audio arrives.
#[derive(Clone, Default)]
pub struct AudibleSink {
    heard: MemorySink,
}

impl AudioSink for AudibleSink {
    fn write_frame(&mut self, samples: &[i16]) -> Result<(), voicemeet_core::Error> {
        let start = if self.heard.is_empty() {
            match samples.iter().position(|s| s.unsigned_abs() > 64) {
                Some(first) => first,
                None => return Ok(()),
            }
        } else {
            0
        };
        self.heard.write_frame(&samples[start..])
    }
}

/// A tone out, what is heard into an [`AudibleSink`].
struct ToneIo {
    freq: f64,
    heard: AudibleSink,
}

impl PacedIo for ToneIo {
    fn source(&self) -> Box<dyn AudioSource> {
        Box::new(ToneSource::new(self.freq))
    }

    fn sink(&self) -> Box<dyn AudioSink> {
        Box::new(self.heard.clone())
    }
}

/// The audio tasks of one side.
pub struct Audio {
    pub heard: MemorySink,
    pub send: JoinHandle<Result<SendStats, voicemeet_core::Error>>,
    pub receiver: Receiver,
    pub receive: Option<JoinHandle<()>>,
    pub cancel: CancellationToken,
}

impl Audio {
    /// Starts sending a tone of `freq` from `side` right away (frames before
    /// the connection is up are dropped by the track).
    pub fn start_sending(side: &Side, freq: f64) -> Self {
        let cancel = CancellationToken::new();
        let (capture, frames) = capture_queue();
        let receiver = Receiver::new(None).expect("decoder");
        let heard = AudibleSink::default();
        ToneIo {
            freq,
            heard: heard.clone(),
        }
        .start(CallAudio {
            capture,
            playout: receiver.playout(),
            cancel: cancel.clone(),
        })
        .expect("paced audio starts");
        let send = tokio::spawn(send_task(
            frames,
            side.peer.local_audio(),
            Default::default(),
            None,
            cancel.clone(),
        ));
        Self {
            heard: heard.heard,
            send,
            receiver,
            receive: None,
            cancel,
        }
    }

    /// Starts receiving once the side has the remote track.
    pub fn start_receiving(&mut self, side: &Side) {
        let remote = side.remote_audio.clone().expect("remote audio track");
        self.receive = Some(tokio::spawn(receive_task(
            remote,
            self.receiver.clone(),
            self.cancel.clone(),
        )));
    }

    /// Stops both tasks and returns their stats.
    pub async fn stop(self) -> (SendStats, ReceiveStats) {
        self.cancel.cancel();
        let sent = self.send.await.expect("send task").expect("send stats");
        if let Some(task) = self.receive {
            task.await.expect("receive task");
        }
        (sent, self.receiver.stats())
    }
}

/// Waits (pumping events) until `audio` has heard `samples` samples past
/// `from`; returns how long that took.
pub async fn hear(
    a: &mut Side,
    b: &mut Side,
    audio: &Audio,
    from: usize,
    samples: usize,
) -> Duration {
    let started = Instant::now();
    while audio.heard.len() < from + samples {
        assert!(
            started.elapsed() < PHASE_TIMEOUT,
            "heard only {} of {} samples",
            audio.heard.len().saturating_sub(from),
            samples
        );
        // The sink fills from its own task; keep the peers' events moving
        // meanwhile.
        pump_for(a, b, Duration::from_millis(20)).await;
    }
    started.elapsed()
}

/// The received audio's dominant frequency is `freq`, and it holds most of
/// the energy.
pub fn assert_tone(name: &str, samples: &[i16], freq: f64) {
    let found =
        dominant_frequency(samples, SAMPLE_RATE).unwrap_or_else(|| panic!("{name}: heard silence"));
    assert!(
        (found - freq).abs() < 3.0,
        "{name}: expected {freq} Hz, heard {found} Hz"
    );
    let purity = tone_energy_fraction(samples, SAMPLE_RATE, freq);
    assert!(
        purity > 0.8,
        "{name}: {freq} Hz is only {purity:.2} of the energy"
    );
}

/// Credentials with the password replaced.
pub fn with_wrong_password(servers: &[IceServer]) -> Vec<IceServer> {
    servers
        .iter()
        .map(|s| IceServer {
            urls: s.urls.clone(),
            username: s.username.clone(),
            credential: "not-the-password".to_owned().into(),
        })
        .collect()
}

pub fn config(servers: Vec<IceServer>, role: Role) -> PeerConfig {
    PeerConfig::new(servers, role)
}

/// Samples skipped at the start of received audio before checking it: the
/// codec's start-up and the first packets' ramp.
pub const SETTLE_SAMPLES: usize = SAMPLE_RATE as usize / 5;

/// What [`tone_call`] measured.
#[derive(Debug)]
pub struct CallReport {
    pub first: Timings,
    pub offer_to_first_audio: Duration,
    pub restart: Option<RestartReport>,
    pub offerer_sent: SendStats,
    pub answerer_sent: SendStats,
    pub offerer_received: ReceiveStats,
    pub answerer_received: ReceiveStats,
}

/// What the ICE restart part of [`tone_call`] measured.
#[derive(Debug)]
pub struct RestartReport {
    pub timings: Timings,
}

/// A whole call between an offerer using `offerer_servers` and an answerer
/// using `answerer_servers`: negotiate (with early candidates), hear the
/// other's tone for a second on each side (440 Hz one way, 660 Hz the
/// other), optionally restart ICE mid-call and hear a second more, and
/// check every candidate either side emitted.
pub async fn tone_call(
    offerer_servers: Vec<IceServer>,
    answerer_servers: Vec<IceServer>,
    restart: bool,
) -> CallReport {
    let mut a = Side::new("offerer", config(offerer_servers, Role::Offerer)).await;
    let mut b = Side::new("answerer", config(answerer_servers, Role::Answerer)).await;
    let mut a_audio = Audio::start_sending(&a, OFFERER_TONE);
    let mut b_audio = Audio::start_sending(&b, ANSWERER_TONE);

    let started = Instant::now();
    let first = negotiate(&mut a, &mut b, false).await;
    pump_until(&mut a, &mut b, |a, b| {
        a.remote_audio.is_some() && b.remote_audio.is_some()
    })
    .await;
    a_audio.start_receiving(&a);
    b_audio.start_receiving(&b);
    hear(&mut a, &mut b, &a_audio, 0, 1).await;
    let offer_to_first_audio = started.elapsed();
    let want = SETTLE_SAMPLES + CHECKED_SAMPLES;
    hear(&mut a, &mut b, &a_audio, 0, want).await;
    hear(&mut a, &mut b, &b_audio, 0, want).await;
    assert_tone(
        "offerer",
        &a_audio.heard.samples()[SETTLE_SAMPLES..want],
        ANSWERER_TONE,
    );
    assert_tone(
        "answerer",
        &b_audio.heard.samples()[SETTLE_SAMPLES..want],
        OFFERER_TONE,
    );

    let restart = if restart {
        let old_from_b = b.candidates[0].clone();
        let timings = negotiate(&mut a, &mut b, true).await;
        assert_eq!(a.peer.generation(), 1);
        assert_eq!(b.peer.generation(), 1);
        // A late candidate of the old generation is dropped.
        let outcome = deliver(&mut b, &mut a, old_from_b.0, old_from_b.1).await;
        assert_eq!(outcome, RemoteCandidate::Stale);
        let (a_now, b_now) = (a_audio.heard.len(), b_audio.heard.len());
        hear(&mut a, &mut b, &a_audio, a_now, CHECKED_SAMPLES).await;
        hear(&mut a, &mut b, &b_audio, b_now, CHECKED_SAMPLES).await;
        let a_heard = a_audio.heard.samples_since(a_now);
        let b_heard = b_audio.heard.samples_since(b_now);
        assert_tone(
            "offerer after restart",
            &a_heard[..CHECKED_SAMPLES],
            ANSWERER_TONE,
        );
        assert_tone(
            "answerer after restart",
            &b_heard[..CHECKED_SAMPLES],
            OFFERER_TONE,
        );
        assert!(a.gathering_complete.contains(&1) || a.candidates.iter().any(|(_, g)| *g == 1));
        Some(RestartReport { timings })
    } else {
        None
    };

    assert_all_candidates_private(&a, &b);
    for side in [&a, &b] {
        assert!(
            side.gathering_complete.contains(&0),
            "{}: gathering of gen 0 completed",
            side.name
        );
        assert!(
            side.connect_timeouts.is_empty(),
            "{}: no connect timeout",
            side.name
        );
        assert_eq!(side.failed, 0, "{}: never failed", side.name);
    }
    let (offerer_sent, offerer_received) = a_audio.stop().await;
    let (answerer_sent, answerer_received) = b_audio.stop().await;
    a.peer.close().await.expect("close");
    b.peer.close().await.expect("close");
    CallReport {
        first,
        offer_to_first_audio,
        restart,
        offerer_sent,
        answerer_sent,
        offerer_received,
        answerer_received,
    }
}

/// Prints what a call measured, for the test log.
pub fn print_report(relay: &str, report: &CallReport) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "[{relay}] offer->connected: offerer {:.1} ms, answerer {:.1} ms; answer->connected {:.1} ms; offer->first audio {:.1} ms",
        ms(report.first.offer_to_offerer_connected),
        ms(report.first.offer_to_answerer_connected),
        ms(report.first.answer_to_offerer_connected),
        ms(report.offer_to_first_audio),
    );
    if let Some(restart) = &report.restart {
        println!(
            "[{relay}] ICE restart: restart offer->connected offerer {:.1} ms, answerer {:.1} ms",
            ms(restart.timings.offer_to_offerer_connected),
            ms(restart.timings.offer_to_answerer_connected),
        );
    }
    println!(
        "[{relay}] offerer sent {:?} received {:?}",
        report.offerer_sent, report.offerer_received
    );
    println!(
        "[{relay}] answerer sent {:?} received {:?}",
        report.answerer_sent, report.answerer_received
    );
}
