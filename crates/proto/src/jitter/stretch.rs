//! Time stretching of decoded PCM by whole pitch periods, and the fades and
//! crossfades that keep every splice click-free.
//!
//! Voiced speech (and any tone) repeats with its pitch period `T`, so the
//! signal `x[T..2T]` looks like `x[0..T]`. Crossfading one into the other
//! removes one period (accelerate) or adds one (preemptive expand) while
//! each end of the splice still joins the original signal exactly:
//!
//! ```text
//! accelerate:  x[0..T] ⤳ x[T..2T]  then x[2T..]        (T samples shorter)
//! expand:      x[0..T], x[T..2T] ⤳ x[0..T], then x[T..]  (T samples longer)
//! ```
//!
//! `a ⤳ b` is a linear crossfade from `a` to `b`: linear because the two
//! sides are alike, so their sum keeps the level. The period is found by
//! normalised cross-correlation, first on a 12 kHz copy of the signal, then
//! refined around the best few lags at full rate.

/// Rate of the coarse search: enough for any voice pitch, and 1/16 of the
/// work at 48 kHz.
const COARSE_RATE: u32 = 12_000;

/// How many coarse lags are refined at full rate: tones have several good
/// lags (multiples of their period) and the coarse copy may rank them
/// slightly wrong.
const CANDIDATES: usize = 3;

/// Correlations this close count as equal, and the longer lag wins: for a
/// tone every multiple of its period fits, and a longer one corrects the
/// delay in fewer splices.
const TIE: f64 = 0.002;

/// Mean square below which a signal is too quiet for its shape to matter
/// (an amplitude of about 64, -54 dBFS): any splice of it is inaudible.
const QUIET_MEAN_SQUARE: i64 = 64 * 64;

/// A lag and how alike the signal is to itself shifted by it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Period {
    /// The lag in samples.
    pub lag: usize,
    /// Normalised cross-correlation of `x[0..lag]` and `x[lag..2 lag]`,
    /// in [-1, 1].
    pub correlation: f64,
}

/// The pitch search, with its scratch buffer (reused, so a search does not
/// allocate once warmed up).
#[derive(Debug, Clone)]
pub(crate) struct Stretcher {
    factor: usize,
    coarse: Vec<f64>,
    correlations: Vec<f64>,
}

impl Stretcher {
    /// A searcher for signals at `sample_rate`, with room for lags up to
    /// `max_lag` samples.
    pub(crate) fn new(sample_rate: u32, max_lag: usize) -> Self {
        let factor = usize::try_from((sample_rate / COARSE_RATE).max(1)).unwrap_or(1);
        Self {
            factor,
            coarse: Vec::with_capacity(2 * max_lag / factor + 2),
            correlations: Vec::with_capacity(max_lag / factor + 2),
        }
    }

    /// The lag in `min_lag..=max_lag` at which `x` is most like itself,
    /// judged over one lag's length; `max_lag` is cut to half of `x`.
    /// `None` if no lag fits.
    pub(crate) fn find_period(
        &mut self,
        x: &[i16],
        min_lag: usize,
        max_lag: usize,
    ) -> Option<Period> {
        let max_lag = max_lag.min(x.len() / 2);
        let min_lag = min_lag.max(1);
        if max_lag < min_lag {
            return None;
        }
        let k = self.factor;
        let low = min_lag.div_ceil(k).max(1);
        let high = max_lag / k;
        let mut candidates = [None::<(usize, f64)>; CANDIDATES];
        if k == 1 || high < low + 2 {
            // Too narrow a range to be worth a coarse pass: refine it all.
            return best_in(x, min_lag, max_lag);
        }
        self.coarse.clear();
        self.coarse
            .extend(x[..2 * max_lag].chunks_exact(k).map(|chunk| {
                let sum: i64 = chunk.iter().map(|&s| i64::from(s)).sum();
                to_f64(sum) / to_f64_usize(k)
            }));
        let window = high;
        self.correlations.clear();
        for lag in low..=high {
            let c = correlation_f64(&self.coarse, lag, window).unwrap_or(-1.0);
            self.correlations.push(c);
        }
        // Peaks only: neighbours of a peak describe the same period, and
        // the candidates should be different periods (multiples of a
        // tone's, or a voice's pitch and its double).
        for (i, &c) in self.correlations.iter().enumerate() {
            let left = i.checked_sub(1).map_or(f64::MIN, |j| self.correlations[j]);
            let right = self.correlations.get(i + 1).copied().unwrap_or(f64::MIN);
            if c >= left && c >= right {
                insert_candidate(&mut candidates, low + i, c);
            }
        }
        let mut best: Option<Period> = None;
        for (lag, _) in candidates.iter().flatten() {
            let from = (lag * k).saturating_sub(k).max(min_lag);
            let to = (lag * k + k).min(max_lag);
            if let Some(found) = best_in(x, from, to)
                && best.is_none_or(|b| better(found.lag, found.correlation, b))
            {
                best = Some(found);
            }
        }
        best
    }
}

/// Whether `x` is quiet enough to stretch anywhere.
pub(crate) fn is_quiet(x: &[i16]) -> bool {
    if x.is_empty() {
        return true;
    }
    let energy: i64 = x.iter().map(|&s| i64::from(s) * i64::from(s)).sum();
    energy / i64::try_from(x.len()).unwrap_or(i64::MAX) < QUIET_MEAN_SQUARE
}

/// Removes `lag` samples from `buf[start..]` by crossfading
/// `buf[start..start + lag]` into `buf[start + lag..start + 2 lag]`.
/// Returns whether there was room (nothing changes if not).
pub(crate) fn accelerate(buf: &mut Vec<i16>, start: usize, lag: usize) -> bool {
    if lag == 0 || start.saturating_add(2 * lag) > buf.len() {
        return false;
    }
    for i in 0..lag {
        buf[start + i] = mix(buf[start + i], buf[start + lag + i], i, lag);
    }
    buf.drain(start + lag..start + 2 * lag);
    true
}

/// Inserts `lag` samples into `buf[start..]`: after `x[0..2 lag]` comes a
/// crossfade from `x[lag..2 lag]` back into `x[0..lag]`, then `x[lag..]`
/// again. Returns whether there was room (nothing changes if not).
pub(crate) fn expand(buf: &mut Vec<i16>, start: usize, lag: usize) -> bool {
    let old_len = buf.len();
    if lag == 0 || start.saturating_add(2 * lag) > old_len {
        return false;
    }
    buf.resize(old_len + lag, 0);
    buf.copy_within(start + lag..old_len, start + 2 * lag);
    // Now x[i] is at start + i and x[lag + i] at start + 2 lag + i; the
    // new period goes in between.
    for i in 0..lag {
        buf[start + lag + i] = mix(buf[start + 2 * lag + i], buf[start + i], i, lag);
    }
    true
}

/// Crossfades the last `overlap` samples of `buf[..at]` into the
/// `overlap` samples from `at` on, then removes the latter: the signal
/// before `at` ends and the one after it begins without a step.
pub(crate) fn merge(buf: &mut Vec<i16>, at: usize, overlap: usize) {
    let overlap = overlap.min(at).min(buf.len().saturating_sub(at));
    if overlap == 0 {
        return;
    }
    let from = at - overlap;
    for i in 0..overlap {
        buf[from + i] = mix(buf[from + i], buf[at + i], i, overlap);
    }
    buf.drain(at..at + overlap);
}

/// Scales `samples` by a gain moving linearly from `from` to `to`.
pub(crate) fn ramp(samples: &mut [i16], from: f64, to: f64) {
    let n = to_f64_usize(samples.len());
    for (i, sample) in samples.iter_mut().enumerate() {
        let position = (to_f64_usize(i) + 0.5) / n;
        let gain = from + (to - from) * position;
        *sample = saturate(f64::from(*sample) * gain);
    }
}

/// Sample `i` of an `n`-sample linear crossfade from `a` to `b`; the
/// weights never reach 0 or 1, so both ends join their neighbours.
fn mix(a: i16, b: i16, i: usize, n: usize) -> i16 {
    let w = to_f64_usize(i + 1) / to_f64_usize(n + 1);
    saturate(f64::from(a) * (1.0 - w) + f64::from(b) * w)
}

fn saturate(value: f64) -> i16 {
    // `as` saturates floats to the integer range, which is what we want.
    value.round() as i16
}

fn to_f64(value: i64) -> f64 {
    // Sums of a few thousand i16 products fit f64's 53 bits exactly.
    value as f64
}

fn to_f64_usize(value: usize) -> f64 {
    value as f64
}

/// The best full-rate lag in `from..=to`.
fn best_in(x: &[i16], from: usize, to: usize) -> Option<Period> {
    let mut best: Option<Period> = None;
    for lag in from.max(1)..=to {
        if 2 * lag > x.len() {
            break;
        }
        let (mut cross, mut first, mut second) = (0i64, 0i64, 0i64);
        for i in 0..lag {
            let (a, b) = (i64::from(x[i]), i64::from(x[lag + i]));
            cross += a * b;
            first += a * a;
            second += b * b;
        }
        let correlation = normalise(to_f64(cross), to_f64(first), to_f64(second));
        if best.is_none_or(|b| correlation > b.correlation) {
            best = Some(Period { lag, correlation });
        }
    }
    best
}

fn correlation_f64(x: &[f64], lag: usize, window: usize) -> Option<f64> {
    let shifted = x.get(lag..lag + window)?;
    let (mut cross, mut first, mut second) = (0.0, 0.0, 0.0);
    for (a, b) in x[..window].iter().zip(shifted) {
        cross += a * b;
        first += a * a;
        second += b * b;
    }
    Some(normalise(cross, first, second))
}

fn normalise(cross: f64, first: f64, second: f64) -> f64 {
    let denominator = (first * second).sqrt();
    if denominator > 0.0 {
        cross / denominator
    } else {
        0.0
    }
}

/// Whether `lag` with `correlation` beats `best` (see [`TIE`]).
fn better(lag: usize, correlation: f64, best: Period) -> bool {
    correlation > best.correlation + TIE
        || (correlation >= best.correlation - TIE && lag > best.lag)
}

/// Keeps the best `CANDIDATES` lags, best first.
fn insert_candidate(candidates: &mut [Option<(usize, f64)>; CANDIDATES], lag: usize, c: f64) {
    let Some(position) = candidates.iter().position(|slot| {
        slot.is_none_or(|(other_lag, other)| {
            better(
                lag,
                c,
                Period {
                    lag: other_lag,
                    correlation: other,
                },
            )
        })
    }) else {
        return;
    };
    for i in (position + 1..CANDIDATES).rev() {
        candidates[i] = candidates[i - 1];
    }
    candidates[position] = Some((lag, c));
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const RATE: u32 = 48_000;
    const MIN_LAG: usize = 120; // 2.5 ms
    const MAX_LAG: usize = 720; // 15 ms

    pub(crate) fn sine(freq: f64, amplitude: f64, phase: usize, len: usize) -> Vec<i16> {
        (0..len)
            .map(|i| {
                let t = (phase + i) as f64 / f64::from(RATE);
                (amplitude * (2.0 * std::f64::consts::PI * freq * t).sin()).round() as i16
            })
            .collect()
    }

    /// The largest deviation of `x` from the recurrence every sine of
    /// `freq` obeys, `x[n] = 2 cos(w) x[n-1] - x[n-2]`: a step or a kink
    /// shows up as a large value, a smooth change of phase or level does not.
    pub(crate) fn worst_residual(x: &[i16], freq: f64) -> f64 {
        let c = 2.0 * (2.0 * std::f64::consts::PI * freq / f64::from(RATE)).cos();
        x.windows(3)
            .map(|w| (f64::from(w[2]) - c * f64::from(w[1]) + f64::from(w[0])).abs())
            .fold(0.0, f64::max)
    }

    /// The lowest and highest RMS over windows of `window` samples.
    pub(crate) fn rms_range(x: &[i16], window: usize) -> (f64, f64) {
        x.chunks_exact(window)
            .map(|w| {
                let power: f64 = w.iter().map(|&s| f64::from(s).powi(2)).sum();
                (power / window as f64).sqrt()
            })
            .fold((f64::MAX, 0.0), |(low, high), r| (low.min(r), high.max(r)))
    }

    #[test]
    fn finds_the_period_of_tones() {
        let mut stretcher = Stretcher::new(RATE, MAX_LAG);
        for freq in [100.0, 150.0, 220.0, 440.0, 1_000.0, 3_000.0] {
            let x = sine(freq, 10_000.0, 17, 2 * MAX_LAG);
            let period = stretcher
                .find_period(&x, MIN_LAG, MAX_LAG)
                .expect("a lag fits");
            let cycles = period.lag as f64 * freq / f64::from(RATE);
            assert!(
                (cycles - cycles.round()).abs() < 0.05,
                "{freq} Hz: lag {} is {cycles} periods",
                period.lag
            );
            assert!(period.correlation > 0.99, "{freq} Hz: {period:?}");
        }
    }

    #[test]
    fn finds_the_fundamental_of_a_voice_like_signal() {
        // A 125 Hz buzz (8 ms period) with falling harmonics.
        let x: Vec<i16> = (0..2 * MAX_LAG)
            .map(|i| {
                let t = i as f64 / f64::from(RATE);
                let v: f64 = (1..=12)
                    .map(|h| {
                        let h = f64::from(h);
                        (2.0 * std::f64::consts::PI * 125.0 * h * t).sin() / h
                    })
                    .sum();
                (3_000.0 * v) as i16
            })
            .collect();
        let period = Stretcher::new(RATE, MAX_LAG)
            .find_period(&x, MIN_LAG, MAX_LAG)
            .expect("a lag fits");
        assert_eq!(period.lag, 384);
        assert!(period.correlation > 0.99);
    }

    #[test]
    fn noise_has_no_good_period() {
        let mut state = 12_345u32;
        let x: Vec<i16> = (0..2 * MAX_LAG)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (state >> 16) as i16
            })
            .collect();
        let period = Stretcher::new(RATE, MAX_LAG)
            .find_period(&x, MIN_LAG, MAX_LAG)
            .expect("a lag fits");
        assert!(period.correlation < 0.3, "{period:?}");
        assert!(!is_quiet(&x));
        assert!(is_quiet(&[10, -20, 30, 0]));
    }

    #[test]
    fn no_lag_fits_a_short_signal() {
        let mut stretcher = Stretcher::new(RATE, MAX_LAG);
        assert_eq!(stretcher.find_period(&[1; 200], MIN_LAG, MAX_LAG), None);
        assert_eq!(stretcher.find_period(&[1; 2_000], 500, 400), None);
        assert!(stretcher.find_period(&[1; 300], MIN_LAG, MAX_LAG).is_some());
    }

    fn check_clean(y: &[i16], freq: f64, amplitude: f64) {
        let residual = worst_residual(y, freq);
        assert!(
            residual < 0.01 * amplitude,
            "{freq} Hz: a step of {residual} in the stretched sine"
        );
        // Whole periods, so a clean sine measures the same everywhere.
        let period = f64::from(RATE) / freq;
        let window = (period * (480.0 / period).ceil()).round() as usize;
        let (low, high) = rms_range(y, window);
        let expected = amplitude / 2f64.sqrt();
        assert!(
            low > 0.97 * expected && high < 1.03 * expected,
            "{freq} Hz: level wanders {low}..{high}, expected {expected}"
        );
    }

    #[test]
    fn stretched_sines_stay_clean_sines() {
        let mut stretcher = Stretcher::new(RATE, MAX_LAG);
        for freq in [100.0, 220.0, 440.0, 1_000.0, 3_000.0] {
            for start in [0, 333] {
                let x = sine(freq, 8_000.0, 5, 4_800);
                let period = stretcher
                    .find_period(&x[start..], MIN_LAG, MAX_LAG)
                    .expect("a lag fits");

                let mut shorter = x.clone();
                assert!(accelerate(&mut shorter, start, period.lag));
                assert_eq!(shorter.len(), x.len() - period.lag);
                check_clean(&shorter, freq, 8_000.0);

                let mut longer = x.clone();
                assert!(expand(&mut longer, start, period.lag));
                assert_eq!(longer.len(), x.len() + period.lag);
                check_clean(&longer, freq, 8_000.0);
                // Outside the splice the signal is untouched.
                assert_eq!(longer[..start + period.lag], x[..start + period.lag]);
                assert_eq!(longer[start + 2 * period.lag..], x[start + period.lag..]);
                assert_eq!(shorter[start + period.lag..], x[start + 2 * period.lag..]);
            }
        }
    }

    #[test]
    fn stretching_without_room_changes_nothing() {
        let mut x = vec![1i16; 100];
        assert!(!accelerate(&mut x, 10, 50));
        assert!(!expand(&mut x, 10, 50));
        assert!(!accelerate(&mut x, 0, 0));
        assert_eq!(x, vec![1i16; 100]);
    }

    #[test]
    fn merge_and_ramp_join_without_steps() {
        // A tone that jumps half a period: merging hides the jump.
        let mut x = sine(440.0, 8_000.0, 0, 960);
        x.extend(sine(440.0, 8_000.0, 960 + 55, 960));
        let abrupt = worst_residual(&x, 440.0);
        merge(&mut x, 960, 120);
        assert_eq!(x.len(), 1_800);
        let merged = worst_residual(&x, 440.0);
        assert!(merged < abrupt / 10.0, "{merged} vs {abrupt}");

        let mut y = vec![1_000i16; 100];
        ramp(&mut y, 0.0, 1.0);
        assert!(y[0] < 10 && y[99] > 990);
        assert!(y.windows(2).all(|w| w[0] <= w[1]));
        merge(&mut y, 0, 10);
        merge(&mut y, 100, 10);
        assert_eq!(y.len(), 100);
    }
}
