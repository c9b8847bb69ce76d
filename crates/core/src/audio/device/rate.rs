//! Measuring a device's real sample rate against the monotonic clock, from
//! inside its callback: plain arithmetic on numbers it already has, no
//! allocation and no locks.

use std::time::{Duration, Instant};

/// Callbacks in the first half second are left out: start-up bursts
/// (filling the device buffer, a sound server waking up) are not the rate.
pub(super) const RATE_WARMUP: Duration = Duration::from_millis(500);
/// No estimate before this much time was measured.
pub(super) const RATE_MIN_SPAN: Duration = Duration::from_secs(1);
/// A pause between callbacks this long means an xrun or a stall: the
/// device's clock went on while frames were not counted, so the fit starts
/// over from the next callback.
pub(super) const RATE_GAP: Duration = Duration::from_millis(100);

/// The slope of a least-squares line through (callback time, frames so
/// far) after the warm-up. Callback times jitter by up to a period or so;
/// a fit through every callback averages that out far better than the two
/// end points would (a 5 ms late end point alone is 80 ppm off over a
/// minute), and it needs only five running sums.
#[derive(Debug, Default)]
pub(super) struct RateEstimator {
    first: Option<Instant>,
    last: Option<Instant>,
    anchor: Option<Instant>,
    frames: u64,
    anchor_frames: u64,
    /// Callbacks in the fit, and the sums of t, n, t², t·n (t in seconds
    /// after the anchor, n in frames after it).
    count: f64,
    sum_t: f64,
    sum_n: f64,
    sum_tt: f64,
    sum_tn: f64,
}

impl RateEstimator {
    /// A new estimator, before any callback.
    pub(super) const fn new() -> Self {
        Self {
            first: None,
            last: None,
            anchor: None,
            frames: 0,
            anchor_frames: 0,
            count: 0.0,
            sum_t: 0.0,
            sum_n: 0.0,
            sum_tt: 0.0,
            sum_tn: 0.0,
        }
    }

    /// A callback of `frames` device frames arrived at `now`; `xrun` if the
    /// host reported an xrun since the previous one (frames were lost, so
    /// the fit starts over). Returns the rate measured so far, once there
    /// is one.
    pub(super) fn on_callback(&mut self, now: Instant, frames: u64, xrun: bool) -> Option<f64> {
        let first = *self.first.get_or_insert(now);
        self.frames += frames;
        let gap = self
            .last
            .replace(now)
            .is_some_and(|last| now.saturating_duration_since(last) >= RATE_GAP);
        if (gap || xrun) && self.anchor.is_some() {
            self.restart(now);
            return None;
        }
        let Some(anchor) = self.anchor else {
            if now.saturating_duration_since(first) >= RATE_WARMUP {
                self.anchor = Some(now);
                self.anchor_frames = self.frames;
            }
            return None;
        };
        let span = now.saturating_duration_since(anchor);
        let t = span.as_secs_f64();
        let n = (self.frames - self.anchor_frames) as f64;
        self.count += 1.0;
        self.sum_t += t;
        self.sum_n += n;
        self.sum_tt += t * t;
        self.sum_tn += t * n;
        if span < RATE_MIN_SPAN {
            return None;
        }
        let denominator = self.count * self.sum_tt - self.sum_t * self.sum_t;
        if denominator <= 0.0 {
            return None;
        }
        Some((self.count * self.sum_tn - self.sum_t * self.sum_n) / denominator)
    }

    /// Starts the fit over at `now` (after the warm-up, which is not
    /// repeated).
    fn restart(&mut self, now: Instant) {
        self.anchor = Some(now);
        self.anchor_frames = self.frames;
        self.count = 0.0;
        self.sum_t = 0.0;
        self.sum_n = 0.0;
        self.sum_tt = 0.0;
        self.sum_tn = 0.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `seconds` of callbacks of `period` frames from a device running
    /// at `rate`, every third arriving `jitter` late; returns the last
    /// estimate.
    fn run(rate: f64, period: u64, seconds: f64, jitter: Duration) -> Option<f64> {
        let start = Instant::now();
        let mut estimator = RateEstimator::new();
        let mut frames = 0u64;
        let mut last = None;
        let mut n = 0u32;
        while (frames as f64) < rate * seconds {
            frames += period;
            // The callback for frames up to `frames` arrives when the device
            // has produced them, plus some scheduling delay.
            let late = if n.is_multiple_of(3) {
                jitter
            } else {
                Duration::ZERO
            };
            let at = start + Duration::from_secs_f64(frames as f64 / rate) + late;
            last = estimator.on_callback(at, period, false);
            n += 1;
        }
        last
    }

    #[test]
    fn no_estimate_during_warm_up_and_the_first_second() {
        assert_eq!(run(48_000.0, 480, 1.4, Duration::ZERO), None);
        assert!(run(48_000.0, 480, 1.6, Duration::ZERO).is_some());
    }

    #[test]
    fn measures_a_fast_device_in_ppm() {
        // A device 100 ppm fast, measured over a minute with 5 ms jitter.
        let nominal = 48_000.0;
        let rate = nominal * (1.0 + 100e-6);
        let measured = run(rate, 640, 60.0, Duration::from_millis(5)).expect("an estimate");
        let ppm = (measured / nominal - 1.0) * 1e6;
        assert!((ppm - 100.0).abs() < 5.0, "{ppm} ppm");
    }

    #[test]
    fn a_stall_starts_the_fit_over() {
        let start = Instant::now();
        let mut estimator = RateEstimator::new();
        let ms = |n: u64| start + Duration::from_millis(n);
        // 2 s of 10 ms callbacks, then a 300 ms stall whose frames are lost,
        // then 2 s more.
        let mut last = None;
        for i in 0..=200 {
            last = estimator.on_callback(ms(i * 10), 480, false);
        }
        assert!((last.expect("an estimate") - 48_000.0).abs() < 1.0);
        assert_eq!(estimator.on_callback(ms(2_300), 480, false), None);
        for i in 1..=99 {
            assert_eq!(
                estimator.on_callback(ms(2_300 + i * 10), 480, false),
                None,
                "{i}"
            );
        }
        for i in 100..=200 {
            last = estimator.on_callback(ms(2_300 + i * 10), 480, false);
        }
        // Without the restart the lost 300 ms would read as ~13 % slow.
        assert!(
            (last.expect("an estimate") - 48_000.0).abs() < 1.0,
            "{last:?}"
        );
    }

    #[test]
    fn an_xrun_starts_the_fit_over() {
        let start = Instant::now();
        let mut estimator = RateEstimator::new();
        let ms = |n: u64| start + Duration::from_millis(n);
        for i in 0..=200 {
            estimator.on_callback(ms(i * 10), 480, false);
        }
        assert_eq!(estimator.on_callback(ms(2_010), 480, true), None);
        assert_eq!(estimator.on_callback(ms(2_020), 480, false), None);
    }

    #[test]
    fn jitter_bounds_the_short_term_error() {
        // Over 3 s, 10 ms of jitter on every third callback.
        let measured = run(44_100.0, 441, 3.0, Duration::from_millis(10)).expect("an estimate");
        assert!((measured / 44_100.0 - 1.0).abs() < 0.002, "{measured}");
    }
}
