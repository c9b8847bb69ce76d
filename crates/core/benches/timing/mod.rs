//! The per-frame timing columns the benchmarks print.

use std::time::Duration;

/// Column titles matching [`columns`].
pub const HEADER: &str = "  mean µs    p50 µs    p99 µs    max µs % of a core";

/// Mean, median, 99th percentile and maximum of `sorted` (ascending
/// per-frame times) in µs, then the share of one core that doing this for
/// every `frame` of audio takes.
pub fn columns(sorted: &[Duration], frame: Duration) -> String {
    let micros = |d: Duration| d.as_secs_f64() * 1e6;
    let mean = sorted.iter().sum::<Duration>() / sorted.len().max(1) as u32;
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q) as usize];
    format!(
        "{:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>10.2}%",
        micros(mean),
        micros(at(0.5)),
        micros(at(0.99)),
        micros(at(1.0)),
        mean.as_secs_f64() / frame.as_secs_f64() * 100.0,
    )
}
