//! Edge rollups in ClickHouse: the calls between services, counted by a pass after commit,
//! in ClickHouse, over spans whoever wrote them (another collector, another shard's writer).
//!
//! The pass takes the spans that started in one minute (a *unit* of [`UNIT_BUCKETS`]
//! buckets) once [`SETTLE_NS`] has gone by since its end, joins each with the span it hangs
//! on (its parent, else its first link: the rule of `crate::query::dependencies::links`)
//! among the spans that started from [`OWNERS_BEFORE_NS`] before to [`OWNERS_AFTER_NS`]
//! after the minute, and inserts the cells (per bucket, caller, callee and protocol: calls,
//! errors, the DDSketch bins of the called spans' durations) into `gauntlet_edge_rollups`,
//! under a deduplication token named after the unit, then records the unit in
//! `gauntlet_edge_passes`. A pass redone after a crash, or by a second collector on the
//! same tables, is the same insert under the same token: ClickHouse stores it once.
//!
//! The dependencies over a window read the rollups of the whole units passed and count the
//! rest of the window (minutes before the first pass or not passed yet, part minutes at its
//! ends) with the same query, live; nothing is capped.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::backend;
use super::schema::{EDGE_PASSES, EDGE_ROLLUPS, Layout, TRACES};
use super::spool::Spool;
use crate::model::now_ns;
use crate::query::dependencies::Links;
use crate::rollup::edges::{EdgeCell, EdgeTotals, add_cell, links};
use crate::rollup::sketch::bin_sql;
use crate::rollup::{BUCKET_NS, Sketch, bucket_of, ceil_div};
use crate::store::StoreError;

/// Buckets one pass counts: a minute.
pub const UNIT_BUCKETS: i64 = 6;

/// How long after a minute ends its pass waits: spans are exported within seconds (the
/// SDKs' batch delay) and drained from the spool moments later.
pub const SETTLE_NS: i64 = 60_000_000_000;

/// How long before the minute a span it hangs on may have started.
pub const OWNERS_BEFORE_NS: i64 = 60_000_000_000;

/// How long after the minute's end a span it hangs on may have started (clock skew).
pub const OWNERS_AFTER_NS: i64 = 10_000_000_000;

/// One cell of the rollups or of the live count, summed over a window.
#[derive(::clickhouse::Row, serde::Deserialize)]
struct CellRow {
    caller: String,
    callee: String,
    protocol: String,
    calls: u64,
    errors: u64,
    latency: (Vec<i32>, Vec<u64>),
}

/// What the passes and the dependencies need: the client, where the tables are, and the
/// spool whose batches may still hold a minute's spans.
#[derive(Clone)]
pub(super) struct EdgePasses {
    pub(super) client: ::clickhouse::Client,
    pub(super) layout: Layout,
    pub(super) spool: Option<Arc<Spool>>,
}

impl EdgePasses {
    /// The cells of the spans that started in buckets `{first}..{end}` (query parameters),
    /// per bucket, caller, callee and protocol, counted from the spans.
    fn count_sql(&self) -> String {
        let traces = self.layout.table(TRACES);
        let protocol = super::PROTOCOL_COLUMN;
        format!(
            "WITH children AS (
    SELECT TraceId, ParentSpanId, toString(ServiceName) AS Service, Duration, StatusCode,
        {protocol} AS Protocol,
        if(length(`Links.TraceId`) > 0, `Links.TraceId`[1], '') AS LinkTrace,
        if(length(`Links.SpanId`) > 0, `Links.SpanId`[1], '') AS LinkSpan,
        intDiv(toUnixTimestamp64Nano(Timestamp), {BUCKET_NS}) AS Bucket
    FROM {traces}
    WHERE Timestamp >= fromUnixTimestamp64Nano({{first:Int64}} * {BUCKET_NS})
      AND Timestamp < fromUnixTimestamp64Nano({{end:Int64}} * {BUCKET_NS})
      AND (ParentSpanId != '' OR LinkSpan != '')
), owners AS (
    SELECT TraceId, SpanId, any(toString(ServiceName)) AS Owner
    FROM {traces}
    WHERE Timestamp >= fromUnixTimestamp64Nano({{first:Int64}} * {BUCKET_NS} - {OWNERS_BEFORE_NS})
      AND Timestamp < fromUnixTimestamp64Nano({{end:Int64}} * {BUCKET_NS} + {OWNERS_AFTER_NS})
      AND ((TraceId, SpanId) IN (SELECT TraceId, ParentSpanId FROM children)
        OR (TraceId, SpanId) IN (SELECT LinkTrace, LinkSpan FROM children))
    GROUP BY TraceId, SpanId
)
SELECT c.Bucket AS Bucket,
    multiIf(p.Owner != '' AND p.Owner != c.Service, p.Owner, l.Owner) AS Caller,
    c.Service AS Callee, c.Protocol AS Protocol, count() AS Calls,
    countIf(c.StatusCode IN ('Error', 'STATUS_CODE_ERROR')) AS Errors,
    sumMap(tuple([{bin}], [toUInt64(1)])) AS Latency
FROM children AS c
LEFT JOIN owners AS p ON p.TraceId = c.TraceId AND p.SpanId = c.ParentSpanId
LEFT JOIN owners AS l ON l.TraceId = c.LinkTrace AND l.SpanId = c.LinkSpan
WHERE Caller != '' AND Caller != Callee
GROUP BY Bucket, Caller, Callee, Protocol",
            bin = bin_sql("c.Duration"),
        )
    }

    /// Counts unit `unit`'s calls into the rollups and records the pass.
    pub(super) async fn pass(&self, unit: i64) -> Result<(), StoreError> {
        let (first, end) = (unit * UNIT_BUCKETS, (unit + 1) * UNIT_BUCKETS);
        let sql = format!(
            "INSERT INTO {} (Bucket, Caller, Callee, Protocol, Calls, Errors, Latency) {}",
            self.layout.table(EDGE_ROLLUPS),
            self.count_sql()
        );
        self.client
            .query(&sql)
            .param("first", first)
            .param("end", end)
            .with_setting(
                "insert_deduplication_token",
                format!("gauntlet-edges-{unit}"),
            )
            .with_setting("join_use_nulls", "0")
            .with_setting("distributed_product_mode", "global")
            .execute()
            .await
            .map_err(backend)?;
        self.client
            .query(&format!(
                "INSERT INTO {} (Unit) VALUES ({{unit:Int64}})",
                self.layout.table(EDGE_PASSES)
            ))
            .param("unit", unit)
            .with_setting(
                "insert_deduplication_token",
                format!("gauntlet-pass-{unit}"),
            )
            .execute()
            .await
            .map_err(backend)
    }

    /// The last unit passed, if any.
    async fn last_passed(&self) -> Result<Option<i64>, StoreError> {
        let (count, last): (u64, i64) = self
            .client
            .query(&format!(
                "SELECT count(), max(Unit) FROM {}",
                self.layout.table(EDGE_PASSES)
            ))
            .fetch_one()
            .await
            .map_err(backend)?;
        Ok((count > 0).then_some(last))
    }

    /// The next unit to pass, if its minute has settled: after the last passed, or, on a
    /// first run, the minute that settled last (spans from before are counted live); and
    /// not while the spool still holds a batch written before the minute settled (after an
    /// outage of ClickHouse, the minute's spans may be waiting there).
    async fn due(&self, now_ns: i64) -> Result<Option<i64>, StoreError> {
        let settled = (now_ns - SETTLE_NS).div_euclid(BUCKET_NS * UNIT_BUCKETS);
        let next = match self.last_passed().await? {
            Some(last) => last + 1,
            None => settled - 1,
        };
        let spooled = self.spool.as_ref().and_then(|s| s.oldest_written_ns());
        Ok((next < settled && drained(next, spooled)).then_some(next))
    }

    /// The units from `first` to before `end` that were passed.
    async fn passed_in(&self, first: i64, end: i64) -> Result<BTreeSet<i64>, StoreError> {
        let units: Vec<i64> = self
            .client
            .query(&format!(
                "SELECT DISTINCT Unit FROM {} WHERE Unit >= {{first:Int64}} AND Unit < {{end:Int64}}",
                self.layout.table(EDGE_PASSES)
            ))
            .param("first", first)
            .param("end", end)
            .fetch_all()
            .await
            .map_err(backend)?;
        Ok(units.into_iter().collect())
    }

    /// The calls between services among the spans that started in `start_ns..end_ns`, over
    /// whole buckets (the one holding the start to the last starting before the end): the
    /// rollups of the whole units passed, the rest (units not passed yet or before the
    /// first pass, part units at the ends) counted live.
    pub(super) async fn links(&self, start_ns: i64, end_ns: i64) -> Result<Links, StoreError> {
        let (first, end) = (bucket_of(start_ns), ceil_div(end_ns, BUCKET_NS));
        let passed = self
            .passed_in(first.div_euclid(UNIT_BUCKETS), ceil_div(end, UNIT_BUCKETS))
            .await?;
        let (rolled, live) = split_window(first, end, &passed);
        let mut totals = EdgeTotals::new();
        let from_rollups = format!(
            "SELECT toString(Caller) AS caller, toString(Callee) AS callee,
                toString(Protocol) AS protocol, sum(Calls) AS calls, sum(Errors) AS errors,
                sumMap(Latency) AS latency FROM {}
             WHERE Bucket >= {{first:Int64}} AND Bucket < {{end:Int64}}
             GROUP BY Caller, Callee, Protocol",
            self.layout.table(EDGE_ROLLUPS)
        );
        for range in rolled {
            self.add(&from_rollups, range, &mut totals).await?;
        }
        let counted = format!(
            "SELECT toString(Caller) AS caller, toString(Callee) AS callee,
                toString(Protocol) AS protocol, sum(Calls) AS calls, sum(Errors) AS errors,
                sumMap(Latency) AS latency
             FROM ({}) GROUP BY Caller, Callee, Protocol",
            self.count_sql()
        );
        for range in live {
            self.add(&counted, range, &mut totals).await?;
        }
        Ok(Links {
            links: links(totals),
            truncated: false,
        })
    }

    /// Adds the cells `sql` answers for buckets `first..end` to the totals.
    async fn add(
        &self,
        sql: &str,
        (first, end): (i64, i64),
        totals: &mut EdgeTotals,
    ) -> Result<(), StoreError> {
        let rows: Vec<CellRow> = self
            .client
            .query(sql)
            .param("first", first)
            .param("end", end)
            .with_setting("join_use_nulls", "0")
            .with_setting("distributed_product_mode", "global")
            .fetch_all()
            .await
            .map_err(backend)?;
        for r in rows {
            let latency = Sketch::from_bins(&r.latency.0, &r.latency.1);
            let cell = EdgeCell {
                calls: r.calls,
                errors: r.errors,
                latency,
            };
            add_cell(totals, (&r.caller, &r.callee, &r.protocol), &cell);
        }
        Ok(())
    }
}

/// Whether every batch that may hold unit `unit`'s spans left the spool, whose oldest
/// waiting batch was written at `oldest_spooled_ns` (none waits: `None`): a batch written
/// after the minute settled holds late spans at most.
fn drained(unit: i64, oldest_spooled_ns: Option<i64>) -> bool {
    let settled_at = (unit + 1) * UNIT_BUCKETS * BUCKET_NS + SETTLE_NS;
    oldest_spooled_ns.is_none_or(|t| t >= settled_at)
}

/// Buckets `first..end` as ranges read from the rollups (whole units passed) and ranges
/// counted live (the rest), each list in order with adjacent ranges joined.
fn split_window(first: i64, end: i64, passed: &BTreeSet<i64>) -> (Ranges, Ranges) {
    let (mut rolled, mut live) = (Ranges::new(), Ranges::new());
    let mut b = first;
    while b < end {
        let unit = b.div_euclid(UNIT_BUCKETS);
        let unit_end = ((unit + 1) * UNIT_BUCKETS).min(end);
        let whole = b == unit * UNIT_BUCKETS && unit_end == (unit + 1) * UNIT_BUCKETS;
        let to = if whole && passed.contains(&unit) {
            &mut rolled
        } else {
            &mut live
        };
        match to.last_mut() {
            Some(last) if last.1 == b => last.1 = unit_end,
            _ => to.push((b, unit_end)),
        }
        b = unit_end;
    }
    (rolled, live)
}

type Ranges = Vec<(i64, i64)>;

/// Passes every settled unit in turn, then waits 10 s (also after a failure); ends when the
/// store closes.
pub(super) async fn run(passes: Arc<EdgePasses>, mut stop: watch::Receiver<bool>) {
    const EVERY: Duration = Duration::from_secs(10);
    loop {
        loop {
            if *stop.borrow() {
                return;
            }
            match passes.due(now_ns()).await {
                Ok(Some(unit)) => {
                    if let Err(e) = passes.pass(unit).await {
                        tracing::warn!(error = %e, unit, "counting the calls of a minute failed; retrying");
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "the edge passes wait for ClickHouse");
                    break;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = stop.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minute_waits_for_the_spool_batches_written_before_it_settled() {
        let settled_at = 11 * UNIT_BUCKETS * BUCKET_NS + SETTLE_NS;
        assert!(drained(10, None));
        assert!(
            !drained(10, Some(settled_at - 1)),
            "may hold the minute's spans"
        );
        assert!(drained(10, Some(settled_at)));
        assert!(!drained(10, Some(0)), "a batch from long before");
    }

    #[test]
    fn a_window_reads_the_whole_minutes_passed_and_counts_the_rest() {
        let passed: BTreeSet<i64> = [10, 11, 12, 14].into();
        // Buckets 62..90: part of minute 10 (60..66), minutes 11 and 12 passed, 13 not,
        // 14 passed, part of 15.
        let (rolled, live) = split_window(62, 92, &passed);
        assert_eq!(rolled, vec![(66, 78), (84, 90)]);
        assert_eq!(live, vec![(62, 66), (78, 84), (90, 92)]);
        assert_eq!(split_window(60, 66, &passed), (vec![(60, 66)], vec![]));
        assert_eq!(split_window(5, 5, &passed), (vec![], vec![]));
    }
}
