//! Latency summaries.

use std::time::Duration;

/// The nearest-rank percentile `p` (0 < p <= 100) of `sorted` (ascending):
/// the smallest sample with at least `p`% of the samples at or below it.
/// `None` for no samples or a `p` out of range.
pub fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() || !(p > 0.0 && p <= 100.0) {
        return None;
    }
    // ceil(p/100 * n) is in 1..=n for p in (0, 100]; the float is exact
    // enough for any sample count a benchmark holds.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// p50, p95, p99 and max of a set of samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Number of samples.
    pub count: usize,
    /// Median (nearest rank).
    pub p50: Duration,
    /// 95th percentile (nearest rank).
    pub p95: Duration,
    /// 99th percentile (nearest rank).
    pub p99: Duration,
    /// Largest sample.
    pub max: Duration,
}

impl Summary {
    /// Summarises `samples` (in any order); `None` if there are none.
    pub fn of(mut samples: Vec<Duration>) -> Option<Self> {
        samples.sort_unstable();
        Some(Self {
            count: samples.len(),
            p50: percentile(&samples, 50.0)?,
            p95: percentile(&samples, 95.0)?,
            p99: percentile(&samples, 99.0)?,
            max: *samples.last()?,
        })
    }
}

/// Milliseconds with microsecond resolution, for printing.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms_list(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|v| Duration::from_millis(*v)).collect()
    }

    #[test]
    fn nearest_rank_percentiles() {
        let sorted = ms_list(&(1..=100).collect::<Vec<_>>());
        assert_eq!(percentile(&sorted, 50.0), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&sorted, 99.0), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&sorted, 100.0), Some(Duration::from_millis(100)));
        assert_eq!(percentile(&sorted, 0.5), Some(Duration::from_millis(1)));

        let small = ms_list(&[10, 20, 30]);
        assert_eq!(percentile(&small, 50.0), Some(Duration::from_millis(20)));
        assert_eq!(percentile(&small, 99.0), Some(Duration::from_millis(30)));
        assert_eq!(
            percentile(&ms_list(&[7]), 99.0),
            Some(Duration::from_millis(7))
        );
    }

    #[test]
    fn percentile_edge_cases() {
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&ms_list(&[1]), 0.0), None);
        assert_eq!(percentile(&ms_list(&[1]), 101.0), None);
        assert_eq!(percentile(&ms_list(&[1]), f64::NAN), None);
    }

    #[test]
    fn summary_sorts_its_input() {
        let summary = Summary::of(ms_list(&[5, 1, 4, 2, 3])).expect("samples");
        assert_eq!(summary.count, 5);
        assert_eq!(summary.p50, Duration::from_millis(3));
        assert_eq!(summary.p95, Duration::from_millis(5));
        assert_eq!(summary.p99, Duration::from_millis(5));
        assert_eq!(summary.max, Duration::from_millis(5));
        assert_eq!(Summary::of(Vec::new()), None);
    }
}
