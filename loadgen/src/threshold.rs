//! Pass/fail criteria in k6's spirit: `p99 < 300ms`, `error_rate < 0.01`, `checks > 0.99`,
//! `rps >= 100`. A breached threshold makes the run exit with code 99, so CI can gate on it.

use serde::{Deserialize, Serialize};

use crate::metrics::Stats;

#[derive(Debug, thiserror::Error, PartialEq)]
#[error(
    "threshold {expr:?}: {reason}. Write METRIC OP VALUE, e.g. \"p99 < 300ms\", \"error_rate < 0.01\", \"checks > 0.99\"; metrics: p50..p99.9, min, max, mean (with ms, s or us), error_rate, checks, rps, requests"
)]
pub struct ThresholdError {
    pub expr: String,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Metric {
    /// A latency quantile (0.0-1.0), in ms.
    Quantile(f64),
    Min,
    Max,
    Mean,
    ErrorRate,
    Checks,
    Rps,
    Requests,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Lt,
    Le,
    Gt,
    Ge,
}

/// One parsed criterion.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    pub expr: String,
    metric: Metric,
    op: Op,
    /// Latencies in ms.
    value: f64,
}

/// A threshold's verdict on a run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Verdict {
    /// `all`, `scenario:NAME` or `request:NAME`.
    pub scope: String,
    pub expr: String,
    /// What was measured, in the threshold's terms (latencies in ms).
    pub value: f64,
    /// The unit of `value`: `ms`, `req/s`, or empty for ratios and counts.
    #[serde(default)]
    pub unit: String,
    pub passed: bool,
}

impl Verdict {
    /// The measured value as a person reads it: `7.4 ms`, `0.9 %`, `312.0 req/s`, `1200`.
    pub fn measured(&self) -> String {
        match self.unit.as_str() {
            "%" => format!("{:.2} %", self.value * 100.0),
            "" => format!("{}", self.value),
            unit => format!("{:.1} {unit}", self.value),
        }
    }
}

impl Threshold {
    pub fn parse(expr: &str) -> Result<Self, ThresholdError> {
        let err = |reason: &str| ThresholdError {
            expr: expr.to_string(),
            reason: reason.to_string(),
        };
        let ops = [("<=", Op::Le), (">=", Op::Ge), ("<", Op::Lt), (">", Op::Gt)];
        let (at, sym, op) = ops
            .iter()
            .filter_map(|(sym, op)| expr.find(sym).map(|at| (at, *sym, *op)))
            .min_by_key(|(at, sym, _)| (*at, usize::MAX - sym.len()))
            .ok_or_else(|| err("no comparison (<, <=, >, >=)"))?;
        let name = expr[..at].trim();
        let raw = expr[at + sym.len()..].trim();
        let metric = match name {
            "min" => Metric::Min,
            "max" => Metric::Max,
            "mean" | "avg" => Metric::Mean,
            "error_rate" => Metric::ErrorRate,
            "checks" => Metric::Checks,
            "rps" => Metric::Rps,
            "requests" => Metric::Requests,
            p if p.starts_with('p') => {
                let q: f64 = p[1..]
                    .parse()
                    .map_err(|_| err(&format!("unknown metric {p:?}")))?;
                if !(0.0..=100.0).contains(&q) {
                    return Err(err("a percentile is between p0 and p100"));
                }
                Metric::Quantile(q / 100.0)
            }
            other => return Err(err(&format!("unknown metric {other:?}"))),
        };
        let latency = matches!(
            metric,
            Metric::Quantile(_) | Metric::Min | Metric::Max | Metric::Mean
        );
        let value = if latency {
            let (num, scale) = if let Some(n) = raw.strip_suffix("ms") {
                (n, 1.0)
            } else if let Some(n) = raw.strip_suffix("us").or(raw.strip_suffix("µs")) {
                (n, 0.001)
            } else if let Some(n) = raw.strip_suffix('s') {
                (n, 1000.0)
            } else {
                // A bare number could be any unit: say which.
                return Err(err(&format!(
                    "{raw:?} has no unit: write {raw}ms, {raw}s or {raw}us"
                )));
            };
            num.trim()
                .parse::<f64>()
                .map_err(|_| err(&format!("{raw:?} is not a duration")))?
                * scale
        } else {
            raw.parse::<f64>()
                .map_err(|_| err(&format!("{raw:?} is not a number")))?
        };
        Ok(Self {
            expr: expr.trim().to_string(),
            metric,
            op,
            value,
        })
    }

    /// Measures `stats` (over `secs` seconds) and says whether the threshold holds.
    pub fn judge(&self, scope: &str, stats: &Stats, secs: f64) -> Verdict {
        let value = match self.metric {
            Metric::Quantile(q) => stats.quantile_ms(q),
            Metric::Min => stats.min_ms(),
            Metric::Max => stats.max_ms(),
            Metric::Mean => stats.mean_ms(),
            Metric::ErrorRate => stats.error_rate(),
            Metric::Checks => stats.check_rate(),
            Metric::Rps => {
                if secs > 0.0 {
                    stats.requests as f64 / secs
                } else {
                    0.0
                }
            }
            Metric::Requests => stats.requests as f64,
        };
        let passed = match self.op {
            Op::Lt => value < self.value,
            Op::Le => value <= self.value,
            Op::Gt => value > self.value,
            Op::Ge => value >= self.value,
        };
        let unit = match self.metric {
            Metric::Quantile(_) | Metric::Min | Metric::Max | Metric::Mean => "ms",
            Metric::ErrorRate | Metric::Checks => "%",
            Metric::Rps => "req/s",
            Metric::Requests => "",
        };
        Verdict {
            scope: scope.to_string(),
            expr: self.expr.clone(),
            value,
            unit: unit.to_string(),
            passed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Outcome, Recorder};
    use std::time::Duration;

    fn stats(latencies_ms: &[u64], failed: usize) -> Stats {
        let mut r = Recorder::default();
        for (i, ms) in latencies_ms.iter().enumerate() {
            r.record(&Outcome {
                name: 0,
                status: Some(if i < failed { 500 } else { 200 }),
                error: None,
                latency: Some(Duration::from_millis(*ms)),
                failed: i < failed,
                checks_passed: 1,
                checks_failed: 0,
                bytes_in: 0,
                bytes_out: 0,
                send_delay: None,
            });
        }
        r.by_name[0].clone().expect("recorded")
    }

    #[test]
    fn thresholds_parse_and_judge() {
        let s = stats(&[10, 10, 10, 10, 10, 10, 10, 10, 10, 400], 1);
        let judge = |e: &str| Threshold::parse(e).expect(e).judge("all", &s, 2.0);
        assert!(judge("p50 < 11ms").passed);
        assert!(!judge("p99 < 300ms").passed);
        assert!(judge("p99 <= 0.5s").passed);
        assert!(judge("max < 401ms").passed);
        assert!(!judge("error_rate < 0.1").passed, "1 in 10 failed");
        assert!(judge("error_rate <= 0.1").passed);
        assert!(judge("checks > 0.99").passed);
        assert!(judge("rps >= 5").passed);
        assert!((judge("p50 < 11ms").value - 10.0).abs() < 0.1);
        for bad in [
            "p99 300ms",
            "latency < 3ms",
            "p99 < fast",
            "p101 < 1ms",
            "p99 < 300",
        ] {
            let e = Threshold::parse(bad).expect_err(bad);
            assert!(e.to_string().contains("p99 < 300ms"), "{e}");
        }
    }
}
