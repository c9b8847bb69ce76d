//! CPU cost of the voice processing, per 10 ms frame (one far-end block
//! handed over plus one microphone block processed), for each combination
//! of switches, on two kinds of call:
//!
//! - `far talks`: the far end talks for the whole 10 s and its echo comes
//!   back (the worst case: AEC3's delay search works hardest while the far
//!   end is active);
//! - `turn-taking`: the two sides alternate every 2 s over a -50 dBFS noise
//!   floor, closer to a conversation;
//! - `silence`: digital silence both ways (a muted microphone, a silent far
//!   end), where subnormal floats would slow the APM down without the
//!   processor's dither.
//!
//! Run with `cargo bench -p voicemeet-core --bench processing`, or add
//! `-- WORD` for only the rows whose call or processing name contains WORD.
//! Prints numbers only; the budget (decision 0002) is for people to compare.

#[path = "../tests/speech/mod.rs"]
mod speech;
mod timing;

use std::time::{Duration, Instant};

use speech::{HIGH_VOICE, LOW_VOICE, RATE, mix, noise, pcm, room_echo, speech};
use voicemeet_core::audio::{AudioProcessor, PROCESSING_FRAME_SAMPLES, ProcessingSettings};

/// Each measurement runs the call this many times with a fresh processor
/// (convergence included, as in a real call) and pools the frame times.
const PASSES: usize = 3;
const SECONDS: f32 = 10.0;

struct Call {
    name: &'static str,
    far: Vec<i16>,
    mic: Vec<i16>,
}

fn calls() -> Vec<Call> {
    let far = speech(LOW_VOICE, SECONDS, -20.0);
    let far_talks = Call {
        name: "far talks",
        mic: pcm(&room_echo(&far, 80.0, -6.0, 99)),
        far: pcm(&far),
    };

    // Far end in even 2 s slots, near end in odd ones.
    let slot = |signal: &[f32], odd: bool| -> Vec<f32> {
        signal
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                if ((i / (2 * RATE)) % 2 == 1) == odd {
                    v
                } else {
                    0.0
                }
            })
            .collect()
    };
    let far_turns = slot(&far, false);
    let near_turns = slot(&speech(HIGH_VOICE, SECONDS, -26.0), true);
    let mic = mix(
        &mix(&room_echo(&far_turns, 80.0, -6.0, 99), &near_turns),
        &noise(SECONDS, -50.0, 3),
    );
    let turn_taking = Call {
        name: "turn-taking",
        far: pcm(&far_turns),
        mic: pcm(&mic),
    };
    let silence = Call {
        name: "silence",
        far: vec![0; far_talks.far.len()],
        mic: vec![0; far_talks.far.len()],
    };
    vec![far_talks, turn_taking, silence]
}

/// Per-frame times of [`PASSES`] runs of `call`, sorted.
fn measure(call: &Call, settings: ProcessingSettings) -> Vec<Duration> {
    let mut times = Vec::new();
    for _ in 0..PASSES {
        let mut processor = AudioProcessor::new(settings);
        let mut mic = call.mic.clone();
        for (far, mic) in call
            .far
            .chunks_exact(PROCESSING_FRAME_SAMPLES)
            .zip(mic.chunks_exact_mut(PROCESSING_FRAME_SAMPLES))
        {
            let start = Instant::now();
            processor.process_render(far).expect("whole blocks");
            processor.process_capture(mic).expect("whole blocks");
            times.push(start.elapsed());
        }
        std::hint::black_box(&mic);
    }
    times.sort_unstable();
    times
}

fn main() {
    let on = |echo_cancellation, noise_suppression, auto_gain| ProcessingSettings {
        echo_cancellation,
        noise_suppression,
        auto_gain,
    };
    let cases = [
        ("all on", ProcessingSettings::ALL_ON),
        ("echo cancellation", on(true, false, false)),
        ("noise suppression", on(false, true, false)),
        ("auto gain", on(false, false, true)),
        ("all off", ProcessingSettings::ALL_OFF),
    ];
    println!(
        "voice processing, 48 kHz mono, per 10 ms frame (render + capture), \
         {PASSES} x {SECONDS} s per row"
    );
    println!("{:<12} {:<18} {}", "call", "processing", timing::HEADER);
    // Cargo passes `--bench` to a bench without the test harness.
    let filter = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    for call in calls() {
        for (name, settings) in cases {
            let row = format!("{} {name}", call.name);
            if filter
                .as_ref()
                .is_some_and(|word| !row.contains(word.as_str()))
            {
                continue;
            }
            let times = measure(&call, settings);
            println!(
                "{:<12} {name:<18} {}",
                call.name,
                timing::columns(&times, Duration::from_millis(10))
            );
        }
    }
}
