//! Deterministic test audio for the voice-processing tests and benchmark:
//! speech-like signals, a synthetic room echo, noise, and the measures the
//! tests assert on. 48 kHz mono; signals are `f32` in [-1, 1] until
//! [`pcm`] quantises them.
//!
//! Shared by `tests/processing.rs` and `benches/processing.rs`; each uses a
//! subset, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::f32::consts::PI;

/// Samples per second.
pub const RATE: usize = 48_000;

/// A small xorshift generator: the same seed gives the same audio on every
/// machine, so a failing test fails everywhere.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }

    pub fn between(&mut self, low: f32, high: f32) -> f32 {
        low + (high - low) * self.unit()
    }

    /// Roughly Gaussian with unit variance (sum of twelve uniforms).
    pub fn gauss(&mut self) -> f32 {
        (0..12).map(|_| self.unit()).sum::<f32>() - 6.0
    }
}

/// Whose voice: the pitch range and the random choices of syllables.
#[derive(Clone, Copy)]
pub struct Voice {
    pub f0_low: f32,
    pub f0_high: f32,
    pub seed: u64,
}

/// A low voice, for the far end.
pub const LOW_VOICE: Voice = Voice {
    f0_low: 90.0,
    f0_high: 150.0,
    seed: 1,
};
/// A higher voice, for the near end.
pub const HIGH_VOICE: Voice = Voice {
    f0_low: 180.0,
    f0_high: 260.0,
    seed: 7,
};

/// Speech-like audio: syllables of 120–300 ms whose harmonics (up to
/// 4 kHz) glide in pitch and are shaped by two formants that change every
/// syllable, some starting with a noise burst like a fricative, separated by
/// short gaps and, every five syllables, a pause of 0.3–0.6 s. Gaps are
/// exact zeros. Scaled so the voiced parts have the RMS `level_dbfs`.
pub fn speech(voice: Voice, seconds: f32, level_dbfs: f32) -> Vec<f32> {
    let len = (seconds * RATE as f32) as usize;
    let mut out = vec![0.0f32; len];
    let mut rng = Rng::new(voice.seed);
    let mut at = 0;
    let mut syllables = 0;
    let mut phase = 0.0f32;
    while at < len {
        let syllable_len = (rng.between(0.12, 0.30) * RATE as f32) as usize;
        let formant1 = rng.between(300.0, 800.0);
        let formant2 = rng.between(900.0, 2300.0);
        let f0_start = rng.between(voice.f0_low, voice.f0_high);
        let f0_end = rng.between(voice.f0_low, voice.f0_high);
        let fricative = rng.unit() < 0.3;
        for (i, sample) in out[at..].iter_mut().take(syllable_len).enumerate() {
            let x = i as f32 / syllable_len as f32;
            let envelope = (PI * x).sin().powf(0.7);
            let f0 = f0_start + (f0_end - f0_start) * x;
            // The phase of the fundamental; harmonics are its multiples.
            phase = (phase + 2.0 * PI * f0 / RATE as f32) % (2.0 * PI);
            let mut voiced = 0.0;
            let mut k = 1.0;
            while k * f0 < 4000.0 {
                let f = k * f0;
                let amplitude = 1.0 / (1.0 + ((f - formant1) / 120.0).powi(2))
                    + 0.6 / (1.0 + ((f - formant2) / 180.0).powi(2))
                    + 0.02;
                voiced += amplitude * (k * phase).sin();
                k += 1.0;
            }
            *sample = voiced * envelope;
            if fricative && x < 0.2 {
                *sample += rng.gauss() * 0.3 * (1.0 - x / 0.2);
            }
        }
        at += syllable_len;
        syllables += 1;
        let gap = if syllables % 5 == 0 {
            rng.between(0.3, 0.6)
        } else {
            rng.between(0.03, 0.08)
        };
        at += (gap * RATE as f32) as usize;
    }
    scale_active_to(&mut out, level_dbfs);
    out
}

fn scale_active_to(signal: &mut [f32], level_dbfs: f32) {
    let active: Vec<f32> = signal.iter().copied().filter(|&v| v != 0.0).collect();
    let rms = (active.iter().map(|v| v * v).sum::<f32>() / active.len().max(1) as f32).sqrt();
    let gain = 10f32.powf(level_dbfs / 20.0) / rms.max(1e-9);
    for v in signal {
        *v *= gain;
    }
}

/// White noise at `level_dbfs` RMS.
pub fn noise(seconds: f32, level_dbfs: f32, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let sigma = 10f32.powf(level_dbfs / 20.0);
    (0..(seconds * RATE as f32) as usize)
        .map(|_| rng.gauss() * sigma)
        .collect()
}

/// What a microphone hears of `far` played in a small room: the direct
/// sound `delay_ms` later, followed by 24 reflections over the next 30 ms
/// decaying with a 6 ms time constant, the whole path `gain_db` loud
/// (energy gain), plus a -70 dBFS noise floor.
pub fn room_echo(far: &[f32], delay_ms: f32, gain_db: f32, seed: u64) -> Vec<f32> {
    let taps = room_taps(delay_ms, gain_db, seed);
    let floor = noise(far.len() as f32 / RATE as f32 + 1.0, -70.0, seed ^ 0xEC40);
    (0..far.len())
        .map(|n| {
            let echo: f32 = taps
                .iter()
                .filter(|(offset, _)| n >= *offset)
                .map(|(offset, a)| a * far[n - offset])
                .sum();
            echo + floor[n]
        })
        .collect()
}

/// The impulse response of [`room_echo`]'s room, as (delay in samples,
/// gain) taps: the direct sound `delay_ms` later and 24 reflections over
/// the next 30 ms decaying with a 6 ms time constant, scaled so the whole
/// path is `gain_db` loud (energy gain).
pub fn room_taps(delay_ms: f32, gain_db: f32, seed: u64) -> Vec<(usize, f32)> {
    let mut rng = Rng::new(seed);
    let delay = (delay_ms / 1000.0 * RATE as f32) as usize;
    let mut taps = vec![(0usize, 1.0f32)];
    for _ in 0..24 {
        let t_ms = rng.between(0.5, 30.0);
        let sign = if rng.unit() < 0.5 { -1.0 } else { 1.0 };
        taps.push((
            (t_ms / 1000.0 * RATE as f32) as usize,
            sign * 0.6 * (-t_ms / 6.0).exp(),
        ));
    }
    let norm = taps.iter().map(|(_, a)| a * a).sum::<f32>().sqrt();
    let gain = 10f32.powf(gain_db / 20.0) / norm;
    taps.iter()
        .map(|&(offset, a)| (delay + offset, a * gain))
        .collect()
}

/// Sample-wise sum of two signals (the shorter one padded with silence).
pub fn mix(a: &[f32], b: &[f32]) -> Vec<f32> {
    (0..a.len().max(b.len()))
        .map(|i| a.get(i).unwrap_or(&0.0) + b.get(i).unwrap_or(&0.0))
        .collect()
}

/// 16-bit PCM, clipped.
pub fn pcm(signal: &[f32]) -> Vec<i16> {
    signal
        .iter()
        .map(|v| (v * 32768.0).round().clamp(-32768.0, 32767.0) as i16)
        .collect()
}

/// The samples from `from_s` to `to_s` seconds.
pub fn window<T>(signal: &[T], from_s: f32, to_s: f32) -> &[T] {
    let at = |s: f32| ((s * RATE as f32) as usize).min(signal.len());
    &signal[at(from_s)..at(to_s)]
}

/// Sum of squares, full scale = 1.
pub fn energy(signal: &[i16]) -> f64 {
    signal
        .iter()
        .map(|&s| (f64::from(s) / 32768.0).powi(2))
        .sum()
}

pub fn db(ratio: f64) -> f64 {
    10.0 * ratio.log10()
}

/// RMS level in dBFS.
pub fn level_dbfs(signal: &[i16]) -> f64 {
    db(energy(signal) / signal.len().max(1) as f64)
}

/// How much of `reference` is in `signal`, in dB, by least squares at the
/// best lag up to `max_lag` samples (processing delays its output by a few
/// milliseconds): 0 dB when the reference comes through at its own level.
pub fn kept_db(signal: &[i16], reference: &[i16], max_lag: usize) -> f64 {
    let best_gain = (0..=max_lag)
        .map(|lag| {
            let (mut cross, mut auto) = (0.0f64, 0.0f64);
            for (s, r) in signal[lag..].iter().zip(reference) {
                cross += f64::from(*s) * f64::from(*r);
                auto += f64::from(*r).powi(2);
            }
            cross / auto.max(1.0)
        })
        .fold(f64::MIN, f64::max);
    20.0 * best_gain.max(1e-9).log10()
}
