//! Two strangers talking through real cpal streams: each `Client` runs on
//! [`DeviceAudio`] against a private PulseAudio daemon (see
//! `pulse/mod.rs`). A's microphone hears a 440 Hz sine, B's a 660 Hz one;
//! B's speaker is the recorded null sink. The call goes through the real
//! local backend and its TURN relay, and what B's speaker played is checked
//! by content: A's tone.

mod common;
mod pulse;

use std::sync::Arc;
use std::time::Duration;

use pulse::{World, isolated};
use tokio::sync::mpsc;
use voicemeet_core::ClientEvent;
use voicemeet_core::audio::device::{DeviceConfig, DeviceEvent, DeviceId};
use voicemeet_core::audio::{
    AudioIo as _, DeviceAudio, DeviceAudioConfig, ProcessingSettings, dominant_frequency,
    tone_energy_fraction,
};
use voicemeet_core::proto::call::CallState;

/// Bound for call setup and first audio (milliseconds on loopback).
const STEP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the call runs once both have heard the other.
const TALK: Duration = Duration::from_secs(3);

fn devices(input: &str, output: &str) -> (DeviceAudio, mpsc::Receiver<DeviceEvent>) {
    let (tx, rx) = mpsc::channel(256);
    let config = DeviceAudioConfig {
        input: DeviceConfig {
            device: Some(DeviceId::new(input)),
            ..DeviceConfig::default()
        },
        output: DeviceConfig {
            device: Some(DeviceId::new(output)),
            ..DeviceConfig::default()
        },
        // A steady sine is exactly what noise suppression exists to remove;
        // the processing has its own tests (processing.rs, echo_call.rs).
        processing: ProcessingSettings::ALL_OFF,
    };
    (DeviceAudio::new(config, tx), rx)
}

async fn until(events: &mut mpsc::Receiver<ClientEvent>, want: fn(&ClientEvent) -> bool) {
    tokio::time::timeout(STEP_TIMEOUT, async {
        loop {
            let event = events.recv().await.expect("engine running");
            if let ClientEvent::StateChanged(
                state @ (CallState::Ended { .. } | CallState::Failed { .. }),
            ) = event
            {
                panic!("the call ended: {state:?}");
            }
            if let ClientEvent::AudioUnavailable { message } = &event {
                panic!("audio did not start: {message}");
            }
            if want(&event) {
                return;
            }
        }
    })
    .await
    .expect("within the step timeout");
}

/// The child process's runtime: two workers, as the app's would have.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn two_strangers_talk_through_real_devices() {
    isolated(
        "two_strangers_talk_through_real_devices",
        World::Pulse,
        |audio| {
            runtime().block_on(async {
                let server = common::start(common::test_config()).await;
                let (a_audio, mut a_devices) = devices("alsa:vm_mic_a", "alsa:vm_speaker_b");
                let (b_audio, mut b_devices) = devices("alsa:vm_mic_b", "alsa:default");
                let (a, mut a_events) = common::client(&server, Arc::new(a_audio.clone()));
                let (b, mut b_events) = common::client(&server, Arc::new(b_audio.clone()));
                a.search().await.expect("search");
                b.search().await.expect("search");
                let first_audio = |e: &ClientEvent| matches!(e, ClientEvent::FirstAudio);
                until(&mut a_events, first_audio).await;
                until(&mut b_events, first_audio).await;
                let played_before = audio.speaker_recording().len();
                tokio::time::sleep(TALK).await;

                // Both sides' devices really ran: frames captured and played.
                let (a_mic, a_speaker) = a_audio.stats().expect("a's call audio runs");
                let (b_mic, b_speaker) = b_audio.stats().expect("b's call audio runs");
                for (name, mic, speaker) in [("a", a_mic, a_speaker), ("b", b_mic, b_speaker)] {
                    let mic = mic.expect("microphone open");
                    assert!(mic.frames > 250, "{name}: microphone frames {mic:?}");
                    assert!(speaker.frames > 250, "{name}: speaker frames {speaker:?}");
                }
                a.hang_up().await.expect("hang up");

                // What B's speaker played during the talk is A's tone (the
                // recording runs a little behind; waiting covers that).
                tokio::time::sleep(Duration::from_millis(500)).await;
                let played = audio.speaker_recording();
                let talk = &played[played_before.min(played.len())..];
                assert!(
                    talk.len() > 3 * 48_000,
                    "only {} samples played",
                    talk.len()
                );
                // The second and third second of the talk, after the jitter
                // buffer's start-up.
                let window = &talk[48_000..3 * 48_000];
                let found = dominant_frequency(window, 48_000).expect("B's speaker played sound");
                assert!(
                    (found - 440.0).abs() < 3.0,
                    "B's speaker played {found} Hz, not A's 440 Hz"
                );
                let purity = tone_energy_fraction(window, 48_000, 440.0);
                // Real-time threads on a loaded 2-core machine may drop a
                // few ms (underruns are silence, not another tone).
                assert!(
                    purity > 0.7,
                    "440 Hz is only {purity:.2} of what B's speaker played"
                );

                for events in [&mut a_devices, &mut b_devices] {
                    while let Ok(event) = events.try_recv() {
                        assert!(
                            !matches!(
                                event,
                                DeviceEvent::Failed { .. } | DeviceEvent::FellBack { .. }
                            ),
                            "a device failed: {event:?}"
                        );
                    }
                }
                drop((a, b));
            });
        },
    );
}

/// A skip starts the next call's audio before the last call's end is
/// handled: that end must stop its own devices, not the next call's.
#[test]
fn the_end_of_one_call_leaves_the_next_calls_devices_running() {
    isolated(
        "the_end_of_one_call_leaves_the_next_calls_devices_running",
        World::Pulse,
        |_| {
            runtime().block_on(async {
                let (devices, _events) = devices("alsa:vm_mic_a", "alsa:default");
                let start = || {
                    let (capture, _frames) = voicemeet_core::audio::capture_queue();
                    let receiver = voicemeet_core::audio::Receiver::new(None).expect("decoder");
                    let cancel = tokio_util::sync::CancellationToken::new();
                    devices
                        .start(voicemeet_core::audio::CallAudio {
                            capture,
                            playout: receiver.playout(),
                            cancel: cancel.clone(),
                        })
                        .expect("devices open");
                    cancel
                };
                let first = start();
                let _second = start();
                first.cancel();
                tokio::time::sleep(Duration::from_millis(300)).await;
                let (_, before) = devices.stats().expect("the second call's devices run");
                tokio::time::sleep(Duration::from_millis(500)).await;
                let (_, after) = devices.stats().expect("the second call's devices run");
                assert!(
                    after.frames >= before.frames + 30,
                    "the speaker stopped: {before:?} -> {after:?}"
                );
            });
        },
    );
}
