//! Echo through a whole call: stranger A talks; stranger B sits in a
//! simulated room where everything B's speaker plays reaches B's
//! microphone again after 60 ms, 6 dB down, with reverberation. Without
//! echo cancellation A hears its own voice come back; with B's processing
//! on (the same chains real devices use), what comes back must be at least
//! 20 dB below the echo B's microphone picked up, once the canceller has
//! converged.

mod common;
mod speech;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;
use voicemeet_core::audio::{
    AudioIo, AudioSink, AudioSource, CallAudio, FileSource, MemorySink, PULL_SAMPLES, PacedIo,
    ProcessingSettings, chains,
};
use voicemeet_core::proto::call::CallState;
use voicemeet_core::{ClientEvent, Error};

/// Bound for call setup on loopback (milliseconds in practice).
const STEP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long A talks.
const TALK_SECONDS: f32 = 14.0;
/// The window judged, in seconds of the call: after the canceller has had
/// several seconds of speech to converge.
const JUDGED: (f32, f32) = (7.0, 13.0);
/// The echo path of the room.
const ECHO_DELAY_MS: f32 = 60.0;
const ECHO_GAIN_DB: f32 = -6.0;

/// A's side: speech out, what comes back into memory.
struct Talker {
    speech: Vec<i16>,
    heard: MemorySink,
}

impl PacedIo for Talker {
    fn source(&self) -> Box<dyn AudioSource> {
        Box::new(FileSource::from_samples(self.speech.clone()))
    }

    fn sink(&self) -> Box<dyn AudioSink> {
        Box::new(self.heard.clone())
    }
}

/// A streaming echo path: the room of `speech::room_echo`, sample by
/// sample.
struct EchoPath {
    taps: Vec<(usize, f32)>,
    history: VecDeque<f32>,
}

impl EchoPath {
    fn new() -> Self {
        let taps = speech::room_taps(ECHO_DELAY_MS, ECHO_GAIN_DB, 11);
        let longest = taps.iter().map(|(offset, _)| *offset).max().unwrap_or(0);
        Self {
            taps,
            history: VecDeque::from(vec![0.0; longest + 1]),
        }
    }

    /// What the microphone hears of one sample played now.
    fn step(&mut self, played: i16) -> i16 {
        self.history.pop_back();
        self.history.push_front(f32::from(played));
        let echo: f32 = self
            .taps
            .iter()
            .map(|(offset, a)| a * self.history[*offset])
            .sum();
        echo.round().clamp(-32768.0, 32767.0) as i16
    }
}

/// B's side: a speaker and a microphone in one room, run through the call
/// chains like real devices, on a 10 ms clock.
#[derive(Clone)]
struct Room {
    processing: ProcessingSettings,
    /// Everything B's microphone picked up.
    mic: Arc<Mutex<Vec<i16>>>,
}

impl AudioIo for Room {
    fn start(&self, call: CallAudio) -> Result<(), Error> {
        let CallAudio {
            capture,
            playout,
            cancel,
        } = call;
        let (mut capture, mut render, _control) = chains(capture, playout, self.processing);
        let mic_log = Arc::clone(&self.mic);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
            let mut path = EchoPath::new();
            let mut played = vec![0i16; PULL_SAMPLES];
            let mut mic = vec![0i16; PULL_SAMPLES];
            loop {
                tokio::select! {
                    () = cancel.cancelled() => break,
                    _ = tick.tick() => {}
                }
                render.fill(&mut played);
                for (m, &p) in mic.iter_mut().zip(&played) {
                    *m = path.step(p);
                }
                mic_log
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .extend_from_slice(&mic);
                capture.on_frame(&mic);
            }
        });
        Ok(())
    }
}

async fn until_in_call(events: &mut mpsc::Receiver<ClientEvent>) {
    tokio::time::timeout(STEP_TIMEOUT, async {
        loop {
            match events.recv().await.expect("engine running") {
                ClientEvent::StateChanged(CallState::InCall) => return,
                ClientEvent::StateChanged(
                    state @ (CallState::Ended { .. } | CallState::Failed { .. }),
                ) => {
                    panic!("call ended before it began: {state:?}")
                }
                _ => {}
            }
        }
    })
    .await
    .expect("in call within the step timeout");
}

/// One call; returns (what B's microphone picked up, what A heard back),
/// each from when the call was up.
async fn call(processing: ProcessingSettings) -> (Vec<i16>, Vec<i16>) {
    let server = common::start(common::test_config()).await;
    let voice = speech::pcm(&speech::speech(speech::LOW_VOICE, TALK_SECONDS, -20.0));
    let heard = MemorySink::new();
    let talker = Arc::new(Talker {
        speech: voice,
        heard: heard.clone(),
    });
    let room = Room {
        processing,
        mic: Arc::default(),
    };
    let (a, mut a_events) = common::client(&server, talker);
    let (b, mut b_events) = common::client(&server, Arc::new(room.clone()));
    a.search().await.expect("search");
    b.search().await.expect("search");
    until_in_call(&mut a_events).await;
    until_in_call(&mut b_events).await;
    let (heard_from, mic_from) = (
        heard.len(),
        room.mic
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len(),
    );
    tokio::time::sleep(Duration::from_secs_f32(JUDGED.1 + 0.5)).await;
    let returned = heard.samples_since(heard_from);
    let mic = room.mic.lock().unwrap_or_else(PoisonError::into_inner)[mic_from..].to_vec();
    a.hang_up().await.expect("hang up");
    drop((a, b));
    (mic, returned)
}

fn judged(signal: &[i16]) -> &[i16] {
    speech::window(signal, JUDGED.0, JUDGED.1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_far_end_does_not_hear_itself() {
    let off = ProcessingSettings {
        echo_cancellation: false,
        noise_suppression: false,
        auto_gain: false,
    };
    let ((mic_on, returned_on), (mic_off, returned_off)) =
        tokio::join!(call(ProcessingSettings::default()), call(off));

    let attenuation = |mic: &[i16], returned: &[i16]| {
        speech::db(speech::energy(judged(mic)) / speech::energy(judged(returned)).max(1e-12))
    };
    let with_aec = attenuation(&mic_on, &returned_on);
    let without = attenuation(&mic_off, &returned_off);
    println!(
        "echo at B's microphone {:.1} dBFS; returned to A: {:.1} dBFS with processing ({with_aec:.1} dB down), {:.1} dBFS without ({without:.1} dB down)",
        speech::level_dbfs(judged(&mic_on)),
        speech::level_dbfs(judged(&returned_on)),
        speech::level_dbfs(judged(&returned_off)),
    );
    assert!(
        speech::level_dbfs(judged(&mic_on)) > -45.0,
        "the room really echoes A's voice into B's microphone"
    );
    assert!(
        without < 6.0,
        "without processing the echo comes back nearly whole ({without:.1} dB down)"
    );
    assert!(
        with_aec >= 20.0,
        "with processing the echo returned to A is only {with_aec:.1} dB down (want >= 20)"
    );
}
