//! What a run measures. Each virtual user records into its own [`Recorder`] (no lock is
//! shared on the hot path but its own); the run merges them for progress lines, the
//! timeline (one [`Interval`] a second) and the final report. Latencies are HDR histograms
//! in microseconds, so a p99.9 is as exact as a p50.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Longest latency a histogram holds exactly; longer ones are recorded as this.
const MAX_US: u64 = 3_600_000_000;

/// Why a request got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The connection could not be made (refused, unreachable).
    Connect,
    /// No complete answer within `--timeout`.
    Timeout,
    /// The connection was reset or closed mid-request.
    Reset,
    /// The answer was not valid HTTP.
    Protocol,
    /// A template needed a value that was not there (a capture that failed earlier).
    Template,
}

fn histogram(sigfig: u8) -> Histogram<u32> {
    Histogram::new_with_bounds(1, MAX_US, sigfig)
        .expect("1 µs to 1 h with 2 or 3 significant figures is a valid histogram")
}

/// Counters and a latency histogram for one request name (or a merge of several).
#[derive(Debug, Clone)]
pub struct Stats {
    /// Microseconds; in the open model measured from the intended send time.
    pub latency: Histogram<u32>,
    /// Requests that got an answer or failed trying (template errors included).
    pub requests: u64,
    /// Transport errors plus answers with an unexpected status.
    pub failures: u64,
    pub status: BTreeMap<u16, u64>,
    pub errors: BTreeMap<ErrorKind, u64>,
    pub checks_passed: u64,
    pub checks_failed: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Open model: sends that went out more than 2 ms (the timer's granularity) late.
    pub late_sends: u64,
    pub max_send_delay_us: u64,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            latency: histogram(3),
            requests: 0,
            failures: 0,
            status: BTreeMap::new(),
            errors: BTreeMap::new(),
            checks_passed: 0,
            checks_failed: 0,
            bytes_in: 0,
            bytes_out: 0,
            late_sends: 0,
            max_send_delay_us: 0,
        }
    }
}

impl Stats {
    pub fn merge(&mut self, other: &Stats) {
        let _ = self.latency.add(&other.latency);
        self.requests += other.requests;
        self.failures += other.failures;
        for (k, v) in &other.status {
            *self.status.entry(*k).or_default() += v;
        }
        for (k, v) in &other.errors {
            *self.errors.entry(*k).or_default() += v;
        }
        self.checks_passed += other.checks_passed;
        self.checks_failed += other.checks_failed;
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
        self.late_sends += other.late_sends;
        self.max_send_delay_us = self.max_send_delay_us.max(other.max_send_delay_us);
    }

    pub fn error_rate(&self) -> f64 {
        ratio(self.failures, self.requests)
    }

    pub fn check_rate(&self) -> f64 {
        if self.checks_passed + self.checks_failed == 0 {
            1.0
        } else {
            ratio(self.checks_passed, self.checks_passed + self.checks_failed)
        }
    }

    /// A latency quantile (0.0-1.0) in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.latency.is_empty() {
            return 0.0;
        }
        self.latency.value_at_quantile(q) as f64 / 1000.0
    }

    pub fn max_ms(&self) -> f64 {
        self.latency.max() as f64 / 1000.0
    }

    pub fn min_ms(&self) -> f64 {
        if self.latency.is_empty() {
            0.0
        } else {
            self.latency.min() as f64 / 1000.0
        }
    }

    pub fn mean_ms(&self) -> f64 {
        self.latency.mean() / 1000.0
    }

    pub fn stdev_ms(&self) -> f64 {
        self.latency.stdev() / 1000.0
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// One second of the run, for the timeline.
#[derive(Debug, Clone)]
pub struct Interval {
    pub latency: Histogram<u32>,
    pub requests: u64,
    pub failures: u64,
}

impl Default for Interval {
    fn default() -> Self {
        Self {
            latency: histogram(2),
            requests: 0,
            failures: 0,
        }
    }
}

impl Interval {
    pub fn merge(&mut self, other: &Interval) {
        let _ = self.latency.add(&other.latency);
        self.requests += other.requests;
        self.failures += other.failures;
    }
}

/// The outcome of one request, as a virtual user records it.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Index of the request name in the run's list of names.
    pub name: usize,
    /// `None` when no answer came (see `error`).
    pub status: Option<u16>,
    pub error: Option<ErrorKind>,
    /// `None` when there is nothing meaningful to record (connect failure, template error).
    pub latency: Option<Duration>,
    pub failed: bool,
    pub checks_passed: u32,
    pub checks_failed: u32,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// How late the send was against its intended time (open model only).
    pub send_delay: Option<Duration>,
}

impl Outcome {
    /// A request of name `name` that has not (yet) succeeded.
    pub fn new(name: usize) -> Self {
        Self {
            name,
            status: None,
            error: None,
            latency: None,
            failed: true,
            checks_passed: 0,
            checks_failed: 0,
            bytes_in: 0,
            bytes_out: 0,
            send_delay: None,
        }
    }

    /// Why it failed, as a request span says it: the error kind, or the status when the
    /// status failed it; `None` when it passed.
    pub fn error_text(&self) -> Option<String> {
        match (&self.error, self.status) {
            (Some(k), _) => Some(format!("{k:?}").to_lowercase()),
            (None, Some(s)) if self.failed => Some(s.to_string()),
            _ => None,
        }
    }
}

/// One virtual user's measurements: per request name, and the current second.
#[derive(Debug, Default)]
pub struct Recorder {
    pub by_name: Vec<Option<Stats>>,
    pub interval: Interval,
}

impl Recorder {
    pub fn record(&mut self, o: &Outcome) {
        if self.by_name.len() <= o.name {
            self.by_name.resize_with(o.name + 1, || None);
        }
        let s = self.by_name[o.name].get_or_insert_with(Stats::default);
        s.requests += 1;
        self.interval.requests += 1;
        if o.failed {
            s.failures += 1;
            self.interval.failures += 1;
        }
        if let Some(code) = o.status {
            *s.status.entry(code).or_default() += 1;
        }
        if let Some(kind) = o.error {
            *s.errors.entry(kind).or_default() += 1;
        }
        if let Some(l) = o.latency {
            let us = (l.as_micros() as u64).clamp(1, MAX_US);
            let _ = s.latency.record(us);
            let _ = self.interval.latency.record(us);
        }
        s.checks_passed += u64::from(o.checks_passed);
        s.checks_failed += u64::from(o.checks_failed);
        s.bytes_in += o.bytes_in;
        s.bytes_out += o.bytes_out;
        if let Some(d) = o.send_delay {
            let us = d.as_micros() as u64;
            if d > crate::engine::TIMER_SLACK {
                s.late_sends += 1;
            }
            s.max_send_delay_us = s.max_send_delay_us.max(us);
        }
    }

    /// Takes the current second's figures, leaving a fresh interval.
    pub fn take_interval(&mut self) -> Interval {
        std::mem::take(&mut self.interval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_add_up_and_merge() {
        let mut r = Recorder::default();
        for ms in [10u64, 20, 30, 40] {
            r.record(&Outcome {
                name: 1,
                status: Some(200),
                error: None,
                latency: Some(Duration::from_millis(ms)),
                failed: false,
                checks_passed: 1,
                checks_failed: 0,
                bytes_in: 100,
                bytes_out: 10,
                send_delay: Some(Duration::from_millis(ms / 10)),
            });
        }
        r.record(&Outcome {
            name: 1,
            status: None,
            error: Some(ErrorKind::Reset),
            latency: None,
            failed: true,
            checks_passed: 0,
            checks_failed: 1,
            bytes_in: 0,
            bytes_out: 10,
            send_delay: None,
        });
        let s = r.by_name[1].clone().expect("recorded");
        assert_eq!((s.requests, s.failures), (5, 1));
        assert_eq!(s.status.get(&200), Some(&4));
        assert_eq!(s.errors.get(&ErrorKind::Reset), Some(&1));
        assert!(
            (s.quantile_ms(0.5) - 20.0).abs() < 0.1,
            "{}",
            s.quantile_ms(0.5)
        );
        assert!((s.max_ms() - 40.0).abs() < 0.1);
        assert_eq!(s.late_sends, 2, "1, 2, 3 and 4 ms late: two over 2 ms");
        assert!((s.check_rate() - 0.8).abs() < 1e-9);
        let mut all = Stats::default();
        all.merge(&s);
        all.merge(&s);
        assert_eq!((all.requests, all.bytes_in), (10, 800));
        assert_eq!(r.take_interval().requests, 5);
        assert_eq!(r.interval.requests, 0);
    }
}
