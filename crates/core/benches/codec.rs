//! CPU cost of the codec as the call runs it ([`OpusEncoder`]: VOIP,
//! complexity 9, CBR, in-band FEC; [`OpusDecoder`]), per 20 ms frame, on
//! speech-like audio with pauses over a -50 dBFS noise floor (a microphone
//! is never silent, so the encoder always works).
//!
//! With `cargo bench -p voicemeet-core --bench processing` this is the floor
//! of a call's CPU before any networking: one encoder, one decoder and the
//! voice processing per client (decision 0004 adds them up).
//!
//! Run with `cargo bench -p voicemeet-core --bench codec`, or add `-- WORD`
//! for only the rows whose name contains WORD. Prints numbers only.

#[path = "../tests/speech/mod.rs"]
mod speech;
mod timing;

use std::time::{Duration, Instant};

use speech::{HIGH_VOICE, mix, noise, pcm, speech};
use voicemeet_core::audio::{FRAME_DURATION, FRAME_SAMPLES, OpusDecoder, OpusEncoder};

/// Each row runs the clip this many times (a fresh codec each time) and
/// pools the frame times.
const PASSES: usize = 3;
const SECONDS: f32 = 10.0;

/// Talk for 2 s, pause for 2 s, over a noise floor.
fn clip() -> Vec<i16> {
    let voice = speech(HIGH_VOICE, SECONDS, -26.0);
    let talking: Vec<f32> = voice
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            if (i / (2 * speech::RATE)).is_multiple_of(2) {
                v
            } else {
                0.0
            }
        })
        .collect();
    pcm(&mix(&talking, &noise(SECONDS, -50.0, 3)))
}

fn frames(clip: &[i16]) -> impl Iterator<Item = &[i16]> {
    clip.chunks_exact(FRAME_SAMPLES)
}

/// The clip encoded at `bitrate` planning FEC for `loss_percent`, one packet
/// per frame.
fn packets(clip: &[i16], bitrate: i32, loss_percent: i32) -> Vec<bytes::Bytes> {
    let mut encoder = OpusEncoder::new().expect("encoder");
    encoder.apply(bitrate, loss_percent).expect("settings");
    frames(clip)
        .map(|frame| encoder.encode(frame).expect("encode"))
        .collect()
}

/// Per-frame times of [`PASSES`] runs of `run`, which times each frame of
/// one pass itself, sorted.
fn measure(mut run: impl FnMut(&mut Vec<Duration>)) -> Vec<Duration> {
    let mut times = Vec::new();
    for _ in 0..PASSES {
        run(&mut times);
    }
    times.sort_unstable();
    times
}

fn encode_times(clip: &[i16], bitrate: i32, loss_percent: i32) -> Vec<Duration> {
    measure(|times| {
        let mut encoder = OpusEncoder::new().expect("encoder");
        encoder.apply(bitrate, loss_percent).expect("settings");
        for frame in frames(clip) {
            let start = Instant::now();
            let packet = encoder.encode(frame).expect("encode");
            times.push(start.elapsed());
            std::hint::black_box(packet);
        }
    })
}

/// Decoding `packets`; `every`-th one is rebuilt from the next packet's FEC
/// or concealed instead (`None`: all decoded normally).
fn decode_times(packets: &[bytes::Bytes], lost: Option<(usize, Recovery)>) -> Vec<Duration> {
    measure(|times| {
        let mut decoder = OpusDecoder::new().expect("decoder");
        for (index, packet) in packets.iter().enumerate() {
            let recover = lost
                .filter(|&(every, _)| index % every == 0 && index + 1 < packets.len())
                .map(|(_, how)| how);
            let start = Instant::now();
            let out = match recover {
                Some(Recovery::Fec) => decoder.decode_fec(&packets[index + 1], FRAME_SAMPLES),
                Some(Recovery::Conceal) => decoder.conceal(),
                None => decoder.decode(packet),
            }
            .expect("decode")
            .len();
            let elapsed = start.elapsed();
            // When frames are lost, only the recovered ones are timed.
            if lost.is_none() || recover.is_some() {
                times.push(elapsed);
            }
            std::hint::black_box(out);
        }
    })
}

#[derive(Debug, Clone, Copy)]
enum Recovery {
    Fec,
    Conceal,
}

fn main() {
    let clip = clip();
    println!(
        "Opus as the call runs it, 48 kHz mono, per 20 ms frame, {PASSES} x {SECONDS} s of \
         speech with pauses over noise per row"
    );
    println!("{:<34} {}", "codec", timing::HEADER);
    // Cargo passes `--bench` to a bench without the test harness.
    let filter = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    let wanted = |name: &str| {
        filter
            .as_ref()
            .is_none_or(|word| name.contains(word.as_str()))
    };
    let print = |name: &str, times: &[Duration]| {
        println!("{name:<34} {}", timing::columns(times, FRAME_DURATION));
    };
    for (bitrate, loss) in [(32_000, 0), (32_000, 10), (16_000, 10), (40_000, 20)] {
        let name = format!("encode {} kbps, FEC for {loss} %", bitrate / 1000);
        if wanted(&name) {
            print(&name, &encode_times(&clip, bitrate, loss));
        }
    }
    let stream = packets(&clip, 32_000, 10);
    let decodes: [(&str, Option<(usize, Recovery)>); 3] = [
        ("decode 32 kbps", None),
        ("decode a lost frame from FEC", Some((10, Recovery::Fec))),
        ("conceal a lost frame", Some((10, Recovery::Conceal))),
    ];
    for (name, lost) in decodes {
        if wanted(name) {
            print(name, &decode_times(&stream, lost));
        }
    }
}
