//! Edge rollups: the calls between services, counted at ingest so that the dependencies
//! and the service map over a day read a row per 10 s per edge instead of every span.
//!
//! A call is the rule of [`crate::query::dependencies::links`]: a span whose parent is a
//! span of another service is a call from that service to its own; so is a span whose
//! parent is of its own service or never came, and whose first link is to a span of another
//! service (an asynchronous hop). Both sides of a call often arrive in different exports, so
//! the [`EdgeMatcher`] keeps them in memory for a bounded time, as the OpenTelemetry
//! Collector's servicegraph connector does: the owner of every span seen in the last
//! [`GENERATION_NS`] to twice that, and the spans still waiting for the span they hang on.
//! A span counts (in the bucket of its own start, with its duration, error and protocol)
//! in the batch that completes its pair, or when its wait ends; a side that arrives later
//! than that is not joined (the raw query, which sees whole windows, would have joined it).
//!
//! Time is the batches' arrival time, in whole generations since the epoch, and nothing
//! else: the same batches in the same order leave the same state and count the same calls.
//! A store that writes the counts in each batch's transaction can therefore rebuild the
//! matcher after a restart by feeding it again, without writing, the batches of the last
//! [`REPLAY_GENERATIONS`] generations ([`replay_from`]): what they counted was committed
//! with them, and what still waits waits again.
//!
//! A remembered span is an entry of 16 bytes: its trace and span IDs (24 bytes) hashed with
//! the matcher's random seed to the 64-bit key that finds it, 32 other bits of them that
//! must match too, and its service. At hundreds of thousands of spans a second the tables
//! hold millions of entries and every lookup misses the caches: their size is the
//! matcher's cost. Two spans whose keys collide (about once in 10^7 generations at the
//! largest) are one entry, the later kept: the earlier is then as if not remembered.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};

use gauntlet_query_api::dependencies::DependencyLink;

use super::{Sketch, bucket_of};
use crate::model::{SpanId, TraceId};

/// How long a span is remembered, and waits, at least (twice as long at most): spans of
/// one call are exported within the SDKs' batch delay (5 s by default) of each other.
pub const GENERATION_NS: i64 = 5_000_000_000;

/// Generations of batches a replay feeds: the two the state holds, and the one before, whose
/// spans the first of them may have been joined with.
pub const REPLAY_GENERATIONS: i64 = 3;

/// Spans remembered per generation at most; past it, a span is not remembered (its children
/// then count as if it had not come). As many as a table of 2^22 entries of 16 bytes holds
/// (7/8 of them): about 70 MB a generation, 140 MB in all, at any rate; enough for 700k
/// spans a second.
pub const MAX_REMEMBERED: usize = 3_500_000;

/// The arrival time from which a replay must feed batches to rebuild the state the batches
/// up to `last_received_ns` left.
pub fn replay_from(last_received_ns: i64) -> i64 {
    (last_received_ns.div_euclid(GENERATION_NS) - (REPLAY_GENERATIONS - 1)) * GENERATION_NS
}

/// A span as the matcher finds it: the seeded hash of its trace and span IDs, and 32 other
/// bits of them that tell it from a span whose hash collided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SpanRef {
    key: u64,
    check: u32,
}

/// A remembered span: its [`SpanRef::check`] and its service (16 bytes with the key when
/// `S` is `u32`).
#[derive(Debug, Clone, Copy)]
struct Owner<S> {
    check: u32,
    service: S,
}

/// The tables' keys are already seeded hashes: used as they are, not hashed again.
#[derive(Debug, Default, Clone, Copy)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed; anything else is folded in rather than lost.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, key: u64) {
        self.0 = key;
    }
}

type KeyMap<V> = HashMap<u64, V, BuildHasherDefault<KeyHasher>>;

/// What the matcher reads of a span; `service` is the store's ID for the span's service.
#[derive(Debug, Clone)]
pub struct EdgeSpan<'a, S> {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent_span_id: Option<SpanId>,
    /// Its first link.
    pub link: Option<(TraceId, SpanId)>,
    pub service: S,
    pub start_ns: i64,
    pub duration_ns: i64,
    pub error: bool,
    /// By [`crate::store::SpanSample::protocol`]'s rule.
    pub protocol: Option<&'a str>,
}

/// One edge cell's key: calls from `caller` to `callee` carried by `protocol` (an index
/// into [`EdgeMatcher::protocol`], 0 for none) whose called span started in `bucket`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EdgeKey<S> {
    pub bucket: i64,
    pub caller: S,
    pub callee: S,
    pub protocol: u32,
}

/// What one edge cell counts: the called spans, those that failed, their durations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EdgeCell {
    pub calls: u64,
    pub errors: u64,
    pub latency: Sketch,
}

impl EdgeCell {
    pub fn add(&mut self, duration_ns: i64, error: bool) {
        self.calls += 1;
        self.errors += u64::from(error);
        self.latency.add(duration_ns);
    }

    pub fn merge(&mut self, other: &EdgeCell) {
        self.calls += other.calls;
        self.errors += other.errors;
        self.latency.merge(&other.latency);
    }
}

/// Cells counted by one or more batches.
pub type EdgeCells<S> = foldhash::HashMap<EdgeKey<S>, EdgeCell>;

/// The calls of each (caller, callee) pair of service names a window's cells add up to, and
/// the protocols they were carried by.
pub type EdgeTotals = BTreeMap<(String, String), (EdgeCell, BTreeSet<String>)>;

/// Adds one stored cell (its latency as sketch bins) to the totals.
pub fn add_cell(
    totals: &mut EdgeTotals,
    (caller, callee, protocol): (&str, &str, &str),
    cell: &EdgeCell,
) {
    let (total, protocols) = totals
        .entry((caller.to_string(), callee.to_string()))
        .or_default();
    total.merge(cell);
    if !protocol.is_empty() && !protocols.contains(protocol) {
        protocols.insert(protocol.to_string());
    }
}

/// The dependencies' links the totals make, sorted by parent then child as the raw query's;
/// the p99 from the merged sketch.
pub fn links(totals: EdgeTotals) -> Vec<DependencyLink> {
    totals
        .into_iter()
        .map(|((parent, child), (cell, protocols))| DependencyLink {
            parent,
            child,
            call_count: cell.calls,
            error_count: cell.errors,
            p99_ms: cell.latency.quantile_ns(0.99).map_or(0.0, |ns| ns / 1e6),
            protocols: protocols.into_iter().collect(),
        })
        .collect()
}

/// A span that counts once the span it hangs on is known.
#[derive(Debug, Clone)]
struct Child<S> {
    service: S,
    bucket: i64,
    duration_ns: i64,
    error: bool,
    protocol: u32,
    /// Its parent until that is found to be of its own service (or the wait ends).
    parent: Option<SpanRef>,
    link: Option<SpanRef>,
}

/// One generation's spans: who owns each, and who waits for which (by [`SpanRef::key`]).
#[derive(Debug)]
struct Generation<S> {
    owners: KeyMap<Owner<S>>,
    waiting: KeyMap<Vec<Child<S>>>,
}

impl<S> Default for Generation<S> {
    fn default() -> Self {
        Self {
            owners: KeyMap::default(),
            waiting: KeyMap::default(),
        }
    }
}

/// Joins the spans of calls between services as batches arrive; see the module's doc.
#[derive(Debug)]
pub struct EdgeMatcher<S> {
    current: Generation<S>,
    previous: Generation<S>,
    /// The current generation's number (arrival time / [`GENERATION_NS`]).
    generation: Option<i64>,
    /// When the current generation's first batch arrived: a generation entered late (the
    /// first after a start) held spans for only part of its time.
    entered_ns: i64,
    protocols: Vec<String>,
    protocol_ids: HashMap<String, u32>,
    /// Seeds [`SpanRef::key`]: a peer cannot choose IDs that collide.
    seed: foldhash::fast::RandomState,
}

impl<S> Default for EdgeMatcher<S> {
    fn default() -> Self {
        Self {
            current: Generation::default(),
            previous: Generation::default(),
            generation: None,
            entered_ns: 0,
            seed: foldhash::fast::RandomState::default(),
            protocols: vec![String::new()],
            protocol_ids: HashMap::new(),
        }
    }
}

impl<S: Copy + Eq + Hash> EdgeMatcher<S> {
    /// The name of a protocol index ("" for 0: none).
    pub fn protocol(&self, index: u32) -> &str {
        self.protocols
            .get(index as usize)
            .map_or("", String::as_str)
    }

    /// Spans remembered and spans waiting.
    pub fn held(&self) -> (usize, usize) {
        let waiting = |g: &Generation<S>| g.waiting.values().map(Vec::len).sum::<usize>();
        (
            self.current.owners.len() + self.previous.owners.len(),
            waiting(&self.current) + waiting(&self.previous),
        )
    }

    /// One batch that arrived at `received_ns`: ends the waits of generations past, then
    /// remembers the batch's spans, completes the pairs waiting for them and starts theirs.
    /// The calls counted are added to `cells`.
    pub fn observe(
        &mut self,
        received_ns: i64,
        spans: &[EdgeSpan<'_, S>],
        cells: &mut EdgeCells<S>,
    ) {
        self.advance(received_ns, cells);
        let refs: Vec<SpanRef> = spans
            .iter()
            .map(|s| self.span_ref(&s.trace_id, &s.span_id))
            .collect();
        for (s, r) in spans.iter().zip(&refs) {
            if self.current.owners.len() < MAX_REMEMBERED {
                let owner = Owner {
                    check: r.check,
                    service: s.service,
                };
                self.current.owners.insert(r.key, owner);
            }
        }
        // Most spans find their parent in their own batch: the waits are often empty.
        let any_waiting = !self.current.waiting.is_empty() || !self.previous.waiting.is_empty();
        for r in refs.iter().filter(|_| any_waiting) {
            for in_current in [true, false] {
                let generation = self.generation_mut(in_current);
                if generation.waiting.is_empty() {
                    continue;
                }
                // Children of a span whose key collided come out too, and wait again.
                if let Some(children) = generation.waiting.remove(&r.key) {
                    for child in children {
                        self.settle(child, Some(in_current), cells);
                    }
                }
            }
        }
        for s in spans {
            if s.parent_span_id.is_none() && s.link.is_none() {
                continue;
            }
            let child = Child {
                service: s.service,
                bucket: bucket_of(s.start_ns),
                duration_ns: s.duration_ns,
                error: s.error,
                protocol: self.protocol_id(s.protocol),
                parent: s.parent_span_id.map(|p| self.span_ref(&s.trace_id, &p)),
                link: s.link.map(|(t, l)| self.span_ref(&t, &l)),
            };
            self.settle(child, Some(true), cells);
        }
    }

    fn span_ref(&self, trace_id: &TraceId, span_id: &SpanId) -> SpanRef {
        let (trace, span) = (u128::from_le_bytes(*trace_id), u64::from_le_bytes(*span_id));
        let mut hasher = self.seed.build_hasher();
        hasher.write_u128(trace);
        hasher.write_u64(span);
        let fold =
            |x: u128| (x as u32) ^ ((x >> 32) as u32) ^ ((x >> 64) as u32) ^ ((x >> 96) as u32);
        SpanRef {
            key: hasher.finish(),
            check: fold(trace) ^ (span as u32).rotate_left(16) ^ ((span >> 32) as u32),
        }
    }

    /// Counts `child` if the span it hangs on is known and of another service, moves on to
    /// its link if that span is of its own service, or makes it wait for the span in the
    /// generation `wait_in` says (current or previous); without one (its wait ended), a
    /// span not known counts as absent.
    fn settle(&mut self, mut child: Child<S>, wait_in: Option<bool>, cells: &mut EdgeCells<S>) {
        for by_parent in [true, false] {
            let key = if by_parent { child.parent } else { child.link };
            let Some(key) = key else { continue };
            match self.owner(key) {
                Some(caller) if caller != child.service => {
                    let cell = cells
                        .entry(EdgeKey {
                            bucket: child.bucket,
                            caller,
                            callee: child.service,
                            protocol: child.protocol,
                        })
                        .or_default();
                    cell.add(child.duration_ns, child.error);
                    return;
                }
                None if wait_in.is_some() => {
                    let generation = self.generation_mut(wait_in == Some(true));
                    generation.waiting.entry(key.key).or_default().push(child);
                    return;
                }
                // Its own service's span, or never came: the link decides.
                _ => child.parent = None,
            }
        }
    }

    fn owner(&self, span: SpanRef) -> Option<S> {
        [&self.current, &self.previous].into_iter().find_map(|g| {
            g.owners
                .get(&span.key)
                .filter(|o| o.check == span.check)
                .map(|o| o.service)
        })
    }

    fn generation_mut(&mut self, current: bool) -> &mut Generation<S> {
        if current {
            &mut self.current
        } else {
            &mut self.previous
        }
    }

    fn protocol_id(&mut self, protocol: Option<&str>) -> u32 {
        let Some(p) = protocol.filter(|p| !p.is_empty()) else {
            return 0;
        };
        if let Some(&id) = self.protocol_ids.get(p) {
            return id;
        }
        let id = self.protocols.len() as u32;
        self.protocols.push(p.to_string());
        self.protocol_ids.insert(p.to_string(), id);
        id
    }

    /// Moves to the generation of `received_ns` (never back: a clock set back keeps the
    /// current one). The waits of the generations that end are over: their children count
    /// by what is known now (still including those generations' spans), then those
    /// generations' spans are forgotten.
    fn advance(&mut self, received_ns: i64, cells: &mut EdgeCells<S>) {
        let now = received_ns.div_euclid(GENERATION_NS);
        let Some(generation) = self.generation else {
            self.generation = Some(now);
            self.entered_ns = received_ns;
            return;
        };
        if now <= generation {
            return;
        }
        // The ending generation's rate over the time it was entered for (at least a fifth of
        // it, so that one batch just before its end does not size the next for millions).
        let held = (generation + 1) * GENERATION_NS - self.entered_ns;
        let expected = self.current.owners.len() as i64 * GENERATION_NS
            / held.clamp(GENERATION_NS / 5, GENERATION_NS);
        self.generation = Some(now);
        self.entered_ns = received_ns;
        let both = now > generation + 1;
        let mut ended: Vec<Child<S>> = self.previous.waiting.drain().flat_map(|(_, c)| c).collect();
        if both {
            ended.extend(self.current.waiting.drain().flat_map(|(_, c)| c));
        }
        for child in ended {
            self.settle(child, None, cells);
        }
        // The ended generation's maps, emptied, hold the next one: a generation holds about
        // as many spans as the one before, so its tables are not grown again from nothing
        // (nor their pages given back and faulted in again) every few seconds.
        let mut recycled = std::mem::take(&mut self.previous);
        recycled.owners.clear();
        recycled.waiting.clear();
        // While the rate climbs (a start, a burst) the recycled tables are too small: sized
        // at once for what the ending generation held at its rate, not doubled (each time a
        // new table, every entry moved, fresh pages faulted in) up to it.
        recycled
            .owners
            .reserve((expected as usize).min(MAX_REMEMBERED));
        if both {
            self.current.owners.clear();
            self.current.waiting.clear();
            self.previous = recycled;
        } else {
            self.previous = std::mem::replace(&mut self.current, recycled);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SpanKind;
    use crate::query::dependencies::links;
    use crate::store::{Samples, SpanSample};

    /// A small deterministic generator (xorshift64*): the same traces every run.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    const NAMES: [&str; 6] = ["gateway", "orders", "payments", "stock", "http", "rabbitmq"];

    /// Traces of 1 to 6 spans over four services (children of a random earlier span, some
    /// parents that never come, some spans linking to a span of an earlier trace), as the
    /// samples the raw query reads.
    fn traces(rng: &mut Rng, count: usize) -> Vec<SpanSample> {
        let mut spans: Vec<SpanSample> = Vec::new();
        for t in 0..count {
            let mut trace_id = [0u8; 16];
            trace_id[..8].copy_from_slice(&rng.next().to_le_bytes());
            trace_id[8..].copy_from_slice(&(t as u64).to_le_bytes());
            let first = spans.len();
            for i in 0..1 + rng.below(6) as usize {
                let parent = match (i, rng.below(10)) {
                    (0, _) => None,
                    (_, 0) => Some(rng.next().to_le_bytes()), // never comes
                    _ => Some(spans[first + rng.below(i as u64) as usize].span_id),
                };
                let link = (first > 0 && rng.below(if i == 0 { 3 } else { 5 }) == 0).then(|| {
                    let s = &spans[rng.below(first as u64) as usize];
                    (s.trace_id, s.span_id)
                });
                spans.push(SpanSample {
                    trace_id,
                    span_id: rng.next().to_le_bytes(),
                    parent_span_id: parent,
                    link,
                    service: rng.below(4) as u32,
                    operation: 0,
                    kind: SpanKind::Server,
                    start_ns: 1_000_000_000_000 + rng.below(60_000_000_000) as i64,
                    duration_ns: 1 + rng.below(1_000_000_000) as i64,
                    error: rng.below(7) == 0,
                    status: crate::model::StatusCode::Unset,
                    http_status: None,
                    protocol: [None, Some(4), Some(5)][rng.below(3) as usize],
                });
            }
        }
        spans
    }

    fn edge_span(s: &SpanSample) -> EdgeSpan<'static, u32> {
        EdgeSpan {
            trace_id: s.trace_id,
            span_id: s.span_id,
            parent_span_id: s.parent_span_id,
            link: s.link,
            service: s.service,
            start_ns: s.start_ns,
            duration_ns: s.duration_ns,
            error: s.error,
            protocol: s.protocol.map(|p| NAMES[p as usize]),
        }
    }

    /// (caller, callee) → (calls, errors, protocols), summed over buckets.
    type Totals = std::collections::BTreeMap<(String, String), (u64, u64, Vec<String>)>;

    fn totals(matcher: &EdgeMatcher<u32>, cells: &EdgeCells<u32>) -> Totals {
        let mut out = Totals::new();
        for (key, cell) in cells {
            let name = |s: u32| NAMES[s as usize].to_string();
            let e = out.entry((name(key.caller), name(key.callee))).or_default();
            e.0 += cell.calls;
            e.1 += cell.errors;
            let protocol = matcher.protocol(key.protocol).to_string();
            if !protocol.is_empty() && !e.2.contains(&protocol) {
                e.2.push(protocol);
                e.2.sort();
            }
        }
        out
    }

    fn raw(spans: Vec<SpanSample>) -> Totals {
        let names = NAMES.iter().map(|n| n.to_string()).collect();
        links(&Samples {
            spans,
            names,
            truncated: false,
        })
        .into_iter()
        .map(|l| {
            (
                (l.parent, l.child),
                (l.call_count, l.error_count, l.protocols),
            )
        })
        .collect()
    }

    /// The spans shuffled into batches of 1 to 64 arriving 10 ms apart from `t0`; each moves
    /// at most `spread` places from where its trace puts it.
    fn shuffled_batches(
        rng: &mut Rng,
        spans: &[SpanSample],
        t0: i64,
        spread: u64,
    ) -> Vec<(i64, Vec<usize>)> {
        let mut order: Vec<usize> = (0..spans.len()).collect();
        order.sort_by_cached_key(|&i| i as u64 + rng.below(spread));
        let mut batches = Vec::new();
        let mut rest = &order[..];
        while !rest.is_empty() {
            let n = (1 + rng.below(64) as usize).min(rest.len());
            batches.push((t0 + batches.len() as i64 * 10_000_000, rest[..n].to_vec()));
            rest = &rest[n..];
        }
        batches
    }

    #[test]
    fn spans_arriving_in_any_order_within_the_wait_count_the_calls_the_raw_query_counts() {
        let mut rng = Rng(0x5eed);
        let spans = traces(&mut rng, 400);
        let batches = shuffled_batches(&mut rng, &spans, 7 * GENERATION_NS, u64::MAX / 2);
        // Every batch within one generation of the first: no wait ends early.
        assert!(
            batches.last().expect("batches").0 < 8 * GENERATION_NS,
            "{}",
            batches.len()
        );
        let mut matcher = EdgeMatcher::default();
        let mut cells = EdgeCells::default();
        for (at, batch) in &batches {
            let batch: Vec<_> = batch.iter().map(|&i| edge_span(&spans[i])).collect();
            matcher.observe(*at, &batch, &mut cells);
        }
        // What still waits, waits for parents that never come: the wait ends two
        // generations on, and the links of those spans decide.
        assert!(matcher.held().1 > 0);
        matcher.observe(10 * GENERATION_NS, &[], &mut cells);
        assert_eq!(matcher.held(), (0, 0));
        let expected = raw(spans);
        assert!(expected.len() >= 8, "{expected:?}");
        assert_eq!(totals(&matcher, &cells), expected);
    }

    fn span(trace: u8, id: u8, parent: Option<u8>, service: u32) -> EdgeSpan<'static, u32> {
        EdgeSpan {
            trace_id: [trace; 16],
            span_id: [id; 8],
            parent_span_id: parent.map(|p| [p; 8]),
            link: None,
            service,
            start_ns: 0,
            duration_ns: 1_000_000,
            error: false,
            protocol: Some("http"),
        }
    }

    fn calls(cells: &EdgeCells<u32>) -> u64 {
        cells.values().map(|c| c.calls).sum()
    }

    /// A generation entered for its last second (the first after a start) sizes the next
    /// for its rate over a whole generation, not for the spans it saw: 2,000 spans in one
    /// second make room for about 10,000, so the next is not grown up to that by doubling.
    #[test]
    fn the_next_generation_is_sized_for_the_rate_of_the_one_before() {
        let g = GENERATION_NS;
        let mut matcher = EdgeMatcher::default();
        let mut cells = EdgeCells::default();
        for batch in 0..20u16 {
            let spans: Vec<_> = (0..100u16)
                .map(|i| {
                    let n = batch * 100 + i;
                    let mut s = span(0, 0, None, 1);
                    s.trace_id[..2].copy_from_slice(&n.to_be_bytes());
                    s
                })
                .collect();
            matcher.observe(11 * g - g / 5 + i64::from(batch), &spans, &mut cells);
        }
        assert_eq!(matcher.held().0, 2_000);
        matcher.observe(11 * g, &[], &mut cells);
        let room = matcher.current.owners.capacity();
        assert!(room >= 10_000, "room for {room} spans");
        assert!(room < 40_000, "room for {room} spans");
    }

    /// A remembered span whose key is the parent's but whose other bits are not (a collision
    /// of the seeded hashes) is not the parent: the child waits for the parent itself.
    #[test]
    fn a_span_whose_key_collided_is_not_the_parent() {
        let g = GENERATION_NS;
        let mut matcher = EdgeMatcher::default();
        let mut cells = EdgeCells::default();
        matcher.observe(10 * g, &[], &mut cells);
        let parent = matcher.span_ref(&[1; 16], &[1; 8]);
        let other = Owner {
            check: !parent.check,
            service: 7,
        };
        matcher.current.owners.insert(parent.key, other);
        matcher.observe(10 * g + 1, &[span(1, 2, Some(1), 1)], &mut cells);
        assert_eq!(calls(&cells), 0, "joined with the colliding span");
        assert_eq!(matcher.held().1, 1);
        matcher.observe(10 * g + 2, &[span(1, 1, None, 0)], &mut cells);
        assert_eq!(calls(&cells), 1);
        assert_eq!(cells.keys().next().map(|k| k.caller), Some(0));
    }

    #[test]
    fn a_child_waits_for_its_parent_until_its_generation_ends() {
        let g = GENERATION_NS;
        let mut matcher = EdgeMatcher::default();
        let mut cells = EdgeCells::default();
        // Child first, parent in the next generation: joined then.
        matcher.observe(10 * g, &[span(1, 2, Some(1), 1)], &mut cells);
        assert_eq!(calls(&cells), 0);
        matcher.observe(11 * g + 1, &[span(1, 1, None, 0)], &mut cells);
        assert_eq!(calls(&cells), 1);
        // A child whose parent comes two generations later is not joined; nor is one whose
        // parent was forgotten.
        matcher.observe(11 * g + 2, &[span(2, 2, Some(1), 1)], &mut cells);
        matcher.observe(13 * g, &[span(2, 1, None, 0)], &mut cells);
        matcher.observe(15 * g, &[span(2, 3, Some(1), 1)], &mut cells);
        assert_eq!(calls(&cells), 1);
        // A link decides when the parent never comes, once the wait ends.
        let mut linked = span(3, 2, Some(9), 2);
        linked.link = Some(([2; 16], [3; 8]));
        matcher.observe(15 * g + 1, &[linked], &mut cells);
        assert_eq!(calls(&cells), 1);
        matcher.observe(17 * g, &[], &mut cells);
        assert_eq!(calls(&cells), 2);
        let edge = cells.keys().find(|k| k.callee == 2).copied();
        assert_eq!(edge.map(|k| (k.caller, k.bucket)), Some((1, 0)));
    }

    /// The cells the batches from `from` on count, fed to `matcher`.
    fn feed(
        matcher: &mut EdgeMatcher<u32>,
        batches: &[(i64, Vec<EdgeSpan<'static, u32>>)],
        count: impl Fn(i64) -> bool,
    ) -> Totals {
        let mut counted = EdgeCells::default();
        for (at, batch) in batches {
            let mut cells = EdgeCells::default();
            matcher.observe(*at, batch, &mut cells);
            if count(*at) {
                for (k, c) in cells {
                    counted.entry(k).or_default().merge(&c);
                }
            }
        }
        totals(matcher, &counted)
    }

    #[test]
    fn a_replay_of_the_last_generations_rebuilds_what_the_matcher_held() {
        let mut rng = Rng(42);
        let spans = traces(&mut rng, 3_000);
        // Batches 200 ms apart: about 14 generations, pairs split across batches and
        // generations.
        let batches: Vec<(i64, Vec<EdgeSpan<'static, u32>>)> =
            shuffled_batches(&mut rng, &spans, 100 * GENERATION_NS, 400)
                .into_iter()
                .enumerate()
                .map(|(i, (_, b))| {
                    let at = 100 * GENERATION_NS + i as i64 * 200_000_000;
                    (at, b.iter().map(|&i| edge_span(&spans[i])).collect())
                })
                .collect();
        let crash = batches.len() * 2 / 3;
        let mut original = EdgeMatcher::default();
        feed(&mut original, &batches[..crash], |_| true);
        let after = feed(&mut original, &batches[crash..], |_| true);

        let from = replay_from(batches[crash - 1].0);
        let replayed: Vec<_> = batches[..crash]
            .iter()
            .filter(|(at, _)| *at >= from)
            .cloned()
            .collect();
        assert!(replayed.len() < crash / 2, "{} of {crash}", replayed.len());
        let mut restarted = EdgeMatcher::default();
        feed(&mut restarted, &replayed, |_| false);
        assert_eq!(restarted.held(), {
            let mut o = EdgeMatcher::default();
            feed(&mut o, &batches[..crash], |_| true);
            o.held()
        });
        assert!(after.values().map(|t| t.0).sum::<u64>() > 100, "{after:?}");
        assert_eq!(feed(&mut restarted, &batches[crash..], |_| true), after);
    }
}
