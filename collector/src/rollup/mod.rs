//! Rollups written at ingest, so that RED over hours reads a row per 10 s per operation
//! instead of every span, as the OpenTelemetry Collector's spanmetrics connector and Jaeger's
//! SPM do. A span counts in the bucket of its start time, under its service, operation, kind,
//! resource (a version is a set of resources), status and HTTP status class; each cell holds
//! the requests, errors, throttled requests (HTTP 429) and a latency [`Sketch`].
//!
//! Counts are exact; percentiles are within [`sketch::RELATIVE_ACCURACY`] of the exact
//! nearest-rank ones. A store writes a batch's cells in the transaction that writes its
//! spans, so a crash never leaves the two disagreeing.

pub mod edges;
pub mod sketch;

use std::collections::HashMap;

pub use sketch::Sketch;

use crate::model::{SpanKind, StatusCode};

/// The width of a rollup bucket: RED answers from rollups when its step is a multiple.
pub const BUCKET_NS: i64 = 10_000_000_000;

/// Coarser rows a store may keep besides its 10 s buckets, in buckets: a minute, ten minutes
/// and an hour (SQLite's sealed segments do). A RED step of whole tier rows from the start of
/// one can read them instead.
pub const TIER_BUCKETS: [i64; 3] = [6, 60, 360];

/// RED's default steps over 10 minutes and more, in seconds: whole buckets, and each made of
/// whole rows of a tier (a day at about 60 points is 30-minute steps: 48 rows a key from the
/// 10-minute tier rather than 8,640 buckets).
const STEP_LADDER_S: [i64; 15] = [
    10, 20, 30, 60, 120, 300, 600, 1_200, 1_800, 3_600, 7_200, 10_800, 21_600, 43_200, 86_400,
];

/// The default RED step for a window of `window_ns`: about 60 points, in whole seconds; from
/// a 10-minute window up, the shortest of [`STEP_LADDER_S`] that gives at most 60 (whole
/// days past the ladder), so the answer reads rollups, and their coarsest tier that fits.
pub fn default_step_ns(window_ns: i64) -> i64 {
    const S: i64 = 1_000_000_000;
    let seconds = ceil_div(window_ns / 60, S).max(1);
    if window_ns < 60 * BUCKET_NS {
        return seconds * S;
    }
    let step = STEP_LADDER_S
        .into_iter()
        .find(|&l| l >= seconds)
        .unwrap_or_else(|| ceil_div(seconds, 86_400) * 86_400);
    step * S
}

/// `a / b` rounded up, for `b > 0`.
pub fn ceil_div(a: i64, b: i64) -> i64 {
    a.div_euclid(b) + i64::from(a.rem_euclid(b) != 0)
}

/// Where a RED window of `step_ns` steps read from rollups starts, at or before `start_ns`:
/// at the start of a row of the coarsest tier the step is made of (an hour, ten minutes, a
/// minute), else of a bucket; so each step covers whole rows of that tier.
pub fn aligned_start(start_ns: i64, step_ns: i64) -> i64 {
    let width = tier_width_ns(step_ns);
    start_ns.div_euclid(width) * width
}

/// The width of the coarsest tier (an hour, ten minutes, a minute) a step is made of; a
/// bucket otherwise.
pub fn tier_width_ns(step_ns: i64) -> i64 {
    TIER_BUCKETS
        .into_iter()
        .rev()
        .map(|w| w * BUCKET_NS)
        .find(|w| step_ns % w == 0)
        .unwrap_or(BUCKET_NS)
}

/// Buckets `first..end` as ranges of whole rows of the given tiers (`widths` in buckets,
/// each dividing the next), coarsest first where whole rows fit, and 10 s buckets (width 1)
/// at the ends: `(width, first row, end)`, rows keyed by the first bucket they cover.
pub fn tier_cover(first: i64, end: i64, widths: &[i64]) -> Vec<(i64, i64, i64)> {
    let mut out = Vec::new();
    cover_into(first, end, widths, &mut out);
    out
}

fn cover_into(first: i64, end: i64, widths: &[i64], out: &mut Vec<(i64, i64, i64)>) {
    if first >= end {
        return;
    }
    let Some((&width, finer)) = widths.split_last() else {
        out.push((1, first, end));
        return;
    };
    let (lo, hi) = (
        ceil_div(first, width) * width,
        end.div_euclid(width) * width,
    );
    if lo >= hi {
        return cover_into(first, end, finer, out);
    }
    out.push((width, lo, hi));
    cover_into(first, lo, finer, out);
    cover_into(hi, end, finer, out);
}

/// The bucket a span that started at `start_ns` counts in (buckets since the epoch).
pub fn bucket_of(start_ns: i64) -> i64 {
    start_ns.div_euclid(BUCKET_NS)
}

/// The class of an HTTP status (`4` for 404), 0 without one.
pub fn http_class(status: Option<u16>) -> u8 {
    match status {
        Some(s @ 100..=599) => (s / 100) as u8,
        _ => 0,
    }
}

/// What one rollup cell counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedCell {
    pub requests: u64,
    pub errors: u64,
    /// Answered `429 Too Many Requests`: refused, not failed (OpenTelemetry leaves a server
    /// span's status unset on a 4xx).
    pub throttled: u64,
    pub latency: Sketch,
}

impl RedCell {
    pub fn add(&mut self, duration_ns: i64, error: bool, http_status: Option<u16>) {
        self.requests += 1;
        self.errors += u64::from(error);
        self.throttled += u64::from(http_status == Some(429));
        self.latency.add(duration_ns);
    }

    pub fn merge(&mut self, other: &RedCell) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.throttled += other.throttled;
        self.latency.merge(&other.latency);
    }

    /// Takes out what `other` counted (spans deleted by retention).
    pub fn subtract(&mut self, other: &RedCell) {
        self.requests = self.requests.saturating_sub(other.requests);
        self.errors = self.errors.saturating_sub(other.errors);
        self.throttled = self.throttled.saturating_sub(other.throttled);
        self.latency.subtract(&other.latency);
    }
}

/// A cell's key in a store's own IDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RedKey {
    pub service: i64,
    pub bucket: i64,
    pub op: i64,
    pub kind: SpanKind,
    pub resource: i64,
    pub status: StatusCode,
    pub http_class: u8,
}

/// One batch's cells. Added to per span: foldhash (randomly seeded per map) rather than
/// SipHash, which cost more than the rest of the add.
#[derive(Debug, Default)]
pub struct RedCells(pub foldhash::HashMap<RedKey, RedCell>);

impl RedCells {
    pub fn add(&mut self, key: RedKey, duration_ns: i64, http_status: Option<u16>) {
        let error = key.status == StatusCode::Error;
        self.0
            .entry(key)
            .or_default()
            .add(duration_ns, error, http_status);
    }
}

/// One step of a RED series: the counts and percentiles of one operation, or of the whole
/// service (`operation: None`), over `buckets_per_step` buckets. `operation` indexes
/// [`RedSteps::names`].
#[derive(Debug, Clone, PartialEq)]
pub struct RedStep {
    pub step: u32,
    pub operation: Option<u32>,
    pub requests: u64,
    pub errors: u64,
    pub throttled: u64,
    /// p50, p95 and p99 in nanoseconds (`None` without requests).
    pub percentiles_ns: [Option<f64>; 3],
}

/// The percentiles every [`RedStep`] carries.
pub const QUANTILES: [f64; 3] = [0.5, 0.95, 0.99];

/// A store's answer to a [`crate::store::RollupQuery`], ordered by step, the whole service
/// before its operations.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RedSteps {
    pub names: Vec<String>,
    pub steps: Vec<RedStep>,
    /// Computed from spans, and more spans were in the window than were read.
    pub truncated: bool,
}

impl RedSteps {
    pub fn name(&self, index: u32) -> &str {
        self.names.get(index as usize).map_or("", String::as_str)
    }
}

/// Merges cells (or spans) into steps: per step and operation, and per step for the whole
/// service, naming operations as it goes.
pub struct StepMerger {
    /// The first bucket of the first step, and buckets per step.
    first: i64,
    per_step: i64,
    steps: i64,
    names: Vec<String>,
    index: HashMap<String, u32>,
    /// Per (step, operation); the whole service's steps are merged from them once, at the
    /// end, rather than every row merged twice.
    cells: HashMap<(u32, u32), RedCell>,
}

impl StepMerger {
    /// Steps of `per_step` buckets from bucket `first` up to (not including) bucket `end`.
    pub fn new(first: i64, end: i64, per_step: i64) -> Self {
        let per_step = per_step.max(1);
        Self {
            first,
            per_step,
            steps: (end - first).div_euclid(per_step),
            names: Vec::new(),
            index: HashMap::new(),
            cells: HashMap::new(),
        }
    }

    pub fn name(&mut self, operation: &str) -> u32 {
        if let Some(&i) = self.index.get(operation) {
            return i;
        }
        let i = self.names.len() as u32;
        self.names.push(operation.to_string());
        self.index.insert(operation.to_string(), i);
        i
    }

    /// The step a bucket falls in, if inside.
    fn step_of(&self, bucket: i64) -> Option<u32> {
        let k = (bucket - self.first).div_euclid(self.per_step);
        (0..self.steps).contains(&k).then_some(k as u32)
    }

    /// Adds one stored cell of `bucket` and `operation`.
    pub fn add(&mut self, bucket: i64, operation: u32, cell: &RedCell) {
        if let Some(k) = self.step_of(bucket) {
            self.cells.entry((k, operation)).or_default().merge(cell);
        }
    }

    /// Adds one stored cell whose sketch is still encoded: its bins go straight into the
    /// step's sum.
    pub fn add_stored(
        &mut self,
        bucket: i64,
        operation: u32,
        (requests, errors, throttled): (u64, u64, u64),
        latency: &[u8],
    ) -> Result<(), sketch::SketchError> {
        let Some(k) = self.step_of(bucket) else {
            return Ok(());
        };
        let c = self.cells.entry((k, operation)).or_default();
        c.requests += requests;
        c.errors += errors;
        c.throttled += throttled;
        c.latency.merge_encoded(latency)
    }

    /// Adds one span, for stores (or segments) without rollups.
    pub fn add_span(
        &mut self,
        operation: u32,
        start_ns: i64,
        duration_ns: i64,
        error: bool,
        http_status: Option<u16>,
    ) {
        if let Some(k) = self.step_of(bucket_of(start_ns)) {
            let cell = self.cells.entry((k, operation)).or_default();
            cell.add(duration_ns, error, http_status);
        }
    }

    pub fn finish(self) -> RedSteps {
        let step = |(step, operation): (u32, Option<u32>), c: &RedCell| RedStep {
            step,
            operation,
            requests: c.requests,
            errors: c.errors,
            throttled: c.throttled,
            percentiles_ns: QUANTILES.map(|q| c.latency.quantile_ns(q)),
        };
        let mut totals: HashMap<u32, RedCell> = HashMap::new();
        let mut steps: Vec<RedStep> = Vec::with_capacity(self.cells.len() * 2);
        for (&(k, op), c) in &self.cells {
            totals.entry(k).or_default().merge(c);
            steps.push(step((k, Some(op)), c));
        }
        steps.extend(totals.iter().map(|(&k, c)| step((k, None), c)));
        steps.sort_unstable_by_key(|s| (s.step, s.operation));
        RedSteps {
            names: self.names,
            steps,
            truncated: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tier_cover_takes_whole_rows_coarsest_first_and_buckets_at_the_ends() {
        assert_eq!(tier_cover(5, 5, &TIER_BUCKETS), vec![]);
        assert_eq!(tier_cover(3, 5, &TIER_BUCKETS), vec![(1, 3, 5)]);
        assert_eq!(tier_cover(3, 20, &[]), vec![(1, 3, 20)]);
        // 359..1100: hour rows from 360 to 1080, bucket 359, minutes to 1098, two buckets.
        assert_eq!(
            tier_cover(359, 1100, &TIER_BUCKETS),
            vec![
                (360, 360, 1080),
                (1, 359, 360),
                (6, 1080, 1098),
                (1, 1098, 1100)
            ]
        );
        // Every bucket covered once, whatever the window.
        for (first, end) in [(0, 8_640), (-7, 1_000), (13, 14), (100, 4_000)] {
            let mut covered: Vec<i64> = tier_cover(first, end, &TIER_BUCKETS)
                .into_iter()
                .flat_map(|(w, lo, hi)| (lo..hi).step_by(w as usize).flat_map(move |r| r..r + w))
                .collect();
            covered.sort();
            assert_eq!(covered, (first..end).collect::<Vec<_>>(), "{first}..{end}");
        }
    }

    #[test]
    fn buckets_are_ten_seconds_from_the_epoch_also_before_it() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(BUCKET_NS - 1), 0);
        assert_eq!(bucket_of(BUCKET_NS), 1);
        assert_eq!(bucket_of(-1), -1);
    }

    #[test]
    fn a_window_starts_on_the_coarsest_tier_its_step_is_made_of() {
        let s = 1_000_000_000;
        let t = 7_200 * s + 125 * s; // 2:02:05 after an hour boundary
        assert_eq!(aligned_start(t, 20 * s), 7_200 * s + 120 * s);
        assert_eq!(aligned_start(t, 24 * 60 * s), 7_200 * s + 120 * s);
        assert_eq!(aligned_start(t, 90 * s), 7_200 * s + 120 * s);
        assert_eq!(aligned_start(t, 7_200 * s), 7_200 * s);
        assert_eq!(aligned_start(t, 1_800 * s), 7_200 * s);
        assert_eq!(aligned_start(-5 * s, 60 * s), -60 * s);
    }

    #[test]
    fn default_steps_are_about_sixty_points_of_whole_tier_rows() {
        let (s, m, h) = (1_000_000_000i64, 60_000_000_000i64, 3_600_000_000_000i64);
        for (window, step) in [
            (5 * m, 5 * s),
            (10 * m, 10 * s),
            (15 * m, 20 * s),
            (h, m),
            (6 * h, 10 * m),
            (24 * h, 30 * m),
            (7 * 24 * h, 3 * h),
            (100 * 24 * h, 2 * 24 * h),
        ] {
            assert_eq!(default_step_ns(window), step, "window {}s", window / s);
            assert!(ceil_div(window, step) <= 60, "window {}s", window / s);
        }
        assert_eq!(tier_width_ns(30 * m), 10 * m);
        assert_eq!(tier_width_ns(3 * h), h);
    }

    #[test]
    fn subtracting_what_was_merged_gives_the_cell_before() {
        let mut before = RedCell::default();
        before.add(1_000, false, None);
        before.add(0, false, None);
        let mut gone = RedCell::default();
        gone.add(5_000_000, true, Some(429));
        gone.add(0, false, None);
        let mut cell = before.clone();
        cell.merge(&gone);
        cell.subtract(&gone);
        assert_eq!(cell, before);
        assert_eq!(cell.latency.encode(), before.latency.encode());
    }

    #[test]
    fn classes_of_http_statuses() {
        assert_eq!(http_class(Some(200)), 2);
        assert_eq!(http_class(Some(429)), 4);
        assert_eq!(http_class(Some(503)), 5);
        assert_eq!(http_class(Some(42)), 0);
        assert_eq!(http_class(None), 0);
    }

    #[test]
    fn a_cell_counts_errors_and_throttled_requests_apart() {
        let mut cell = RedCell::default();
        cell.add(1_000, true, Some(500));
        cell.add(2_000, false, Some(429));
        cell.add(3_000, false, None);
        let mut twice = cell.clone();
        twice.merge(&cell);
        assert_eq!((twice.requests, twice.errors, twice.throttled), (6, 2, 2));
        assert_eq!(twice.latency.count(), 6);
    }

    #[test]
    fn steps_hold_each_operation_and_the_whole_service() {
        // Steps of two buckets from bucket 10: buckets 10-11 and 12-13.
        let mut m = StepMerger::new(10, 14, 2);
        let (a, b) = (m.name("GET /a"), m.name("GET /b"));
        assert_eq!(m.name("GET /a"), a);
        let at = |bucket: i64| bucket * BUCKET_NS + 1;
        m.add_span(a, at(10), 5, false, None);
        m.add_span(a, at(12), 5, false, None);
        m.add_span(b, at(11), 5, true, None);
        // Outside the steps: not counted.
        m.add_span(b, at(9), 5, true, None);
        m.add_span(b, at(14), 5, true, None);
        let mut cell = RedCell::default();
        cell.add(7, false, Some(429));
        m.add(13, a, &cell);
        let got = m.finish();
        let rows: Vec<(u32, Option<&str>, u64, u64, u64)> = got
            .steps
            .iter()
            .map(|s| {
                let op = s.operation.map(|o| got.name(o));
                (s.step, op, s.requests, s.errors, s.throttled)
            })
            .collect();
        assert_eq!(
            rows,
            [
                (0, None, 2, 1, 0),
                (0, Some("GET /a"), 1, 0, 0),
                (0, Some("GET /b"), 1, 1, 0),
                (1, None, 2, 0, 1),
                (1, Some("GET /a"), 2, 0, 1),
            ]
        );
        assert_eq!(
            got.steps[0].percentiles_ns[0],
            got.steps[1].percentiles_ns[0]
        );
    }
}
