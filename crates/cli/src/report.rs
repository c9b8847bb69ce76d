//! Results: a table for people and one `BENCH name=value` line per metric
//! for scripts.

use std::fmt::Write as _;

/// How a measured value compares with its goal.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The goal as printed, e.g. `<= 150 MB`.
    pub text: String,
    /// Whether the value meets it.
    pub met: bool,
}

/// One measured number.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// Machine-readable name, unit included: `idle_rss_total_mb`.
    pub key: String,
    /// Human label for the table.
    pub label: String,
    /// The value.
    pub value: f64,
    /// Digits after the decimal point when printed.
    pub decimals: usize,
    /// The unit shown in the table.
    pub unit: &'static str,
    /// The goal, if this metric has one.
    pub target: Option<Target>,
}

impl Metric {
    /// A metric without a goal.
    pub fn new(
        key: impl Into<String>,
        label: impl Into<String>,
        value: f64,
        decimals: usize,
        unit: &'static str,
    ) -> Self {
        Self {
            key: key.into(),
            label: label.into(),
            value,
            decimals,
            unit,
            target: None,
        }
    }

    /// Goal: at most `limit`.
    #[must_use]
    pub fn at_most(mut self, limit: f64) -> Self {
        self.target = Some(Target {
            text: format!("<= {} {}", trim(limit), self.unit),
            met: self.value <= limit,
        });
        self
    }

    /// Goal: below `limit`.
    #[must_use]
    pub fn below(mut self, limit: f64) -> Self {
        self.target = Some(Target {
            text: format!("< {} {}", trim(limit), self.unit),
            met: self.value < limit,
        });
        self
    }

    /// Goal: at least `limit`.
    #[must_use]
    pub fn at_least(mut self, limit: f64) -> Self {
        self.target = Some(Target {
            text: format!(">= {} {}", trim(limit), self.unit),
            met: self.value >= limit,
        });
        self
    }

    fn value_text(&self) -> String {
        format!("{:.*}", self.decimals, self.value)
    }
}

/// `150` rather than `150.0`.
fn trim(value: f64) -> String {
    let text = format!("{value}");
    text.strip_suffix(".0").map_or(text.clone(), str::to_owned)
}

/// The results table followed by the `BENCH` lines.
pub fn render(metrics: &[Metric]) -> String {
    let label_width = metrics
        .iter()
        .map(|m| m.label.len())
        .max()
        .unwrap_or(0)
        .max("metric".len());
    let value_width = metrics
        .iter()
        .map(|m| m.value_text().len())
        .max()
        .unwrap_or(0)
        .max("value".len());
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(
        out,
        "{:<label_width$}  {:>value_width$}  {:<6}  {:<14}  result",
        "metric", "value", "unit", "target"
    );
    for m in metrics {
        let (target, result) = match &m.target {
            Some(t) => (t.text.as_str(), if t.met { "ok" } else { "MISSED" }),
            None => ("", ""),
        };
        let _ = writeln!(
            out,
            "{:<label_width$}  {:>value_width$}  {:<6}  {:<14}  {result}",
            m.label,
            m.value_text(),
            m.unit,
            target
        );
    }
    out.push('\n');
    for m in metrics {
        let _ = writeln!(out, "BENCH {}={}", m.key, m.value_text());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_compare_and_print() {
        let ok = Metric::new("x_mb", "x", 92.5, 1, "MB").at_most(150.0);
        assert_eq!(
            ok.target,
            Some(Target {
                text: "<= 150 MB".into(),
                met: true
            })
        );
        assert!(
            !Metric::new("r", "r", 1500.0, 0, "1/s")
                .at_least(2000.0)
                .target
                .expect("target")
                .met
        );
        assert!(
            !Metric::new("p", "p", 10.0, 2, "ms")
                .below(10.0)
                .target
                .expect("target")
                .met
        );
    }

    #[test]
    fn render_has_a_row_and_a_bench_line_per_metric() {
        let text = render(&[
            Metric::new(
                "idle_connections_held",
                "connections held",
                10_000.0,
                0,
                "conn",
            ),
            Metric::new("rtt_p99_ms", "broadcast RTT p99", 12.345, 3, "ms").below(10.0),
        ]);
        assert!(
            text.contains("BENCH idle_connections_held=10000\n"),
            "{text}"
        );
        assert!(text.contains("BENCH rtt_p99_ms=12.345\n"), "{text}");
        let row = text
            .lines()
            .find(|l| l.starts_with("broadcast RTT p99"))
            .expect("row");
        assert!(row.contains("< 10 ms") && row.ends_with("MISSED"), "{row}");
    }
}
