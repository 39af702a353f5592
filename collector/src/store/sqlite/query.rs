//! The [`Store`] implementation: each call on the blocking pool, asking every segment that
//! may hold an answer (newest first where order matters) and merging what they return.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::params_from_iter;
use rusqlite::types::Value as SqlValue;

use super::dictionary::Names;
use super::edges;
use super::encoding::{self, Rows};
use super::packed::Correlation;
use super::read::{
    LOG_SELECT, Totals, blob_id, correlated_traces, filters_match, log_from_row, trace_spans,
    trace_totals,
};
use super::rollups::{RollupScan, tier_for};
use super::segment::{Search, Segment, file_len, wal_path};
use super::span_times::{self, SpanTime, Wanted};
use super::{SqliteStore, with_segment};
use crate::model::{Batch, LogRecord, SpanKind, SpanRecord, StatusCode, TraceId};
use crate::query::dependencies::{self, Links};
use crate::rollup::edges::EdgeTotals;
use crate::rollup::{BUCKET_NS, RedSteps, StepMerger, bucket_of, ceil_div};
use crate::store::schema::current_version;
use crate::store::{
    Capabilities, Encoded, LogCursor, LogPage, LogQuery, MetricSeriesInfo, Operation, PointQuery,
    PruneReport, RetentionPolicy, RollupQuery, SampleQuery, Samples, SeriesPoints, SpanSample,
    Store, StoreError, StoredExemplar, StoredLog, TraceQuery, TraceSummary,
};

/// Rows one trace search walks at most, over all segments, before it answers with what it
/// found.
const MAX_SEARCH_SCAN: usize = 2_000_000;

#[async_trait]
impl Store for SqliteStore {
    async fn write(&self, batch: Batch) -> Result<(), StoreError> {
        let rows = Rows::encode(batch, &self.dictionary);
        self.with_writer(move |w| w.write(rows)).await
    }

    fn encode(&self, batch: Batch) -> Encoded {
        Encoded::Sqlite(Rows::encode(batch, &self.dictionary))
    }

    async fn write_encoded(&self, batches: Vec<Encoded>) -> Result<(), StoreError> {
        let rows = batches
            .into_iter()
            .map(|b| match b {
                Encoded::Sqlite(rows) => rows,
                Encoded::Model(batch) => Rows::encode(batch, &self.dictionary),
            })
            .collect();
        let all = Rows::concat(rows);
        self.with_writer(move |w| w.write(all)).await
    }

    async fn services(&self) -> Result<Vec<String>, StoreError> {
        let mut names: Vec<String> = self.dictionary.read().service_ids.keys().cloned().collect();
        names.sort();
        Ok(names)
    }

    async fn operations(
        &self,
        service: &str,
        kind: Option<SpanKind>,
    ) -> Result<Vec<Operation>, StoreError> {
        let names = self.dictionary.read();
        Ok(match names.service_id(service) {
            Some(sid) => names.operations_of(sid, kind),
            None => Vec::new(),
        })
    }

    async fn find_trace_ids(&self, query: &TraceQuery) -> Result<Vec<TraceId>, StoreError> {
        let q = query.clone();
        self.with_segments(move |dictionary, segments| {
            let names = dictionary.read();
            let Some(sid) = names.service_id(&q.service) else {
                return Ok(Vec::new());
            };
            let op_ids = match &q.operation {
                Some(op) => {
                    let ids = names.operation_ids(sid, op);
                    if ids.is_empty() {
                        return Ok(Vec::new());
                    }
                    Some(ids)
                }
                None => None,
            };
            let start = q.start_ns.unwrap_or(i64::MIN);
            let end = q.end_ns.unwrap_or(i64::MAX);
            let (sql, args) = search_sql(&q, sid, op_ids.as_deref());
            let by = ByService {
                service: sid,
                window: (start, end),
                wanted: Wanted {
                    ops: op_ids.clone(),
                    min_duration_ns: q.min_duration_ns,
                    max_duration_ns: q.max_duration_ns,
                },
            };

            // Newest segments first; one whose spans all started outside the window is
            // skipped, and so is one that cannot beat the traces already found.
            let mut found: HashMap<TraceId, i64> = HashMap::new();
            let mut scanned = 0usize;
            for segment in segments.iter().rev() {
                let Some((lo, hi)) = segment.start_range() else {
                    continue;
                };
                if hi < start || lo > end {
                    continue;
                }
                if found.len() >= q.limit && kth_newest(&found, q.limit) > hi {
                    continue;
                }
                let per_segment = search_segment(
                    segment,
                    (&sql, &args),
                    &by,
                    &q,
                    &names,
                    &mut scanned,
                    &found,
                )?;
                for (id, start) in per_segment {
                    let newest = found.entry(id).or_insert(start);
                    *newest = (*newest).max(start);
                }
                if scanned > MAX_SEARCH_SCAN {
                    break;
                }
            }
            let mut ids: Vec<(i64, TraceId)> = found.into_iter().map(|(id, s)| (s, id)).collect();
            ids.sort_unstable_by(|a, b| b.cmp(a));
            ids.truncate(q.limit);
            Ok(ids.into_iter().map(|(_, id)| id).collect())
        })
        .await
    }

    async fn traces(&self, ids: &[TraceId]) -> Result<Vec<(TraceId, Vec<SpanRecord>)>, StoreError> {
        let ids = ids.to_vec();
        self.with_segments(move |dictionary, segments| {
            let names = dictionary.read();
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                let mut spans = Vec::new();
                for segment in segments.iter().filter(|s| s.may_hold_trace(&id)) {
                    with_segment(segment, |conn| {
                        trace_spans(conn, segment, &id, &names, &mut spans)
                    })?;
                }
                if spans.is_empty() {
                    continue;
                }
                spans.sort_by_key(|s| (s.start_ns, s.span_id));
                out.push((id, spans));
            }
            Ok(out)
        })
        .await
    }

    async fn trace_summaries(&self, ids: &[TraceId]) -> Result<Vec<TraceSummary>, StoreError> {
        let ids = ids.to_vec();
        self.with_segments(move |dictionary, segments| {
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                let mut parts: Vec<Totals> = Vec::new();
                for segment in segments.iter().filter(|s| s.may_hold_trace(&id)) {
                    parts.extend(with_segment(segment, |conn| {
                        trace_totals(conn, segment, &id)
                    })?);
                }
                if parts.is_empty() {
                    continue;
                }
                let names = dictionary.read();
                out.push(TraceSummary {
                    trace_id: id,
                    start_ns: parts.iter().map(|p| p.start_ns).min().unwrap_or_default(),
                    end_ns: parts.iter().map(|p| p.end_ns).max().unwrap_or_default(),
                    span_count: parts.iter().map(|p| p.span_count).sum(),
                    error: parts.iter().any(|p| p.error),
                    root: parts.iter().find_map(|p| p.root).map(|(s, o)| {
                        (names.service(s).to_string(), names.operation(o).to_string())
                    }),
                });
            }
            Ok(out)
        })
        .await
    }

    async fn logs(&self, query: &LogQuery) -> Result<LogPage, StoreError> {
        let q = query.clone();
        self.with_segments(move |dictionary, segments| {
            let names = dictionary.read();
            let Some((clauses, args)) = log_clauses(&q, &names) else {
                return Ok(LogPage::default());
            };
            let candidates = log_candidates(&q, segments)?;
            let page = q.limit + 1;
            let mut logs = Vec::new();
            for (k, &(segment, _)) in candidates.iter().enumerate() {
                logs.extend(segment_logs(segment, &clauses, &args, &q, &names)?);
                if logs.len() >= page {
                    logs.sort_unstable_by_key(|l| std::cmp::Reverse((l.record.time_ns, l.id)));
                    logs.truncate(page);
                    let oldest = logs[page - 1].record.time_ns;
                    if candidates.get(k + 1).is_none_or(|&(_, hi)| hi < oldest) {
                        break;
                    }
                }
            }
            logs.sort_unstable_by_key(|l| std::cmp::Reverse((l.record.time_ns, l.id)));
            let next = if logs.len() > q.limit {
                logs.truncate(q.limit);
                logs.last().map(|l| LogCursor {
                    time_ns: l.record.time_ns,
                    id: l.id,
                })
            } else {
                None
            };
            Ok(LogPage { logs, next })
        })
        .await
    }

    async fn correlated_trace_ids(
        &self,
        correlation_id: &str,
        limit: usize,
    ) -> Result<Vec<TraceId>, StoreError> {
        let cid = correlation_id.to_string();
        self.with_segments(move |_, segments| {
            let mut found: HashMap<TraceId, i64> = HashMap::new();
            for segment in segments.iter().filter(|s| s.may_hold_correlation(&cid)) {
                for (trace, start) in
                    with_segment(segment, |conn| correlated_traces(conn, segment, &cid))?
                {
                    let earliest = found.entry(trace).or_insert(start);
                    *earliest = (*earliest).min(start);
                }
            }
            let mut ids: Vec<(i64, TraceId)> = found.into_iter().map(|(id, s)| (s, id)).collect();
            ids.sort_unstable();
            ids.truncate(limit);
            Ok(ids.into_iter().map(|(_, id)| id).collect())
        })
        .await
    }

    async fn correlated_logs(
        &self,
        correlation_id: &str,
        traces: &[TraceId],
        limit: usize,
    ) -> Result<Vec<LogRecord>, StoreError> {
        let cid = correlation_id.to_string();
        let traces = traces.to_vec();
        self.with_segments(move |dictionary, segments| {
            let names = dictionary.read();
            let mut args: Vec<SqlValue> = vec![cid.clone().into()];
            let mut sql = format!("{LOG_SELECT} WHERE l.correlation_id = ?1");
            if !traces.is_empty() {
                let marks: Vec<String> = (0..traces.len()).map(|i| format!("?{}", i + 2)).collect();
                sql.push_str(&format!(" OR l.trace_id IN ({})", marks.join(", ")));
                args.extend(traces.iter().map(|t| SqlValue::from(t.to_vec())));
            }
            args.push((limit as i64).into());
            sql.push_str(&format!(" ORDER BY l.time_ns, l.id LIMIT ?{}", args.len()));
            let mut logs = Vec::new();
            let may_answer = |s: &Segment| {
                s.may_hold_log_correlation(&cid) || traces.iter().any(|t| s.may_hold_log_trace(t))
            };
            for segment in segments.iter().filter(|s| may_answer(s)) {
                logs.extend(with_segment(segment, |conn| {
                    let mut stmt = conn.prepare_cached(&sql)?;
                    let rows = stmt
                        .query_map(params_from_iter(args.iter()), |r| {
                            log_from_row(r, segment.id, &names)
                        })?
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok(rows)
                })?);
            }
            logs.sort_unstable_by_key(|l| (l.record.time_ns, l.id));
            logs.truncate(limit);
            Ok(logs.into_iter().map(|l| l.record).collect())
        })
        .await
    }

    async fn span_samples(&self, query: &SampleQuery) -> Result<Samples, StoreError> {
        let q = query.clone();
        self.with_segments(move |dictionary, segments| {
            let names = dictionary.read();
            let Some(plan) = SamplePlan::new(&q, &names) else {
                return Ok(Samples::default());
            };
            let mut out = Samples::default();
            let mut namer = Namer::default();
            // Newest segments first, skipping those outside the window; once more than the
            // limit is in hand, a segment whose newest span is older than the limit-th cannot
            // change the answer.
            let keep = q.limit.saturating_add(1);
            let mut candidates: Vec<(&Arc<Segment>, i64)> = segments
                .iter()
                .filter_map(|s| s.start_range().map(|r| (s, r)))
                .filter(|(_, (lo, hi))| *hi >= q.start_ns && *lo <= q.end_ns)
                .map(|(s, (_, hi))| (s, hi))
                .collect();
            candidates.sort_by_key(|&(s, hi)| std::cmp::Reverse((hi, s.id)));
            for (k, &(segment, _)) in candidates.iter().enumerate() {
                for &sid in &plan.service_ids {
                    for row in plan.segment_rows(segment, sid, (&q, &names), keep)? {
                        let service = namer.name(&mut out, &names, false, sid);
                        let operation = namer.name(&mut out, &names, true, row.op);
                        let protocol = row.protocol.as_deref().map(|p| namer.text(&mut out, p));
                        out.spans.push(row.sample(service, operation, protocol));
                    }
                }
                if out.spans.len() >= keep {
                    out.spans
                        .sort_unstable_by_key(|s| std::cmp::Reverse((s.start_ns, s.span_id)));
                    out.spans.truncate(keep);
                    let oldest = out.spans[keep - 1].start_ns;
                    if candidates.get(k + 1).is_none_or(|&(_, hi)| hi < oldest) {
                        break;
                    }
                }
            }
            out.spans
                .sort_unstable_by_key(|s| std::cmp::Reverse((s.start_ns, s.span_id)));
            out.truncated = out.spans.len() > q.limit;
            out.spans.truncate(q.limit);
            Ok(out)
        })
        .await
    }

    async fn red_steps(&self, query: &RollupQuery) -> Result<RedSteps, StoreError> {
        let q = query.clone();
        self.with_segments(move |dictionary, segments| {
            let names = dictionary.read();
            let spans = q.samples(usize::MAX);
            let Some(plan) = SamplePlan::new(&spans, &names) else {
                return Ok(RedSteps::default());
            };
            let mut merger = StepMerger::new(q.buckets.0, q.buckets.1, q.buckets_per_step);
            let mut ops: HashMap<i64, u32> = HashMap::new();
            let mut op = |merger: &mut StepMerger, id: i64| {
                *ops.entry(id)
                    .or_insert_with(|| merger.name(names.operation(id)))
            };
            let in_window = |s: &&Arc<Segment>| {
                s.start_range()
                    .is_some_and(|(lo, hi)| hi >= spans.start_ns && lo <= spans.end_ns)
            };
            for segment in segments.iter().filter(in_window) {
                for &sid in &plan.service_ids {
                    if !segment.rollups {
                        // An older segment: its spans, as RED read them before rollups.
                        for row in plan.segment_rows(segment, sid, (&spans, &names), usize::MAX)? {
                            let i = op(&mut merger, row.op);
                            let http = row.http_status.and_then(|s| u16::try_from(s).ok());
                            let error = row.status == StatusCode::Error as i32;
                            merger.add_span(i, row.start, row.duration, error, http);
                        }
                        continue;
                    }
                    let width = if segment.tiers_ready() {
                        tier_for(q.buckets.0, q.buckets_per_step)
                    } else {
                        1
                    };
                    let scan = RollupScan {
                        service: sid,
                        buckets: q.buckets,
                        width,
                        kinds: &q.kinds,
                        ops: plan.op_ids.as_deref(),
                        resources: plan.resource_ids.as_deref(),
                    };
                    let waiting = with_segment(segment, |conn| {
                        scan.read_with_pending(segment, conn, |row| {
                            let i = op(&mut merger, row.op);
                            Ok(merger.add_stored(row.bucket, i, row.counts, row.latency)?)
                        })
                    })?;
                    for (key, cell) in &waiting {
                        let i = op(&mut merger, key.op);
                        merger.add(key.bucket, i, cell);
                    }
                }
            }
            Ok(merger.finish())
        })
        .await
    }

    async fn dependency_links(&self, start_ns: i64, end_ns: i64) -> Result<Links, StoreError> {
        let rolled = self
            .with_segments(move |dictionary, segments| {
                let in_window = |s: &&Arc<Segment>| {
                    s.start_range()
                        .is_some_and(|(lo, hi)| hi >= start_ns && lo <= end_ns)
                };
                if segments.iter().filter(in_window).any(|s| !s.edges) {
                    // Spans of a segment older than edge rollups: the raw query, as before.
                    return Ok(None);
                }
                // Whole buckets: from the one holding the start to the last starting before
                // the end. A call sits in the segment its pair completed in, whatever its
                // start time: every segment with edges is read.
                let buckets = (bucket_of(start_ns), ceil_div(end_ns, BUCKET_NS));
                let mut totals = EdgeTotals::new();
                let names = dictionary.read();
                for segment in segments.iter().filter(|s| s.edges) {
                    let tiers = segment.tiers_ready();
                    with_segment(segment, |conn| {
                        edges::read(conn, buckets, tiers, &names, &mut totals)
                    })?;
                }
                Ok(Some(crate::rollup::edges::links(totals)))
            })
            .await?;
        match rolled {
            Some(links) => Ok(Links {
                links,
                truncated: false,
            }),
            None => dependencies::from_spans(self, start_ns, end_ns).await,
        }
    }

    async fn prune(&self, policy: RetentionPolicy) -> Result<PruneReport, StoreError> {
        self.with_writer(move |w| w.prune(policy)).await
    }

    async fn metric_series(&self) -> Result<Arc<Vec<MetricSeriesInfo>>, StoreError> {
        Ok(self
            .metrics
            .catalog
            .read()
            .map(|c| c.clone())
            .unwrap_or_default())
    }

    async fn metric_points(&self, query: &PointQuery) -> Result<SeriesPoints, StoreError> {
        let metrics = self.metrics.clone();
        let query = query.clone();
        tokio::task::spawn_blocking(move || metrics.points(&query))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }

    async fn metric_exemplars(
        &self,
        series: &[i64],
        start_ms: i64,
        end_ms: i64,
        limit: usize,
    ) -> Result<Vec<StoredExemplar>, StoreError> {
        let metrics = self.metrics.clone();
        let series = series.to_vec();
        tokio::task::spawn_blocking(move || metrics.exemplars(&series, start_ms, end_ms, limit))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            typed_attributes: true,
            retention_by_arrival: true,
            metrics: true,
        }
    }

    async fn disk_usage(&self) -> Result<u64, StoreError> {
        let metrics = super::metrics::MetricReader::path(self.path.parent().unwrap_or(&self.path));
        let catalog = file_len(&self.path)
            + file_len(&wal_path(&self.path))
            + file_len(&metrics)
            + file_len(&wal_path(&metrics));
        Ok(catalog
            + self
                .snapshot()
                .iter()
                .filter(|s| s.id != super::segment::LEGACY)
                .map(|s| s.disk_bytes())
                .sum::<u64>())
    }

    async fn close(&self) {
        // Not needed for the counts (a restart counts the unflushed spans again), but the
        // next start is quicker.
        if let Err(e) = self.with_writer(|w| w.flush_red()).await {
            tracing::warn!(error = %e, "cannot write the open segment's RED rows at close");
        }
    }

    async fn check_ready(&self) -> Result<(), StoreError> {
        let readers = self.catalog_readers.clone();
        tokio::task::spawn_blocking(move || {
            let conn = readers.take()?;
            let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            readers.give_back(conn);
            if v != current_version() {
                return Err(StoreError::Task(format!(
                    "schema version {v}, expected {}",
                    current_version()
                )));
            }
            Ok(())
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))??;
        // The writer must be free of a panic and its connections usable.
        self.with_writer(|w| {
            w.catalog
                .query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?;
            w.conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?;
            Ok(())
        })
        .await
    }
}

/// The start of the `k`-th newest trace found so far.
fn kth_newest(found: &HashMap<TraceId, i64>, k: usize) -> i64 {
    let mut starts: Vec<i64> = found.values().copied().collect();
    starts.sort_unstable_by(|a, b| b.cmp(a));
    starts.get(k.saturating_sub(1)).copied().unwrap_or(i64::MIN)
}

/// Up to `limit` traces of one segment matching the search, newest first, each with the
/// start of its newest matching span there.
fn search_segment(
    segment: &Segment,
    (sql, args): (&str, &[SqlValue]),
    by: &ByService,
    q: &TraceQuery,
    names: &Names,
    scanned: &mut usize,
    found_before: &HashMap<TraceId, i64>,
) -> Result<Vec<(TraceId, i64)>, StoreError> {
    with_segment(segment, |conn| {
        let mut ids: Vec<(TraceId, i64)> = Vec::new();
        let mut seen: HashSet<TraceId> = HashSet::new();
        // Spans newest first; false: enough.
        let mut visit = |row: SearchRow| -> Result<bool, StoreError> {
            *scanned += 1;
            if *scanned > MAX_SEARCH_SCAN || ids.len() >= q.limit {
                return Ok(false);
            }
            if seen.contains(&row.trace) {
                return Ok(true);
            }
            if let Some(attrs) = &row.attributes {
                let res = names.resource(row.resource);
                let correlation = Correlation::Column(row.correlation.as_deref());
                let parsed = || attrs.parse(names, correlation).ok();
                if !filters_match(&q.filters, parsed, &res.attributes, row.status, row.kind) {
                    return Ok(true);
                }
            }
            if let Some(&newer) = found_before.get(&row.trace)
                && newer >= row.start
            {
                // Found in a newer segment with a later span: counts once.
                return Ok(true);
            }
            seen.insert(row.trace);
            ids.push((row.trace, row.start));
            Ok(true)
        };
        let read = |r: &rusqlite::Row<'_>| SearchRow::read(r, !q.filters.is_empty());
        match segment.search {
            Search::ServiceIndex => {
                let mut stmt = conn.prepare_cached(sql)?;
                let mut rows = stmt.query(params_from_iter(args.iter()))?;
                while let Some(row) = rows.next()? {
                    if !visit(read(row)?)? {
                        break;
                    }
                }
            }
            Search::SpanTimes => by.newest_first(conn, segment, SEARCH_COLUMNS, read, visit)?,
        }
        Ok(ids)
    })
}

/// Trace search's statement over one segment's service index: the service and window
/// (`?1`–`?3`), the operations, the durations; newest first.
fn search_sql(q: &TraceQuery, sid: i64, op_ids: Option<&[i64]>) -> (String, Vec<SqlValue>) {
    let start = q.start_ns.unwrap_or(i64::MIN);
    let end = q.end_ns.unwrap_or(i64::MAX);
    let mut sql = format!(
        "SELECT {SEARCH_COLUMNS} FROM spans s INDEXED BY spans_by_service
         WHERE s.service_id = ?1 AND s.start_ns >= ?2 AND s.start_ns <= ?3"
    );
    let mut args: Vec<SqlValue> = vec![sid.into(), start.into(), end.into()];
    if let Some(ids) = op_ids {
        let list: Vec<String> = ids.iter().map(i64::to_string).collect();
        sql.push_str(&format!(" AND s.op_id IN ({})", list.join(", ")));
    }
    if let Some(min) = q.min_duration_ns {
        args.push(min.into());
        sql.push_str(&format!(" AND s.duration_ns >= ?{}", args.len()));
    }
    if let Some(max) = q.max_duration_ns {
        args.push(max.into());
        sql.push_str(&format!(" AND s.duration_ns <= ?{}", args.len()));
    }
    sql.push_str(" ORDER BY s.start_ns DESC");
    (sql, args)
}

/// The log query's conditions and their arguments (numbered in order); `None` when it
/// names a service the store has never seen (no log can match).
fn log_clauses(q: &LogQuery, names: &Names) -> Option<(Vec<String>, Vec<SqlValue>)> {
    let mut clauses: Vec<String> = Vec::new();
    let mut args: Vec<SqlValue> = Vec::new();
    let mut add = |clause: &str, v: SqlValue| {
        args.push(v);
        clauses.push(clause.replace('?', &format!("?{}", args.len())));
    };
    if let Some(service) = &q.service {
        add("l.service_id = ?", names.service_id(service)?.into());
    }
    if let Some(t) = q.trace_id {
        add("l.trace_id = ?", t.to_vec().into());
    }
    if let Some(s) = q.span_id {
        add("l.span_id = ?", s.to_vec().into());
    }
    if let Some(c) = &q.correlation_id {
        add("l.correlation_id = ?", c.clone().into());
    }
    if let Some(sev) = q.severity_min {
        add("l.severity_number >= ?", i64::from(sev).into());
    }
    if let Some(text) = &q.text {
        let escaped = text
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        add("l.body LIKE ? ESCAPE '\\'", format!("%{escaped}%").into());
    }
    if let Some(start) = q.start_ns {
        add("l.time_ns >= ?", start.into());
    }
    if let Some(end) = q.end_ns {
        add("l.time_ns <= ?", end.into());
    }
    Some((clauses, args))
}

/// Only segments that may answer, with their newest log, newest first: once a page (and
/// one more, to know there is a next page) is full, a segment whose newest log is older
/// than the page's oldest cannot change it.
fn log_candidates<'a>(
    q: &LogQuery,
    segments: &'a [Arc<Segment>],
) -> Result<Vec<(&'a Arc<Segment>, i64)>, StoreError> {
    let mut candidates = Vec::new();
    for segment in segments {
        if q.trace_id.is_some_and(|t| !segment.may_hold_log_trace(&t))
            || q.correlation_id
                .as_deref()
                .is_some_and(|c| !segment.may_hold_log_correlation(c))
        {
            continue;
        }
        let Some((lo, hi)) = segment.log_range()? else {
            continue;
        };
        let newer_than_cursor = q.before.is_some_and(|c| lo > c.time_ns);
        if q.start_ns.is_some_and(|s| hi < s)
            || q.end_ns.is_some_and(|e| lo > e)
            || newer_than_cursor
        {
            continue;
        }
        candidates.push((segment, hi));
    }
    candidates.sort_by_key(|&(segment, hi)| std::cmp::Reverse((hi, segment.id)));
    Ok(candidates)
}

/// One segment's newest logs that match, a page and one more at most.
fn segment_logs(
    segment: &Segment,
    clauses: &[String],
    args: &[SqlValue],
    q: &LogQuery,
    names: &Names,
) -> Result<Vec<StoredLog>, StoreError> {
    let mut clauses = clauses.to_vec();
    let mut args = args.to_vec();
    if let Some(c) = q.before {
        // The cursor's ID is global: this segment's part of the order.
        args.push(c.time_ns.into());
        args.push(c.id.into());
        clauses.push(format!(
            "(l.time_ns < ?{t} OR (l.time_ns = ?{t} AND ({seg} << 40 | l.id) < ?{i}))",
            t = args.len() - 1,
            i = args.len(),
            seg = segment.id
        ));
    }
    let filter = if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    };
    args.push((q.limit as i64 + 1).into());
    let sql = format!(
        "{LOG_SELECT}{filter} ORDER BY l.time_ns DESC, l.id DESC LIMIT ?{}",
        args.len()
    );
    with_segment(segment, |conn| {
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt
            .query_map(params_from_iter(args), |r| {
                log_from_row(r, segment.id, names)
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    })
}

/// How the aggregates read spans: the services asked, the statement over a segment's
/// service index and the kinds and operations a walk of its span times keeps.
struct SamplePlan {
    service_ids: Vec<i64>,
    /// [`SAMPLE_COLUMNS`] and the protocol (its rule, or NULL when not asked).
    columns: String,
    sql: String,
    kinds: Vec<i32>,
    op_ids: Option<Vec<i64>>,
    /// With a version asked: the resources that report it (resources are interned whole,
    /// so a version is a set of resource IDs, not a per-span attribute to parse).
    resource_ids: Option<Vec<i64>>,
}

impl SamplePlan {
    /// `None` when the query names a service, operation or version the store has never seen.
    fn new(q: &SampleQuery, names: &Names) -> Option<Self> {
        let service_ids: Vec<i64> = match &q.service {
            Some(service) => vec![names.service_id(service)?],
            None => names.service_ids.values().copied().collect(),
        };
        let protocol = if q.protocols { PROTOCOL_COLUMN } else { "NULL" };
        let columns = format!("{SAMPLE_COLUMNS}, {protocol}");
        let mut sql = format!(
            "SELECT {columns} FROM spans s INDEXED BY spans_by_service
             WHERE s.service_id = ?1 AND s.start_ns >= ?2 AND s.start_ns <= ?3"
        );
        let kinds: Vec<i32> = q.kinds.iter().map(|k| *k as i32).collect();
        if !kinds.is_empty() {
            let list: Vec<String> = kinds.iter().map(i32::to_string).collect();
            sql.push_str(&format!(" AND s.kind IN ({})", list.join(", ")));
        }
        let mut op_ids = None;
        if let Some(op) = &q.operation {
            // Operation IDs are per service: one name, one list for each service asked.
            let ids: Vec<i64> = service_ids
                .iter()
                .flat_map(|sid| names.operation_ids(*sid, op))
                .collect();
            if ids.is_empty() {
                return None;
            }
            let list: Vec<String> = ids.iter().map(i64::to_string).collect();
            sql.push_str(&format!(" AND s.op_id IN ({})", list.join(", ")));
            op_ids = Some(ids);
        }
        let resource_ids = match &q.version {
            Some(version) => {
                let ids = resources_of_version(names, &service_ids, version);
                if ids.is_empty() {
                    return None;
                }
                let list: Vec<String> = ids.iter().map(i64::to_string).collect();
                sql.push_str(&format!(" AND s.resource_id IN ({})", list.join(", ")));
                Some(ids)
            }
            None => None,
        };
        sql.push_str(" ORDER BY s.start_ns DESC LIMIT ?4");
        Some(Self {
            service_ids,
            columns,
            sql,
            kinds,
            op_ids,
            resource_ids,
        })
    }

    /// One service's newest spans in one segment, `keep` at most.
    fn segment_rows(
        &self,
        segment: &Segment,
        sid: i64,
        (q, names): (&SampleQuery, &Names),
        keep: usize,
    ) -> Result<Vec<SampleRow>, StoreError> {
        let mut rows = self.read_rows(segment, sid, q, keep)?;
        for row in &mut rows {
            row.unpack(names, q.protocols);
        }
        Ok(rows)
    }

    fn read_rows(
        &self,
        segment: &Segment,
        sid: i64,
        q: &SampleQuery,
        keep: usize,
    ) -> Result<Vec<SampleRow>, StoreError> {
        with_segment(segment, |conn| {
            if segment.search == Search::ServiceIndex {
                let mut stmt = conn.prepare_cached(&self.sql)?;
                let rows = stmt
                    .query_map(
                        rusqlite::params![sid, q.start_ns, q.end_ns, keep as i64],
                        SampleRow::read,
                    )?
                    .collect::<Result<Vec<_>, _>>()?;
                return Ok(rows);
            }
            let by = ByService {
                service: sid,
                window: (q.start_ns, q.end_ns),
                wanted: Wanted {
                    ops: self.op_ids.clone(),
                    ..Wanted::default()
                },
            };
            let mut rows = Vec::new();
            by.newest_first(conn, segment, &self.columns, SampleRow::read, |r| {
                if (self.kinds.is_empty() || self.kinds.contains(&r.kind))
                    && self
                        .resource_ids
                        .as_ref()
                        .is_none_or(|ids| ids.contains(&r.resource))
                {
                    rows.push(r);
                }
                Ok(rows.len() < keep)
            })?;
            Ok(rows)
        })
    }
}

/// The resources of the services asked whose `service.version` is `version`.
fn resources_of_version(names: &Names, service_ids: &[i64], version: &str) -> Vec<i64> {
    let services: Vec<&str> = service_ids
        .iter()
        .filter_map(|id| names.services.get(id).map(String::as_str))
        .collect();
    let mut ids: Vec<i64> = names
        .resources
        .iter()
        .filter(|(_, r)| services.contains(&r.service.as_str()))
        .filter(|(_, r)| {
            r.attributes
                .get("service.version")
                .is_some_and(|v| v.text() == version)
        })
        .map(|(id, _)| *id)
        .collect();
    ids.sort_unstable();
    ids
}

/// A row of [`SAMPLE_COLUMNS`].
struct SampleRow {
    trace_id: TraceId,
    span_id: [u8; 8],
    parent: Option<[u8; 8]>,
    op: i64,
    kind: i32,
    start: i64,
    duration: i64,
    status: i32,
    link: Option<(TraceId, [u8; 8])>,
    http_status: Option<i64>,
    resource: i64,
    /// Packed attributes, until [`SampleRow::unpack`] reads them.
    packed: Option<Vec<u8>>,
    protocol: Option<String>,
}

impl SampleRow {
    fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            trace_id: blob_id::<16>(r.get_ref(0)?.as_blob()?),
            span_id: blob_id::<8>(r.get_ref(1)?.as_blob()?),
            parent: r.get_ref(2)?.as_blob_or_null()?.map(blob_id::<8>),
            op: r.get(3)?,
            kind: r.get(4)?,
            start: r.get(5)?,
            duration: r.get(6)?,
            status: r.get(7)?,
            link: r.get_ref(8)?.as_str_or_null()?.and_then(first_link),
            http_status: r.get(9)?,
            resource: r.get(10)?,
            packed: r.get(11)?,
            protocol: r.get(12)?,
        })
    }

    /// Reads the HTTP status and protocol of packed attributes (JSON ones came from SQL).
    fn unpack(&mut self, names: &Names, protocol: bool) {
        let Some(bytes) = self.packed.take() else {
            return;
        };
        // Unreadable attributes count as none, as `json_extract` reads damaged JSON.
        let Ok(attributes) = super::packed::unpack(&bytes, names, Correlation::Unread) else {
            return;
        };
        self.http_status = attributes.http_status().map(i64::from);
        if protocol {
            self.protocol = attributes.protocol().map(std::borrow::Cow::into_owned);
        }
    }

    fn sample(self, service: u32, operation: u32, protocol: Option<u32>) -> SpanSample {
        SpanSample {
            trace_id: self.trace_id,
            span_id: self.span_id,
            parent_span_id: self.parent,
            link: self.link,
            service,
            operation,
            kind: SpanKind::from_i32(self.kind),
            start_ns: self.start,
            duration_ns: self.duration,
            error: StatusCode::from_i32(self.status) == StatusCode::Error,
            status: StatusCode::from_i32(self.status),
            http_status: self.http_status.and_then(|s| u16::try_from(s).ok()),
            protocol,
        }
    }
}

/// Service and operation names (and protocols) of an answer, each listed once in
/// `Samples::names`.
#[derive(Default)]
struct Namer(HashMap<(bool, i64), u32>, HashMap<String, u32>);

impl Namer {
    fn text(&mut self, out: &mut Samples, text: &str) -> u32 {
        if let Some(i) = self.1.get(text) {
            return *i;
        }
        out.names.push(text.to_string());
        let i = (out.names.len() - 1) as u32;
        self.1.insert(text.to_string(), i);
        i
    }

    fn name(&mut self, out: &mut Samples, names: &Names, operation: bool, id: i64) -> u32 {
        *self.0.entry((operation, id)).or_insert_with(|| {
            let name = if operation {
                names.operation(id)
            } else {
                names.service(id)
            };
            out.names.push(name.to_string());
            (out.names.len() - 1) as u32
        })
    }
}

/// A span as trace search reads it (`attributes` only when there are filters to check).
struct SearchRow {
    trace: TraceId,
    attributes: Option<super::packed::Raw>,
    /// Read with the attributes: packed ones may refer to it.
    correlation: Option<String>,
    status: i32,
    kind: i32,
    resource: i64,
    start: i64,
}

impl SearchRow {
    /// From a row of [`SEARCH_COLUMNS`].
    fn read(r: &rusqlite::Row<'_>, attributes: bool) -> rusqlite::Result<Self> {
        Ok(Self {
            trace: blob_id(r.get_ref(0)?.as_blob()?),
            attributes: if attributes { Some(r.get(1)?) } else { None },
            correlation: if attributes { r.get(6)? } else { None },
            status: r.get(2)?,
            kind: r.get(3)?,
            resource: r.get(4)?,
            start: r.get(5)?,
        })
    }
}

/// What trace search reads of each span it walks.
const SEARCH_COLUMNS: &str =
    "s.trace_id, s.attributes, s.status_code, s.kind, s.resource_id, s.start_ns, s.correlation_id";

/// What the aggregates read of each span.
/// (The HTTP status of JSON attributes; packed ones come whole, in [`PACKED_COLUMN`], and
/// are read in Rust by the writer's rule.)
const SAMPLE_COLUMNS: &str = "s.trace_id, s.span_id, s.parent_span_id, s.op_id, s.kind, \
    s.start_ns, s.duration_ns, s.status_code, s.links, \
    CASE WHEN typeof(s.attributes) = 'text' THEN \
    CAST(COALESCE(json_extract(s.attributes, '$.\"http.response.status_code\"'), \
        json_extract(s.attributes, '$.\"http.status_code\"')) AS INTEGER) END, s.resource_id, \
    CASE WHEN typeof(s.attributes) = 'blob' THEN s.attributes END";

/// A span's packed attributes (segment format 8), NULL for JSON ones.
pub(super) const PACKED_COLUMN: &str =
    "CASE WHEN typeof(s.attributes) = 'blob' THEN s.attributes END";

/// A span's protocol, by [`SpanSample::protocol`]'s rule (as text whatever the attribute's
/// type), from JSON attributes; NULL for packed ones (see [`PACKED_COLUMN`]).
pub(super) const PROTOCOL_COLUMN: &str = "CASE WHEN typeof(s.attributes) = 'text' THEN \
    CAST(COALESCE(json_extract(s.attributes, '$.\"rpc.system\"'), \
    json_extract(s.attributes, '$.\"messaging.system\"'), \
    CASE WHEN json_type(s.attributes, '$.\"http.request.method\"') IS NOT NULL \
      OR json_type(s.attributes, '$.\"http.method\"') IS NOT NULL THEN 'http' END) AS TEXT) END";

/// The spans of one service that started in a window, as a segment of format 4 finds them.
struct ByService {
    service: i64,
    window: (i64, i64),
    wanted: Wanted,
}

impl ByService {
    /// Calls `each` with the wanted spans (`columns` of each, as `read` makes them), newest
    /// first, until it returns false: from the open segment's map in memory (a page at a
    /// time, so the writer never waits long for it), or a sealed segment's `span_times`
    /// blocks (also for what is left when the segment is sealed meanwhile). Rows are read
    /// [`FETCH`], then [`FETCH_MANY`] at a time; a span that retention deleted is skipped.
    fn newest_first<T>(
        &self,
        conn: &rusqlite::Connection,
        segment: &Segment,
        columns: &str,
        read: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
        mut each: impl FnMut(T) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        let mut fetcher = Fetcher::new(conn, columns)?;
        let mut fetch = |batch: &[SpanTime]| fetcher.fetch(batch, &read, &mut each);
        let mut last: Option<SpanTime> = None;
        // Small first: a search often needs only a few dozen spans, and a selective one
        // would walk much of the map to fill a large page.
        let mut page_size = FETCH;
        loop {
            let page = match segment.index().as_ref() {
                Some(open) => {
                    open.times()
                        .page(self.service, self.window, &self.wanted, last, page_size)
                }
                None => break,
            };
            page_size = (page_size * 2).min(MAX_SEARCH_PAGE);
            let Some(&oldest) = page.last() else {
                return Ok(());
            };
            last = Some(oldest);
            for batch in page.chunks(FETCH_MANY) {
                if !fetch(batch)? {
                    return Ok(());
                }
            }
        }
        let mut batch = Vec::with_capacity(FETCH_MANY);
        let mut batch_size = FETCH;
        let mut more = true;
        span_times::read(conn, self.service, self.window, &self.wanted, |t| {
            if last.is_some_and(|l| (t.start_ns, t.span) >= (l.start_ns, l.span)) {
                return Ok(true);
            }
            batch.push(t);
            if batch.len() == batch_size {
                more = fetch(&batch)?;
                batch.clear();
                batch_size = FETCH_MANY;
            }
            Ok(more)
        })?;
        if more && !batch.is_empty() {
            fetch(&batch)?;
        }
        Ok(())
    }
}

/// Reads spans by row ID in batches. Two statements: few rows for a search that stops
/// early, many for one that walks far (an aggregate over a long window), where
/// per-statement costs add up.
struct Fetcher<'c> {
    few: rusqlite::CachedStatement<'c>,
    many: rusqlite::CachedStatement<'c>,
    id_column: usize,
}

impl<'c> Fetcher<'c> {
    fn new(conn: &'c rusqlite::Connection, columns: &str) -> Result<Self, StoreError> {
        let sql = |n: usize| {
            let marks: Vec<String> = (1..=n).map(|i| format!("?{i}")).collect();
            format!(
                "SELECT {columns}, s.id FROM spans s WHERE s.id IN ({})",
                marks.join(", ")
            )
        };
        let few = conn.prepare_cached(&sql(FETCH))?;
        let many = conn.prepare_cached(&sql(FETCH_MANY))?;
        let id_column = few.column_count() - 1;
        Ok(Self {
            few,
            many,
            id_column,
        })
    }

    /// Reads a batch of spans in one statement (they come back in row ID order), then hands
    /// them on in the batch's order; false once `each` has had enough.
    fn fetch<T>(
        &mut self,
        batch: &[SpanTime],
        read: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
        mut each: impl FnMut(T) -> Result<bool, StoreError>,
    ) -> Result<bool, StoreError> {
        let stmt = if batch.len() <= FETCH {
            &mut self.few
        } else {
            &mut self.many
        };
        let mut ids = [0i64; FETCH_MANY];
        for (id, t) in ids.iter_mut().zip(batch) {
            *id = t.span;
        }
        let params = &ids[..stmt.parameter_count()];
        let mut got: Vec<(i64, T)> = Vec::with_capacity(batch.len());
        let mut rows = stmt.query(params_from_iter(params.iter()))?;
        while let Some(row) = rows.next()? {
            got.push((row.get(self.id_column)?, read(row)?));
        }
        drop(rows);
        for t in batch {
            if let Some(at) = got.iter().position(|(id, _)| *id == t.span)
                && !each(got.swap_remove(at).1)?
            {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// Spans read from a segment in one statement: first, and once a walk goes on.
const FETCH: usize = 32;
const FETCH_MANY: usize = 256;

/// Entries a search takes from the open segment's map at a time, at most (the writer waits
/// for the map while a page is taken).
const MAX_SEARCH_PAGE: usize = 1024;

/// The first well-formed link of a span's stored links.
pub(super) fn first_link(links: &str) -> Option<(TraceId, [u8; 8])> {
    let links = encoding::links(Some(links)).ok()?;
    links.first().map(|l| (l.trace_id, l.span_id))
}
