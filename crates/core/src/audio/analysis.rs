//! Checking audio by content: which frequency dominates a buffer, and how
//! much of its energy one frequency holds. Pure functions, for tests and
//! diagnostics (e.g. a call simulator checking it hears the other's tone).

use std::f64::consts::PI;

/// The lowest frequency [`dominant_frequency`] looks for.
pub const MIN_DETECTED_HZ: f64 = 40.0;
/// The highest frequency [`dominant_frequency`] looks for: the voice band
/// and test tones live below it.
pub const MAX_DETECTED_HZ: f64 = 4000.0;
/// Mean square (of i16 samples) below which a buffer counts as silence:
/// an RMS of 30, about -60 dBFS.
const SILENCE_MEAN_SQUARE: f64 = 30.0 * 30.0;
/// Samples the coarse scan looks at (from the middle of the buffer): ~170 ms
/// at 48 kHz, a ~6 Hz bin, fine enough for a 4 Hz grid under a Hann window.
const COARSE_WINDOW: usize = 8192;
/// Step of the coarse scan, in Hz.
const COARSE_STEP_HZ: f64 = 4.0;
/// The refinement looks this far either side of the coarse peak...
const REFINE_SPAN_HZ: f64 = 6.0;
/// ...in steps this fine...
const REFINE_STEP_HZ: f64 = 0.25;
/// ...over at most this many samples (2 s at 48 kHz), to bound the work.
const REFINE_WINDOW: usize = 96_000;

/// `|X(freq)|^2` of `samples` (already windowed), by Goertzel's recurrence.
fn goertzel(samples: &[f64], sample_rate: u32, freq: f64) -> f64 {
    let coeff = 2.0 * (2.0 * PI * freq / f64::from(sample_rate)).cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &x in samples {
        let s0 = x + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    (s1 * s1 + s2 * s2 - coeff * s1 * s2).max(0.0)
}

fn hann(samples: &[i16]) -> Vec<f64> {
    let n = samples.len();
    if n < 2 {
        return samples.iter().map(|&x| f64::from(x)).collect();
    }
    let denom = (n - 1) as f64;
    samples
        .iter()
        .enumerate()
        .map(|(i, &x)| f64::from(x) * (0.5 - 0.5 * (2.0 * PI * i as f64 / denom).cos()))
        .collect()
}

fn mean_square(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / samples.len() as f64
}

/// The mean power of the `freq` component of `samples` (no window): a sine
/// of amplitude `A` at exactly `freq` gives `A²/2`, the sine's own mean
/// power. Returns 0 for an empty buffer.
pub fn goertzel_power(samples: &[i16], sample_rate: u32, freq: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let as_f64: Vec<f64> = samples.iter().map(|&x| f64::from(x)).collect();
    let n = samples.len() as f64;
    2.0 * goertzel(&as_f64, sample_rate, freq) / (n * n)
}

/// How much of the buffer's energy is a sine at `freq`: about 1 for a pure
/// tone at that frequency, about 0 for another tone or noise. 0 for
/// silence.
///
/// Measured in blocks of [`TONE_BLOCK_SECONDS`], each block's tone power
/// weighted by its length: received audio legitimately jumps in phase
/// where a jitter buffer splices out a pitch period, conceals a frame or
/// an output device underruns, and a single transform over the whole
/// buffer would let the parts before and after such a jump cancel. Here a
/// jump costs only the block it falls in, and silent gaps count for
/// nothing either way.
pub fn tone_energy_fraction(samples: &[i16], sample_rate: u32, freq: f64) -> f64 {
    let total: f64 = samples.iter().map(|&x| f64::from(x).powi(2)).sum();
    if total <= 0.0 {
        return 0.0;
    }
    let block = ((f64::from(sample_rate) * TONE_BLOCK_SECONDS) as usize).max(1);
    // The remainder joins the last block rather than forming a scrap too
    // short to resolve the tone.
    let blocks = (samples.len() / block).max(1);
    let tone: f64 = (0..blocks)
        .map(|i| {
            let end = if i + 1 == blocks {
                samples.len()
            } else {
                (i + 1) * block
            };
            let part = &samples[i * block..end];
            goertzel_power(part, sample_rate, freq) * part.len() as f64
        })
        .sum();
    tone / total
}

/// Block length of [`tone_energy_fraction`]: 50 ms resolves tones 20 Hz
/// apart, and holds a whole number of periods of the test tones (440 and
/// 660 Hz), so each block measures them without leakage.
pub const TONE_BLOCK_SECONDS: f64 = 0.05;

/// The strongest frequency between [`MIN_DETECTED_HZ`] and
/// [`MAX_DETECTED_HZ`], to within a fraction of a hertz for a steady tone
/// of a second or more; `None` for silence (or a buffer too short to
/// tell, under 10 ms). A Hann-windowed Goertzel scan on a 4 Hz grid over
/// the middle of the buffer, refined in 0.25 Hz steps over up to 2 s.
pub fn dominant_frequency(samples: &[i16], sample_rate: u32) -> Option<f64> {
    if samples.len() < (sample_rate / 100) as usize || mean_square(samples) < SILENCE_MEAN_SQUARE {
        return None;
    }
    let middle = |len: usize| {
        let len = len.min(samples.len());
        let start = (samples.len() - len) / 2;
        &samples[start..start + len]
    };
    let coarse = hann(middle(COARSE_WINDOW));
    let nyquist = f64::from(sample_rate) / 2.0;
    let top = MAX_DETECTED_HZ.min(nyquist - COARSE_STEP_HZ);
    let mut best = (MIN_DETECTED_HZ, f64::MIN);
    let mut freq = MIN_DETECTED_HZ;
    while freq <= top {
        let power = goertzel(&coarse, sample_rate, freq);
        if power > best.1 {
            best = (freq, power);
        }
        freq += COARSE_STEP_HZ;
    }
    let fine = hann(middle(REFINE_WINDOW));
    let center = best.0;
    let mut refined = (center, f64::MIN);
    let mut offset = -REFINE_SPAN_HZ;
    while offset <= REFINE_SPAN_HZ {
        let freq = center + offset;
        if freq > 0.0 && freq < nyquist {
            let power = goertzel(&fine, sample_rate, freq);
            if power > refined.1 {
                refined = (freq, power);
            }
        }
        offset += REFINE_STEP_HZ;
    }
    Some(refined.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: u32 = 48_000;

    fn sine(freq: f64, amplitude: f64, len: usize) -> Vec<i16> {
        (0..len)
            .map(|i| {
                let t = i as f64 / f64::from(RATE);
                (amplitude * (2.0 * PI * freq * t).sin()).round() as i16
            })
            .collect()
    }

    /// A deterministic pseudo-random sequence (xorshift), for noise.
    fn noise(amplitude: f64, len: usize) -> Vec<i16> {
        let mut state: u32 = 0x9e37_79b9;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                let unit = f64::from(state) / f64::from(u32::MAX) * 2.0 - 1.0;
                (unit * amplitude) as i16
            })
            .collect()
    }

    #[test]
    fn finds_pure_tones() {
        for freq in [60.0, 440.0, 443.5, 660.0, 1000.0, 3500.0] {
            let found =
                dominant_frequency(&sine(freq, 8000.0, RATE as usize), RATE).expect("not silence");
            assert!((found - freq).abs() <= 0.5, "{freq} Hz found as {found} Hz");
        }
    }

    #[test]
    fn finds_the_stronger_of_two_tones_in_noise() {
        let a = sine(440.0, 6000.0, 24_000);
        let b = sine(660.0, 2000.0, 24_000);
        let n = noise(1500.0, 24_000);
        let mixed: Vec<i16> = (0..24_000).map(|i| a[i] + b[i] + n[i]).collect();
        let found = dominant_frequency(&mixed, RATE).expect("not silence");
        assert!((found - 440.0).abs() <= 1.0, "{found}");
    }

    #[test]
    fn silence_and_scraps_have_no_frequency() {
        assert_eq!(dominant_frequency(&[0; 48_000], RATE), None);
        assert_eq!(dominant_frequency(&noise(10.0, 48_000), RATE), None);
        assert_eq!(dominant_frequency(&sine(440.0, 8000.0, 100), RATE), None);
        assert_eq!(dominant_frequency(&[], RATE), None);
    }

    #[test]
    fn energy_fraction_tells_tones_apart() {
        let tone = sine(440.0, 8000.0, 48_000);
        let at = tone_energy_fraction(&tone, RATE, 440.0);
        assert!((at - 1.0).abs() < 0.01, "{at}");
        assert!(tone_energy_fraction(&tone, RATE, 660.0) < 0.01);
        assert!(tone_energy_fraction(&noise(8000.0, 48_000), RATE, 440.0) < 0.01);
        assert_eq!(tone_energy_fraction(&[0; 100], RATE, 440.0), 0.0);
        // Shorter than a block, and a remainder after whole blocks.
        let short = tone_energy_fraction(&tone[..1000], RATE, 440.0);
        assert!((short - 1.0).abs() < 0.05, "{short}");
        let ragged = tone_energy_fraction(&tone[..10_000], RATE, 440.0);
        assert!((ragged - 1.0).abs() < 0.01, "{ragged}");
        let power = goertzel_power(&tone, RATE, 440.0);
        assert!(
            (power / (8000.0f64.powi(2) / 2.0) - 1.0).abs() < 0.01,
            "{power}"
        );
    }

    /// What a jitter buffer's splice, a concealed frame or a device
    /// underrun does to a tone: its phase jumps, or a few ms go silent. The
    /// tone is still all that is heard.
    #[test]
    fn energy_fraction_survives_phase_jumps_and_gaps() {
        let mut heard = sine(440.0, 8000.0, 24_000);
        // Half a period ahead from the middle on: a whole-buffer transform
        // would see the halves cancel.
        let shifted = sine(440.0, 8000.0, 24_000 + 55);
        heard[12_000..].copy_from_slice(&shifted[12_000 + 55..]);
        heard[6_000..6_480].fill(0);
        let at = tone_energy_fraction(&heard, RATE, 440.0);
        assert!(at > 0.9, "{at}");
        assert!(tone_energy_fraction(&heard, RATE, 660.0) < 0.05);
    }
}
