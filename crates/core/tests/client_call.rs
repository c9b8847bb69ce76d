//! Two headless strangers, each a real `Client`, matched by the real local
//! backend and talking through its embedded TURN relay: what one sends is
//! heard by the other (checked by frequency, not by bytes arriving), hang-up
//! reaches the other side, and the flow keeps its promises.

mod common;
mod coturn;

use std::sync::Arc;
use std::time::Duration;

use std::net::IpAddr;

use tokio::sync::mpsc;
use voicemeet_core::audio::{
    AudioSink, AudioSource, MemorySink, SAMPLE_RATE, ToneSource, tone_energy_fraction,
};
use voicemeet_core::proto::call::{CallState, EndReason};
use voicemeet_core::proto::phoenix::{BroadcastBody, Message};
use voicemeet_core::proto::signal::{self, Body};
use voicemeet_core::{Client, ClientConfig, ClientEvent};

/// Generous bound for any single step; loopback steps take milliseconds.
const STEP_TIMEOUT: Duration = Duration::from_secs(20);
/// How much audio to collect before judging it: half a second.
const LISTEN_SAMPLES: usize = SAMPLE_RATE as usize / 2;

/// A tone in, memory out.
struct ToneIo {
    freq: f64,
    heard: MemorySink,
}

impl voicemeet_core::audio::PacedIo for ToneIo {
    fn source(&self) -> Box<dyn AudioSource> {
        Box::new(ToneSource::new(self.freq))
    }

    fn sink(&self) -> Box<dyn AudioSink> {
        Box::new(self.heard.clone())
    }
}

struct Stranger {
    client: Client,
    events: mpsc::Receiver<ClientEvent>,
    heard: MemorySink,
}

fn stranger(server: &voicemeet_server::RunningServer, freq: f64) -> Stranger {
    let heard = MemorySink::new();
    let io = Arc::new(ToneIo {
        freq,
        heard: heard.clone(),
    });
    let config = ClientConfig::new(common::backend_config(server), io);
    let (client, events) = Client::start(config).expect("client starts");
    Stranger {
        client,
        events,
        heard,
    }
}

/// Waits for a state, failing on any `Failed` on the way.
async fn wait_for_state(who: &mut Stranger, wanted: impl Fn(&CallState) -> bool) -> CallState {
    let found = tokio::time::timeout(STEP_TIMEOUT, async {
        loop {
            match who.events.recv().await {
                Some(ClientEvent::StateChanged(state)) if wanted(&state) => return state,
                Some(ClientEvent::StateChanged(CallState::Failed { error })) => {
                    panic!("the call failed: {error:?}")
                }
                Some(_) => {}
                None => panic!("the client stopped"),
            }
        }
    })
    .await;
    found.expect("state reached in time")
}

async fn wait_for_audio(heard: &MemorySink, from: usize) -> Vec<i16> {
    tokio::time::timeout(STEP_TIMEOUT, async {
        loop {
            let samples = heard.samples_since(from);
            if samples.len() >= LISTEN_SAMPLES {
                return samples;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("audio arrives in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_strangers_hear_each_other_through_the_embedded_relay_and_hang_up() {
    let server = common::start(common::test_config()).await;
    let relay_ip = server.relay_addr.expect("embedded relay").ip();
    call_and_hang_up(&server, relay_ip).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_strangers_hear_each_other_through_coturn_and_hang_up() {
    let Some(coturn) = coturn::Coturn::start() else {
        return;
    };
    // The backend mints TURN REST credentials for coturn's shared secret,
    // as production mints Cloudflare's.
    let mut config = common::test_config();
    config.turn.mode = voicemeet_server::TurnMode::External {
        urls: vec![coturn.url()],
    };
    config.turn.secret = Some(voicemeet_core::proto::Redacted::new(coturn.secret.clone()));
    let server = common::start(config).await;
    call_and_hang_up(&server, IpAddr::from([127, 0, 0, 1])).await;
}

async fn call_and_hang_up(server: &voicemeet_server::RunningServer, relay_ip: IpAddr) {
    let mut relayed = server.state.realtime.hub().audit();
    let mut alice = stranger(server, 440.0);
    let mut bob = stranger(server, 660.0);

    alice.client.search().await.expect("search");
    wait_for_state(&mut alice, |s| *s == CallState::Searching).await;
    bob.client.search().await.expect("search");

    wait_for_state(&mut alice, |s| *s == CallState::InCall).await;
    wait_for_state(&mut bob, |s| *s == CallState::InCall).await;

    // Skip the first frames (codec warm-up), then judge by content.
    let start_a = alice.heard.len();
    let start_b = bob.heard.len();
    let at_alice = wait_for_audio(&alice.heard, start_a).await;
    let at_bob = wait_for_audio(&bob.heard, start_b).await;
    let bob_tone_at_alice = tone_energy_fraction(&at_alice, SAMPLE_RATE, 660.0);
    let alice_tone_at_bob = tone_energy_fraction(&at_bob, SAMPLE_RATE, 440.0);
    assert!(
        bob_tone_at_alice > 0.8,
        "alice hears bob's 660 Hz: {bob_tone_at_alice:.3}"
    );
    assert!(
        alice_tone_at_bob > 0.8,
        "bob hears alice's 440 Hz: {alice_tone_at_bob:.3}"
    );
    assert!(
        tone_energy_fraction(&at_alice, SAMPLE_RATE, 440.0) < 0.1,
        "alice does not hear herself"
    );

    // Each stream started when the call connected and afresh at most once
    // more, when the stranger's first packet showed they could decrypt it
    // (a decoder joining midway would start muffled).
    for who in [&mut alice, &mut bob] {
        let sent = next_sent(who, |sent| sent.frames > 0).await;
        assert!(
            (1..=2).contains(&sent.fresh_starts),
            "fresh starts: {sent:?}"
        );
    }

    assert_only_relay_addresses(&mut relayed, relay_ip);

    alice.client.hang_up().await.expect("hang up");
    let mine = wait_for_state(&mut alice, |s| matches!(s, CallState::Ended { .. })).await;
    assert_eq!(
        mine,
        CallState::Ended {
            reason: EndReason::YouLeft
        }
    );
    let theirs = wait_for_state(&mut bob, |s| matches!(s, CallState::Ended { .. })).await;
    assert_eq!(
        theirs,
        CallState::Ended {
            reason: EndReason::StrangerLeft
        }
    );
}

/// Every address literal the backend relayed for the call (signalling
/// envelopes: SDP and candidates) is the relay's, every candidate is a relay
/// candidate with an unspecified related address, and none of this machine's
/// own addresses appears anywhere.
fn assert_only_relay_addresses(relayed: &mut mpsc::UnboundedReceiver<Message>, relay_ip: IpAddr) {
    let own_ips = machine_ips();
    let mut envelopes = 0;
    let mut candidates = 0;
    let mut descriptions = 0;
    while let Ok(msg) = relayed.try_recv() {
        let Some(broadcast) = msg.as_broadcast() else {
            continue;
        };
        let BroadcastBody::Json(payload) = &broadcast.body else {
            panic!("signalling is JSON");
        };
        let text = payload.to_string();
        for ip in &own_ips {
            assert!(
                !text.contains(&ip.to_string()),
                "a local address was relayed"
            );
        }
        if broadcast.event != signal::EVENT {
            continue;
        }
        envelopes += 1;
        let envelope = signal::decode_value(payload).expect("a valid envelope");
        match envelope.body {
            Body::Offer { sdp } | Body::Answer { sdp } => {
                descriptions += 1;
                voicemeet_core::proto::privacy::check_sdp(sdp.expose(), &[relay_ip])
                    .expect("SDP carries no address but the relay's");
            }
            Body::Candidates { list } => {
                for candidate in list {
                    candidates += 1;
                    let line = candidate.candidate.expose();
                    assert!(line.contains(" typ relay"), "only relay candidates");
                    assert!(
                        line.contains(" raddr 0.0.0.0 rport 0"),
                        "related address scrubbed"
                    );
                    voicemeet_core::proto::privacy::check_candidate(line, &[relay_ip])
                        .expect("on the relay");
                }
            }
            Body::EndOfCandidates | Body::Bye { .. } | Body::Ack { .. } => {}
        }
    }
    assert!(descriptions >= 2, "offer and answer were relayed");
    assert!(candidates >= 2, "candidates were relayed");
    assert!(envelopes > descriptions);
}

/// This machine's non-loopback addresses (`hostname -I`).
fn machine_ips() -> Vec<IpAddr> {
    let out = std::process::Command::new("hostname")
        .arg("-I")
        .output()
        .expect("hostname runs");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// Access tokens here live 4 s; Realtime closes a channel whose token has
/// expired, so a call only outlives several of them if the client refreshes
/// its session and pushes the new token to its channels in time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_outlives_its_access_tokens() {
    const TOKEN_TTL: Duration = Duration::from_secs(4);
    let mut config = common::test_config();
    config.access_token_ttl = TOKEN_TTL;
    let server = common::start(config).await;
    let mut alice = stranger(&server, 440.0);
    let mut bob = stranger(&server, 660.0);
    alice.client.search().await.expect("search");
    wait_for_state(&mut alice, |s| *s == CallState::Searching).await;
    bob.client.search().await.expect("search");
    wait_for_state(&mut alice, |s| *s == CallState::InCall).await;
    wait_for_state(&mut bob, |s| *s == CallState::InCall).await;

    tokio::time::sleep(TOKEN_TTL * 3).await;
    for who in [&mut alice, &mut bob] {
        while let Ok(event) = who.events.try_recv() {
            assert!(
                !matches!(event, ClientEvent::StateChanged(_)),
                "the call changed state while tokens expired: {event:?}"
            );
        }
    }
    let from = alice.heard.len();
    let at_alice = wait_for_audio(&alice.heard, from).await;
    let heard = tone_energy_fraction(&at_alice, SAMPLE_RATE, 660.0);
    assert!(heard > 0.8, "alice still hears bob: {heard:.3}");
}

/// Mute stops sending speech, not just the meter: the stranger hears
/// silence while packets keep coming at the same pace and size (CBR), and
/// hears the tone again after unmuting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mute_sends_silence_in_packets_of_the_same_size() {
    let server = common::start(common::test_config()).await;
    let mut alice = stranger(&server, 440.0);
    let mut bob = stranger(&server, 660.0);
    alice.client.search().await.expect("search");
    bob.client.search().await.expect("search");
    wait_for_state(&mut alice, |s| *s == CallState::InCall).await;
    wait_for_state(&mut bob, |s| *s == CallState::InCall).await;
    let before = wait_for_audio(&bob.heard, bob.heard.len()).await;
    assert!(tone_energy_fraction(&before, SAMPLE_RATE, 440.0) > 0.8);
    let talking = next_sent(&mut alice, |sent| sent.frames > 50).await;

    alice.client.set_muted(true).await.expect("mute");
    // Let what was sent before the mute play out.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let muted = wait_for_audio(&bob.heard, bob.heard.len()).await;
    let peak = muted.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
    assert!(
        peak < 200,
        "bob still hears alice while she is muted (peak {peak})"
    );

    // Alice's packets kept flowing, as large as before: constant bitrate,
    // so muting does not show on the wire.
    let sent = next_sent(&mut alice, |sent| sent.muted_frames > 20).await;
    let size = |bytes: u64, frames: u64| bytes as f64 / frames.max(1) as f64;
    let talking_size = size(talking.bytes, talking.frames);
    let muted_size = size(sent.bytes - talking.bytes, sent.frames - talking.frames);
    assert!(
        (talking_size - muted_size).abs() < 1.0,
        "packets of {talking_size:.1} bytes talking, {muted_size:.1} muted"
    );
    assert!(sent.frames > sent.muted_frames, "{sent:?}");
    assert_eq!(sent.write_errors, 0, "{sent:?}");

    alice.client.set_muted(false).await.expect("unmute");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = wait_for_audio(&bob.heard, bob.heard.len()).await;
    assert!(
        tone_energy_fraction(&after, SAMPLE_RATE, 440.0) > 0.8,
        "bob hears alice again after she unmutes"
    );
}

/// The next quality report whose send side passes `wanted`.
async fn next_sent(
    who: &mut Stranger,
    wanted: impl Fn(&voicemeet_core::audio::SendStats) -> bool,
) -> voicemeet_core::audio::SendStats {
    tokio::time::timeout(STEP_TIMEOUT, async {
        loop {
            match who.events.recv().await {
                Some(ClientEvent::Quality(quality)) if wanted(&quality.sent) => {
                    return quality.sent;
                }
                Some(_) => {}
                None => panic!("the client stopped"),
            }
        }
    })
    .await
    .expect("a quality report in time")
}
