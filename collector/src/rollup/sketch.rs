//! The latency sketch of a rollup: DDSketch (Masson, Rim and Lee, VLDB 2019) with the
//! logarithmic mapping at 1 % relative accuracy. A duration `d > 0` ns falls in bin
//! `ceil(log_γ d)` with `γ = (1 + α) / (1 − α)`; a bin answers with the value whose relative
//! distance to every duration in it is at most `α`. So a percentile read from a sketch is
//! within 1 % of the exact nearest-rank percentile of the same durations (the one RED
//! computes from raw spans), however many sketches were merged: merging adds bin counts.
//!
//! Why DDSketch rather than an HDR histogram: both are mergeable with a relative bound, but a
//! rollup row holds the few dozen bins its durations touched, and a day of 10 s rows is merged
//! per answer; an HDR histogram of 1 µs–1 h at two significant digits is thousands of
//! counters to allocate and walk per row. Why our own: the crates serialise through serde; a
//! row needs the sparse byte encoding below, decoded straight into the sum (prost's varints).
//! In memory the bins are a dense run (a positive `i64` of nanoseconds has one of ~2,200).

use prost::encoding::{decode_varint, encode_varint};

/// The relative accuracy `α`: every percentile is within this fraction of the exact one.
pub const RELATIVE_ACCURACY: f64 = 0.01;

/// The bin a stored sketch (ClickHouse's rollups) gives durations of zero or less.
pub const ZERO_BIN: i32 = i32::MIN;

/// `ln γ`.
fn ln_gamma() -> f64 {
    ((1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY)).ln()
}

/// A sketch of durations in nanoseconds.
///
/// The bins are kept dense, as counts of bins `offset, offset + 1, …`: a positive `i64` of
/// nanoseconds falls in bins 0 to [`MAX_BIN`], so a sketch holds at most 2,200 or so counts,
/// and adding or merging is an index rather than a tree walk (the writer merges every batch
/// into its cells; RED merges thousands of rows an answer). Invariant: `counts` is empty or
/// starts and ends with a non-zero count, so equal sketches are equal values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sketch {
    counts: Vec<u64>,
    /// The bin of `counts[0]`.
    offset: i32,
    /// Durations of zero (or less, from a clock that went back).
    zeros: u64,
}

/// The highest bin a positive `i64` of nanoseconds falls in is 2,184; stored bins past this
/// bound are damage.
pub const MAX_BIN: i32 = 2_300;

/// A stored sketch that does not decode (a damaged row).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a latency sketch does not decode: {0}")]
pub struct SketchError(&'static str);

impl Sketch {
    /// Adds one duration.
    pub fn add(&mut self, duration_ns: i64) {
        if duration_ns <= 0 {
            self.zeros += 1;
        } else {
            *self.slot(bin_of(duration_ns)) += 1;
        }
    }

    /// Adds `n` durations of one bin (as [`bin_sql`] computed it; [`ZERO_BIN`] for zeros; a
    /// bin outside 0..=[`MAX_BIN`], which no duration gives, is clamped into it).
    pub fn add_bin(&mut self, bin: i32, n: u64) {
        if bin == ZERO_BIN {
            self.zeros += n;
        } else if n > 0 {
            *self.slot(bin.clamp(0, MAX_BIN)) += n;
        }
    }

    /// The count of `bin` (in 0..=MAX_BIN), the run grown to hold it.
    fn slot(&mut self, bin: i32) -> &mut u64 {
        if self.counts.is_empty() {
            self.offset = bin;
            self.counts.push(0);
        } else if bin < self.offset {
            let grow = (self.offset - bin) as usize;
            self.counts.splice(0..0, std::iter::repeat_n(0, grow));
            self.offset = bin;
        } else if (bin - self.offset) as usize >= self.counts.len() {
            self.counts.resize((bin - self.offset) as usize + 1, 0);
        }
        &mut self.counts[(bin - self.offset) as usize]
    }

    /// The non-empty bins and their counts, lowest first.
    fn bins(&self) -> impl Iterator<Item = (i32, u64)> + '_ {
        (self.offset..)
            .zip(self.counts.iter().copied())
            .filter(|&(_, n)| n > 0)
    }

    /// Durations added (or merged) so far.
    pub fn count(&self) -> u64 {
        self.zeros + self.counts.iter().sum::<u64>()
    }

    /// Adds another sketch's durations.
    pub fn merge(&mut self, other: &Sketch) {
        self.zeros += other.zeros;
        let Some(&last) = other.counts.last() else {
            return;
        };
        // Grown once to cover both runs, then added index by index.
        *self.slot(other.offset) += 0;
        *self.slot(other.offset + other.counts.len() as i32 - 1) += 0;
        let from = (other.offset - self.offset) as usize;
        for (mine, n) in self.counts[from..].iter_mut().zip(&other.counts) {
            *mine += n;
        }
        debug_assert!(last > 0 && self.counts.last().is_some_and(|&n| n > 0));
    }

    /// Takes out durations merged in before (retention deleting spans a row counted); bins
    /// left empty at either end go, so the result is as if they had never been added.
    pub fn subtract(&mut self, other: &Sketch) {
        self.zeros = self.zeros.saturating_sub(other.zeros);
        for (bin, n) in other.bins() {
            let i = i64::from(bin) - i64::from(self.offset);
            if let Some(have) = usize::try_from(i).ok().and_then(|i| self.counts.get_mut(i)) {
                *have = have.saturating_sub(n);
            }
        }
        let lead = self.counts.iter().take_while(|&&n| n == 0).count();
        self.counts.drain(..lead);
        self.offset += lead as i32;
        while self.counts.last() == Some(&0) {
            self.counts.pop();
        }
        if self.counts.is_empty() {
            self.offset = 0;
        }
    }

    /// The nearest-rank percentile `q` (0..=1) in nanoseconds, within [`RELATIVE_ACCURACY`]
    /// of the exact one; `None` when empty.
    pub fn quantile_ns(&self, q: f64) -> Option<f64> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        let rank = ((q * count as f64).ceil() as u64).clamp(1, count);
        if rank <= self.zeros {
            return Some(0.0);
        }
        let mut seen = self.zeros;
        let mut top = None;
        for (bin, n) in self.bins() {
            seen += n;
            top = Some(bin);
            if seen >= rank {
                return Some(value_of(bin));
            }
        }
        top.map(value_of)
    }

    /// The stored form: the zeros, the number of bins, then each bin as the distance from
    /// the previous one (zigzag) and its count, all varints.
    pub fn encode(&self) -> Vec<u8> {
        let bins = self.counts.iter().filter(|&&n| n > 0).count();
        let mut out = Vec::with_capacity(4 + 3 * bins);
        encode_varint(self.zeros, &mut out);
        encode_varint(bins as u64, &mut out);
        let mut previous = 0i64;
        for (bin, n) in self.bins() {
            let delta = i64::from(bin) - previous;
            encode_varint(((delta << 1) ^ (delta >> 63)) as u64, &mut out);
            encode_varint(n, &mut out);
            previous = i64::from(bin);
        }
        out
    }

    /// A sketch of bins and their counts, as ClickHouse's `sumMap` of bins answers them.
    pub fn from_bins(bins: &[i32], counts: &[u64]) -> Sketch {
        let mut s = Sketch::default();
        for (bin, n) in bins.iter().zip(counts) {
            s.add_bin(*bin, *n);
        }
        s
    }

    /// Adds a stored sketch's durations without building it first.
    pub fn merge_encoded(&mut self, mut bytes: &[u8]) -> Result<(), SketchError> {
        let mut next = || decode_varint(&mut bytes).map_err(|_| SketchError("truncated"));
        self.zeros += next()?;
        let bins = next()?;
        let mut bin = 0i64;
        for _ in 0..bins {
            let z = next()?;
            bin += (z >> 1) as i64 ^ -((z & 1) as i64);
            let index = i32::try_from(bin)
                .ok()
                .filter(|b| (0..=MAX_BIN).contains(b))
                .ok_or(SketchError("a bin out of range"))?;
            let n = next()?;
            if n > 0 {
                *self.slot(index) += n;
            }
        }
        Ok(())
    }

    /// A stored sketch.
    pub fn decode(bytes: &[u8]) -> Result<Sketch, SketchError> {
        let mut s = Sketch::default();
        s.merge_encoded(bytes)?;
        Ok(s)
    }
}

/// The bin of a positive duration.
fn bin_of(duration_ns: i64) -> i32 {
    ((duration_ns as f64).ln() / ln_gamma()).ceil() as i32
}

/// The bin of the duration in nanoseconds `column` as ClickHouse computes it: the same
/// double arithmetic as [`Sketch::add`] (`ln d / ln γ`, with `ln γ` written so that it
/// parses to the same double), so both stores put a duration in the same bin.
pub fn bin_sql(column: &str) -> String {
    format!(
        "if({column} > 0, toInt32(ceil(log(toFloat64({column})) / {:?})), {ZERO_BIN})",
        ln_gamma()
    )
}

/// What a bin answers: `2γ^i / (γ + 1)`, at most `α` away (relatively) from every duration
/// in `(γ^(i−1), γ^i]`.
fn value_of(bin: i32) -> f64 {
    let gamma = ln_gamma().exp();
    2.0 * (f64::from(bin) * ln_gamma()).exp() / (gamma + 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Exact nearest-rank percentile, as RED computes it from raw spans.
    fn exact(sorted: &[i64], q: f64) -> f64 {
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1] as f64
    }

    /// Durations spread over six orders of magnitude (1 µs to ~1 s), from a fixed-seed
    /// generator: latency as services see it, many distinct values.
    fn durations(n: usize, seed: u64) -> Vec<i64> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let u = (x >> 11) as f64 / (1u64 << 53) as f64;
                (1_000.0 * 10f64.powf(6.0 * u)) as i64
            })
            .collect()
    }

    fn within_bound(got: f64, want: f64) -> bool {
        (got - want).abs() <= want * (RELATIVE_ACCURACY + 1e-9)
    }

    #[test]
    fn every_percentile_is_within_one_percent_of_the_exact_one() {
        let mut all = durations(20_000, 7);
        let mut s = Sketch::default();
        all.iter().for_each(|&d| s.add(d));
        all.sort_unstable();
        for q in [0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0] {
            let (got, want) = (s.quantile_ns(q).expect("not empty"), exact(&all, q));
            assert!(within_bound(got, want), "q {q}: {got} vs {want}");
        }
        assert_eq!(s.count(), 20_000);
    }

    #[test]
    fn merged_sketches_answer_as_one_over_all_durations() {
        let parts: Vec<Vec<i64>> = (0..50).map(|k| durations(400, 100 + k)).collect();
        let mut merged = Sketch::default();
        for part in &parts {
            let mut s = Sketch::default();
            part.iter().for_each(|&d| s.add(d));
            merged.merge_encoded(&s.encode()).expect("decodes");
        }
        let mut all: Vec<i64> = parts.concat();
        let mut one = Sketch::default();
        all.iter().for_each(|&d| one.add(d));
        assert_eq!(merged, one);
        all.sort_unstable();
        for q in [0.5, 0.95, 0.99] {
            let (got, want) = (merged.quantile_ns(q).expect("not empty"), exact(&all, q));
            assert!(within_bound(got, want), "q {q}: {got} vs {want}");
        }
    }

    #[test]
    fn bins_added_as_stored_are_durations_added() {
        let mut direct = Sketch::default();
        let mut binned = Sketch::default();
        for d in [0, 1, 999, 1_000_000, 7_500_000_000] {
            direct.add(d);
            binned.add_bin(if d > 0 { bin_of(d) } else { ZERO_BIN }, 1);
        }
        assert_eq!(direct, binned);
        let sql = bin_sql("Duration");
        assert!(sql.starts_with("if(Duration > 0, toInt32(ceil(log(toFloat64(Duration)) / 0.0"));
        assert!(sql.ends_with(", -2147483648)"), "{sql}");
    }

    #[test]
    fn every_positive_duration_has_a_bin_within_the_bound() {
        assert_eq!(bin_of(1), 0);
        assert!(bin_of(i64::MAX) <= MAX_BIN, "{}", bin_of(i64::MAX));
        let mut s = Sketch::default();
        s.add(i64::MAX);
        s.add(1);
        assert_eq!(s.count(), 2);
        assert_eq!(Sketch::decode(&s.encode()).expect("decodes"), s);
        // A stored bin no duration gives is damage, not an allocation.
        let mut far = Vec::new();
        for v in [0u64, 1, ((MAX_BIN as u64) + 1) << 1, 1] {
            encode_varint(v, &mut far);
        }
        assert_eq!(Sketch::decode(&far), Err(SketchError("a bin out of range")));
    }

    #[test]
    fn sketches_built_in_any_order_are_equal_values() {
        let (a, b) = (durations(300, 11), durations(300, 12));
        let mut ab = Sketch::default();
        a.iter().chain(&b).for_each(|&d| ab.add(d));
        let mut ba = Sketch::default();
        b.iter().chain(&a).rev().for_each(|&d| ba.add(d));
        assert_eq!(ab, ba);
        let (mut low, mut high) = (Sketch::default(), Sketch::default());
        low.add(1_000);
        high.add(1_000_000_000);
        let mut merged = high.clone();
        merged.merge(&low);
        let mut other_way = low.clone();
        other_way.merge(&high);
        assert_eq!(merged, other_way);
        merged.subtract(&high);
        assert_eq!(merged, low);
    }

    #[test]
    fn zero_durations_and_empty_sketches() {
        assert_eq!(Sketch::default().quantile_ns(0.5), None);
        let mut s = Sketch::default();
        for d in [0, -5, 0, 1_000_000] {
            s.add(d);
        }
        assert_eq!(s.quantile_ns(0.5), Some(0.0));
        assert!(within_bound(s.quantile_ns(1.0).expect("not empty"), 1e6));
        assert_eq!(Sketch::decode(&s.encode()).expect("decodes"), s);
    }

    #[test]
    fn a_row_is_a_few_bytes_per_bin_and_damage_is_an_error() {
        let mut s = Sketch::default();
        durations(10_000, 3).iter().for_each(|&d| s.add(d));
        let bytes = s.encode();
        // Six decades at 1 %: about 700 bins, each a one-byte step and a count.
        assert!(bytes.len() < 4 * s.bins().count(), "{} bytes", bytes.len());
        assert_eq!(
            Sketch::decode(&bytes[..bytes.len() - 1]),
            Err(SketchError("truncated"))
        );
        assert_eq!(Sketch::decode(&[]), Err(SketchError("truncated")));
    }
}
