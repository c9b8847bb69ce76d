//! The delay estimator: how much later than the fastest recent frames each
//! frame arrives, and the playout delay that covers a high quantile of that
//! lateness.
//!
//! Each frame's *transit* is its arrival time minus the time its RTP
//! timestamp stands for. The sender's and receiver's clocks are unrelated, so
//! a transit means nothing alone; the smallest transit over the last
//! `history` (the *base*) stands for the fastest path, and a frame's
//! *relative delay* is its transit minus the base. The target is a quantile
//! of relative delays, taken from a histogram with exponential forgetting.
//!
//! The histogram learns the largest relative delay of each resample
//! interval rather than every frame, so one burst of 25 jittery frames is
//! one event, not 25, and forgetting is paced by time, not packet rate. An
//! interval is cut short (at most every `EARLY_GAP`) when a frame is later
//! than the current estimate, so the estimate climbs within a few hundred
//! milliseconds when jitter starts (grows quickly) while it falls one
//! interval at a time (shrinks slowly).
//!
//! A route change that makes the path slower looks like jitter at first:
//! every frame is late. Once every frame of the last `SETTLE` came late,
//! that lateness becomes the new base, and the updates it inflated (kept
//! pending for `SETTLE` before they are committed) are lowered by it, so
//! the target does not keep a step for the next half minute.

use std::collections::VecDeque;

/// Width of one histogram bucket: finer than any stretch, so rounding never
/// decides the delay.
const BUCKET_US: i64 = 1_000;

/// Until this many updates, the n-th weighs `1 / (n + 1)` rather than the
/// steady `1 - forget_factor`: the histogram starts as the plain mean of
/// what was seen (the 95th percentile of fewer than 20 updates is their
/// largest: cautious while little is known), and a single update weighs
/// less than 5 %, too little to move the quantile alone, from the 20th on.
const START_UPDATES: u64 = 20;

/// Bound on the sliding-minimum window, whatever the arrival times: a
/// window of 2 s holds 100 frames of 20 ms, so this only bites on garbage.
const MAX_WINDOW: usize = 1_024;

/// How long every frame must come late before that is taken as a slower
/// path rather than jitter, and how long updates stay revisable.
const SETTLE_US: i64 = 1_000_000;

/// The smallest rise of the fastest transit that counts as a step.
const STEP_US: i64 = 10_000;

/// A step needs this many frames in `settle`: two late frames after a
/// lull are no evidence.
const STEP_MIN_FRAMES: usize = 10;

/// Least time between two updates that a late frame triggers: a burst of
/// frames held up together is one event, not one per frame.
const EARLY_GAP_US: i64 = 100_000;

/// Bound on pending updates (two a second, plus one per frame later than
/// the estimate): past it, the oldest are committed early.
const MAX_PENDING: usize = 128;

/// Tuning of the estimator, in microseconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EstimatorConfig {
    /// Quantile of relative delays the target covers, in (0, 1).
    pub quantile: f64,
    /// Weight kept by the old histogram at each update, in (0, 1).
    pub forget_factor: f64,
    /// Largest relative delay of each interval this long is one update.
    pub resample_us: i64,
    /// How far back the base (fastest transit) is looked for.
    pub history_us: i64,
    /// Relative delays above this land in the last bucket.
    pub max_us: i64,
    /// The estimate before anything was measured.
    pub initial_us: i64,
}

/// One frame's arrival, for the sliding minimum of transits.
#[derive(Debug, Clone, Copy)]
struct Arrival {
    arrival_us: i64,
    transit_us: i64,
}

/// A histogram of relative delays with exponential forgetting.
#[derive(Debug, Clone)]
struct Histogram {
    buckets: Vec<f64>,
    updates: u64,
    forget_factor: f64,
    quantile: f64,
    /// The quantile before the first update.
    initial_us: i64,
}

impl Histogram {
    fn new(buckets: usize, initial_us: i64, forget_factor: f64, quantile: f64) -> Self {
        Self {
            buckets: vec![0.0; buckets.max(1)],
            updates: 0,
            forget_factor,
            quantile,
            initial_us,
        }
    }

    fn index(&self, value_us: i64) -> usize {
        let rounded = (value_us.max(0) + BUCKET_US / 2) / BUCKET_US;
        usize::try_from(rounded)
            .unwrap_or(usize::MAX)
            .min(self.buckets.len() - 1)
    }

    fn add(&mut self, value_us: i64) {
        let steady = 1.0 - self.forget_factor;
        let weight = if self.updates < START_UPDATES {
            (1.0 / (self.updates as f64 + 1.0)).max(steady)
        } else {
            steady
        };
        for bucket in &mut self.buckets {
            *bucket *= 1.0 - weight;
        }
        let index = self.index(value_us);
        self.buckets[index] += weight;
        self.updates = self.updates.saturating_add(1);
    }

    fn quantile_us(&self) -> i64 {
        if self.updates == 0 {
            return self.initial_us;
        }
        let total: f64 = self.buckets.iter().sum();
        let wanted = self.quantile * total;
        let mut sum = 0.0;
        for (index, weight) in self.buckets.iter().enumerate() {
            sum += weight;
            if sum >= wanted {
                return i64::try_from(index)
                    .unwrap_or(i64::MAX)
                    .saturating_mul(BUCKET_US);
            }
        }
        i64::try_from(self.buckets.len() - 1)
            .unwrap_or(i64::MAX)
            .saturating_mul(BUCKET_US)
    }
}

/// Tracks relative arrival delays and turns them into a delay estimate.
#[derive(Debug, Clone)]
pub(crate) struct DelayEstimator {
    config: EstimatorConfig,
    /// Arrivals of the last `history`, with increasing transits (a sliding
    /// minimum): the front is the base.
    window: VecDeque<Arrival>,
    /// Arrival times of the last `settle`, to tell a step from a lull.
    recent: VecDeque<i64>,
    /// The base; kept when the window empties so an outage does not forget
    /// where the stream was.
    base_us: Option<i64>,
    /// Learned from updates older than `settle`, which no step can revise.
    committed: Histogram,
    /// Updates of the last `settle`, as (arrival, value): a step in the
    /// path's delay found later lowers them before they are committed.
    pending: VecDeque<(i64, i64)>,
    /// `committed` plus `pending`: what the estimate comes from.
    provisional: Histogram,
    /// The quantile of `provisional`.
    estimate_us: i64,
    /// Start of the current resample interval, and its largest delay.
    interval: Option<(i64, i64)>,
}

impl DelayEstimator {
    pub(crate) fn new(config: EstimatorConfig) -> Self {
        let buckets = usize::try_from(config.max_us / BUCKET_US + 1).unwrap_or(1);
        let histogram = Histogram::new(
            buckets,
            config.initial_us,
            config.forget_factor,
            config.quantile,
        );
        Self {
            config,
            window: VecDeque::with_capacity(128),
            recent: VecDeque::with_capacity(128),
            base_us: None,
            estimate_us: histogram.quantile_us(),
            provisional: histogram.clone(),
            committed: histogram,
            pending: VecDeque::with_capacity(MAX_PENDING),
            interval: None,
        }
    }

    /// The smallest recent transit (arrival minus timestamp time), if any
    /// frame arrived since the last [`DelayEstimator::restart`].
    pub(crate) fn base_us(&self) -> Option<i64> {
        self.base_us
    }

    /// The delay estimate: the configured quantile of relative delays.
    pub(crate) fn estimate_us(&self) -> i64 {
        self.estimate_us
    }

    /// The relative delay a frame with this transit would have now.
    pub(crate) fn relative_us(&self, transit_us: i64) -> Option<i64> {
        self.base_us.map(|base| transit_us.saturating_sub(base))
    }

    /// Records the first copy of a frame and returns its relative delay.
    pub(crate) fn observe(&mut self, transit_us: i64, arrival_us: i64) -> i64 {
        let horizon = arrival_us.saturating_sub(self.config.history_us);
        while self
            .window
            .front()
            .is_some_and(|oldest| oldest.arrival_us < horizon)
        {
            self.window.pop_front();
        }
        while self
            .window
            .back()
            .is_some_and(|newest| newest.transit_us >= transit_us)
        {
            self.window.pop_back();
        }
        if self.window.len() >= MAX_WINDOW {
            self.window.pop_front();
        }
        self.window.push_back(Arrival {
            arrival_us,
            transit_us,
        });
        let settle_start = arrival_us.saturating_sub(self.settle_us());
        while self.recent.front().is_some_and(|&a| a < settle_start) {
            self.recent.pop_front();
        }
        if self.recent.len() >= MAX_WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(arrival_us);
        self.rebase_after_step(settle_start);
        let base = self.window.front().map_or(transit_us, |a| a.transit_us);
        self.base_us = Some(base);
        let relative = transit_us.saturating_sub(base);

        let (start, largest) = match self.interval {
            Some((start, largest)) => (start, largest.max(relative)),
            None => (arrival_us, relative),
        };
        // A frame later than the estimate is news: learn it soon (once the
        // last update is `EARLY_GAP` old), so sustained jitter is learned
        // within a few hundred milliseconds while one spike counts once.
        // Otherwise wait for the interval to end (an arrival clock running
        // backwards ends it too, so bad input cannot freeze learning).
        let elapsed = arrival_us.saturating_sub(start);
        let news = relative > self.estimate_us() + BUCKET_US
            && elapsed >= EARLY_GAP_US.min(self.config.resample_us);
        if news || elapsed >= self.config.resample_us || elapsed < 0 {
            self.interval = Some((arrival_us, i64::MIN));
            self.learn(arrival_us, largest);
        } else {
            self.interval = Some((start, largest));
        }
        relative
    }

    /// Forgets the base: the next frame belongs to a new stream whose
    /// timestamps have nothing to do with the old ones. What was learned
    /// about the network's jitter is kept.
    pub(crate) fn restart(&mut self) {
        self.window.clear();
        self.recent.clear();
        self.base_us = None;
        self.interval = None;
    }

    fn settle_us(&self) -> i64 {
        SETTLE_US.min(self.config.history_us / 2)
    }

    /// If every frame of the last `settle` came at least `STEP_US` later
    /// than the base, the path got slower (a route change): that is the
    /// new base, and the updates it inflated are lowered by the step, so a
    /// step is not mistaken for jitter for the next half minute.
    fn rebase_after_step(&mut self, settle_start: i64) {
        let Some(oldest) = self.window.front() else {
            return;
        };
        if oldest.arrival_us >= settle_start || self.recent.len() < STEP_MIN_FRAMES {
            return;
        }
        // The window is a sliding minimum, so the first entry of the last
        // `settle` is the smallest transit in it.
        let Some(recent_min) = self.window.iter().find(|a| a.arrival_us >= settle_start) else {
            return;
        };
        let step = recent_min.transit_us.saturating_sub(oldest.transit_us);
        if step < STEP_US {
            return;
        }
        while self
            .window
            .front()
            .is_some_and(|a| a.arrival_us < settle_start)
        {
            self.window.pop_front();
        }
        for (arrival, value) in &mut self.pending {
            if *arrival >= settle_start {
                *value = value.saturating_sub(step).max(0);
            }
        }
        if let Some((_, largest)) = &mut self.interval {
            *largest = largest.saturating_sub(step).max(0);
        }
        self.refresh();
    }

    /// Adds one update: pending for `settle`, then committed.
    fn learn(&mut self, arrival_us: i64, value_us: i64) {
        if self.pending.len() >= MAX_PENDING
            && let Some((_, oldest)) = self.pending.pop_front()
        {
            self.committed.add(oldest);
        }
        self.pending.push_back((arrival_us, value_us));
        let settled = arrival_us.saturating_sub(self.settle_us());
        while let Some(&(arrival, value)) = self.pending.front() {
            if arrival > settled {
                break;
            }
            self.committed.add(value);
            self.pending.pop_front();
        }
        self.refresh();
    }

    fn refresh(&mut self) {
        self.provisional.clone_from(&self.committed);
        for &(_, value) in &self.pending {
            self.provisional.add(value);
        }
        self.estimate_us = self.provisional.quantile_us();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> EstimatorConfig {
        EstimatorConfig {
            quantile: 0.95,
            forget_factor: 0.983,
            resample_us: 500_000,
            history_us: 2_000_000,
            max_us: 400_000,
            initial_us: 30_000,
        }
    }

    /// Feeds frames every 20 ms whose relative delay `delay(n)` (in µs) is
    /// added to a constant transit; returns the estimator.
    fn feed(estimator: &mut DelayEstimator, from: i64, frames: i64, delay: impl Fn(i64) -> i64) {
        for n in from..from + frames {
            let arrival = n * 20_000 + delay(n);
            estimator.observe(arrival - n * 20_000 + 5_000, arrival);
        }
    }

    #[test]
    fn start_guess_holds_until_the_first_measurement() {
        let mut estimator = DelayEstimator::new(config());
        assert_eq!(estimator.estimate_us(), 30_000);
        assert_eq!(estimator.base_us(), None);
        // Until the first interval ends, the guess stands.
        feed(&mut estimator, 0, 25, |_| 0);
        assert_eq!(estimator.estimate_us(), 30_000);
        feed(&mut estimator, 25, 1, |_| 0);
        assert_eq!(estimator.estimate_us(), 0);
        assert_eq!(estimator.base_us(), Some(5_000));
    }

    #[test]
    fn early_on_the_largest_delay_seen_counts() {
        let mut estimator = DelayEstimator::new(config());
        feed(&mut estimator, 0, 150, |n| if n == 60 { 50_000 } else { 0 });
        assert_eq!(estimator.estimate_us(), 50_000, "cautious at first");
        // One spike among 20 intervals is under 5 %: forgotten in time.
        feed(&mut estimator, 150, 1_500, |_| 0);
        assert_eq!(estimator.estimate_us(), 0);
    }

    #[test]
    fn relative_delay_is_measured_from_the_fastest_recent_frame() {
        let mut estimator = DelayEstimator::new(config());
        assert_eq!(estimator.observe(10_000, 0), 0);
        assert_eq!(estimator.observe(25_000, 20_000), 15_000);
        assert_eq!(estimator.observe(7_000, 40_000), 0);
        assert_eq!(estimator.relative_us(12_000), Some(5_000));
        // 2 s later the fast frame has left the window.
        assert_eq!(estimator.observe(9_000, 2_100_000), 0);
        assert_eq!(estimator.base_us(), Some(9_000));
    }

    #[test]
    fn grows_within_a_fraction_of_a_second_and_shrinks_over_many() {
        let mut estimator = DelayEstimator::new(config());
        feed(&mut estimator, 0, 500, |_| 0);
        assert_eq!(estimator.estimate_us(), 0);
        // Jitter starts: every other frame is 40 ms late.
        let jitter = |n: i64| if n % 2 == 0 { 40_000 } else { 0 };
        feed(&mut estimator, 500, 15, jitter);
        assert!(
            estimator.estimate_us() >= 35_000,
            "300 ms of jitter should be learned, got {}",
            estimator.estimate_us()
        );
        feed(&mut estimator, 515, 500, jitter);
        assert_eq!(estimator.estimate_us(), 40_000);
        // Jitter stops: 5 s later the estimate still covers it...
        feed(&mut estimator, 1_015, 250, |_| 0);
        assert_eq!(estimator.estimate_us(), 40_000);
        // ...and two minutes later it is gone.
        feed(&mut estimator, 1_265, 6_000, |_| 0);
        assert_eq!(estimator.estimate_us(), 0);
    }

    #[test]
    fn rare_late_frames_do_not_move_the_quantile() {
        let mut estimator = DelayEstimator::new(config());
        feed(&mut estimator, 0, 500, |_| 0);
        // One frame 100 ms late every 20 s.
        feed(&mut estimator, 500, 6_000, |n| {
            if n % 1_000 == 0 { 100_000 } else { 0 }
        });
        assert!(
            estimator.estimate_us() < 10_000,
            "{}",
            estimator.estimate_us()
        );
    }

    #[test]
    fn restart_forgets_the_base_but_not_the_jitter() {
        let mut estimator = DelayEstimator::new(config());
        feed(
            &mut estimator,
            0,
            500,
            |n| if n % 2 == 0 { 30_000 } else { 0 },
        );
        let learned = estimator.estimate_us();
        estimator.restart();
        assert_eq!(estimator.base_us(), None);
        assert_eq!(estimator.estimate_us(), learned);
        assert_eq!(estimator.observe(-5_000_000, 11_000_000), 0);
    }

    #[test]
    fn delays_beyond_the_range_land_in_the_last_bucket() {
        let mut histogram = Histogram::new(401, 0, 0.983, 0.95);
        for _ in 0..10 {
            histogram.add(5_000_000);
        }
        assert_eq!(histogram.quantile_us(), 400_000);
        histogram.add(-3);
        assert_eq!(histogram.quantile_us(), 400_000);
    }

    #[test]
    fn a_lasting_step_becomes_the_new_base_and_leaves_no_trace() {
        let mut estimator = DelayEstimator::new(config());
        feed(&mut estimator, 0, 500, |_| 0);
        // The path gets 80 ms slower for good.
        feed(&mut estimator, 500, 20, |_| 80_000);
        assert!(
            estimator.estimate_us() >= 75_000,
            "looks like jitter at first"
        );
        feed(&mut estimator, 520, 40, |_| 80_000);
        assert_eq!(estimator.base_us(), Some(85_000));
        assert_eq!(
            estimator.estimate_us(),
            0,
            "once it lasted, it is a new base"
        );
        assert_eq!(estimator.relative_us(85_000), Some(0));
    }

    #[test]
    fn jitter_is_not_taken_for_a_step() {
        let mut estimator = DelayEstimator::new(config());
        feed(&mut estimator, 0, 2_000, |n| (n * 7_919 % 50) * 1_000);
        assert_eq!(estimator.base_us(), Some(5_000));
        assert!(estimator.estimate_us() >= 45_000);
    }
}
