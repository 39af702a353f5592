//! A batch in two commits: new names into the catalog (rare: most batches intern nothing),
//! then the rows into the open segment in one transaction: spans (grouped by trace, so each
//! trace's spans form one run), logs, and the batch row that retention cuts by. Where each
//! run starts, and where it first carries each correlation ID, goes into the open segment's
//! lookups in memory. When the open segment is full, the writer starts the next one and
//! hands the full one to the sealer.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use foldhash::HashMap;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, Transaction, params};

use super::connections::Checkpointer;
use super::dictionary::{Dictionary, NewName, OperationName};
use super::encoding::{LogRow, Rows, SpanRow};
use super::open_index::{OpenIndex, Runs};
use super::rollups::{self, RollupCache};
use super::segment::{self, Job, OPEN, SEALING, SealJob, Sealer, Search, Segment};
use super::span_times::SpanTime;
use super::{SegmentLimits, Sync};
use crate::model::{Resource, SpanKind, TraceId, now_ns};
use crate::rollup::edges::{EdgeCells, EdgeMatcher, EdgeSpan};
use crate::store::StoreError;

/// The writer: the catalog and open-segment connections, and the names it has interned, so
/// that a span insert needs no lookups.
pub(super) struct Writer {
    pub(super) catalog: Connection,
    pub(super) dir: PathBuf,
    pub(super) sync: Sync,
    pub(super) cache_bytes: u64,
    pub(super) limits: SegmentLimits,
    /// The open segment's connection, and how many rows it took.
    pub(super) conn: Connection,
    pub(super) segment: Arc<Segment>,
    pub(super) rows: u64,
    pub(super) checkpointer: Option<Checkpointer>,
    /// Every segment, oldest first; readers take a snapshot.
    pub(super) segments: Arc<RwLock<Vec<Arc<Segment>>>>,
    pub(super) dictionary: Arc<Dictionary>,
    /// Looked up per span: foldhash (randomly seeded per map) costs less per lookup than the
    /// standard library's SipHash.
    pub(super) services: HashMap<String, i64>,
    /// (service, kind) → name → ID: looked up by `&str`, no key built per span.
    pub(super) operations: HashMap<(i64, i32), HashMap<String, i64>>,
    pub(super) resources: HashMap<String, i64>,
    pub(super) scopes: HashMap<(String, String), i64>,
    /// `metrics.sqlite`: series and their points.
    pub(super) metrics: super::metrics::MetricWriter,
    /// The open segment's recent RED rows (`rollups.rs`).
    pub(super) rollups: RollupCache,
    /// How often the open segment's waiting RED cells are written, and when they last were.
    pub(super) red_flush: (std::time::Duration, std::time::Instant),
    /// Joins the spans of calls between services (`edges.rs`); rebuilt from the store on
    /// open, and before the next write after a failed commit (`None` until then).
    pub(super) edges: Option<EdgeMatcher<u32>>,
    /// Dropped last: lets a seal under way finish.
    pub(super) sealer: Sealer,
}

/// Waiting RED cells past which the writer flushes whatever the time: bounds their memory
/// when spans scatter over many buckets.
const MAX_WAITING_RED: usize = 4096;

/// The interned IDs of one span or log.
#[derive(Clone, Copy)]
pub(super) struct RowIds {
    pub(super) service: i64,
    pub(super) op: i64,
    pub(super) resource: i64,
    scope: i64,
}

/// A committed span row the open segment's lookups point at: the start of a run of `trace`,
/// and/or the first span of its run carrying `correlation`.
struct Reference<'a> {
    row: i64,
    trace: Option<TraceId>,
    correlation: Option<&'a str>,
}

impl Writer {
    pub(super) fn write(&mut self, mut batch: Rows) -> Result<(), StoreError> {
        // Metrics first, in their own file: if the spans' commit then fails, the exporters
        // resend and the metric points already in are ignored (they are keyed by series and
        // time), rather than spans being kept for a request that was told it failed.
        self.metrics.write(&batch.metrics)?;
        if batch.spans.is_empty() && batch.logs.is_empty() {
            return Ok(());
        }
        // Contiguous spans per trace: one reference finds all of a trace's spans in a commit.
        group_by_trace(&mut batch.spans);
        // Before any row naming them commits.
        self.save_attribute_keys()?;
        let (span_ids, log_ids) = match self.intern(&batch) {
            Ok(ids) => ids,
            Err(e) => {
                // IDs interned in the rolled-back transaction do not exist.
                self.services.clear();
                self.operations.clear();
                self.resources.clear();
                self.scopes.clear();
                return Err(e);
            }
        };
        let received_ns = now_ns();
        let (segments, dictionary) = (&self.segments, &self.dictionary);
        let matcher = self.edges.get_or_insert_with(|| {
            rebuilt_matcher(
                &segments.read().unwrap_or_else(|p| p.into_inner()),
                dictionary,
            )
        });
        let mut edge_cells = EdgeCells::default();
        matcher.observe(
            received_ns,
            &edge_spans(&batch.spans, &span_ids),
            &mut edge_cells,
        );
        let red = rollups::cells_of(&batch.spans, &span_ids);
        let written = write_rows(
            &mut self.conn,
            &batch,
            (&span_ids, &log_ids),
            received_ns,
            (&edge_cells, matcher),
        );
        let (references, first_span) = match written {
            Ok(w) => w,
            Err(e) => {
                // The matcher holds spans that are not stored.
                self.edges = None;
                return Err(e);
            }
        };
        if let Some(index) = self.segment.index_mut().as_mut() {
            for r in &references {
                index.add(r.row, r.trace.as_ref(), r.correlation);
            }
            if let Some(first) = first_span {
                index
                    .red_mut()
                    .add(red, first + batch.spans.len() as i64 - 1);
            }
            // Span rows are consecutive from the commit's first.
            if let (Some(first), Search::SpanTimes) = (first_span, self.segment.search) {
                let times = index.times_mut();
                for ((SpanRow { span, .. }, ids), row) in
                    batch.spans.iter().zip(&span_ids).zip(first..)
                {
                    times.add(
                        ids.service,
                        SpanTime {
                            start_ns: span.start_ns,
                            span: row,
                            op: ids.op,
                            duration_ns: span.duration_ns(),
                        },
                    );
                }
            }
        }
        if let (Some(lo), Some(hi)) = (
            batch.spans.iter().map(|s| s.span.start_ns).min(),
            batch.spans.iter().map(|s| s.span.start_ns).max(),
        ) {
            self.segment.extend_start_range(lo, hi);
        }
        self.rows += (batch.spans.len() + batch.logs.len()) as u64;
        let (every, last) = self.red_flush;
        let waiting = self.segment.index().as_ref().map_or(0, |i| i.red().len());
        if waiting > 0 && (last.elapsed() >= every || waiting >= MAX_WAITING_RED) {
            // The batch is committed; cells that cannot be written now wait for the next try
            // (and are counted again from the spans after a restart).
            if let Err(e) = self.flush_red() {
                tracing::warn!(error = %e, "cannot write the open segment's RED rows; trying again later");
            }
        }
        if self.rows >= self.limits.rows || self.segment.disk_bytes() >= self.limits.bytes {
            // The batch is committed whatever happens here; a failed start of the next
            // segment is tried again after the next batch.
            if let Err(e) = self.rotate() {
                tracing::warn!(error = %e, "cannot start a new segment; writing on in the full one");
            }
        }
        Ok(())
    }

    /// Writes the open segment's waiting RED cells into its rows (`rollups.rs`).
    pub(super) fn flush_red(&mut self) -> Result<(), StoreError> {
        self.red_flush.1 = std::time::Instant::now();
        let written = {
            let index = self.segment.index();
            let Some(pending) = index.as_ref().map(OpenIndex::red) else {
                return Ok(());
            };
            if pending.len() == 0 {
                return Ok(());
            }
            let tx = self.conn.transaction()?;
            let written = rollups::flush(&tx, pending, &self.rollups)?;
            tx.commit()?;
            written
        };
        if let Some(index) = self.segment.index_mut().as_mut() {
            index.red_mut().flushed();
        }
        self.rollups.flushed(written);
        Ok(())
    }

    /// Interns every name of the batch in one catalog transaction; only new names write.
    fn intern(&mut self, batch: &Rows) -> Result<(Vec<RowIds>, Vec<RowIds>), StoreError> {
        let tx = self.catalog.transaction()?;
        let mut new = Vec::new();
        let mut interner = Interner {
            tx: &tx,
            services: &mut self.services,
            operations: &mut self.operations,
            resources: &mut self.resources,
            scopes: &mut self.scopes,
            new: &mut new,
        };
        let mut spans = Vec::with_capacity(batch.spans.len());
        // Spans of one resource block share one `Arc<Resource>` and mostly one scope: the
        // previous span's IDs are reused without hashing the resource's attributes again.
        let mut last: Option<(*const Resource, i64, i64, &str, &str, i64)> = None;
        for row in &batch.spans {
            let span = &row.span;
            let (service, resource) = match last {
                Some((ptr, service, resource, ..))
                    if std::ptr::eq(ptr, Arc::as_ptr(&span.resource)) =>
                {
                    (service, resource)
                }
                _ => {
                    let service = interner.service(&span.resource.service)?;
                    (service, interner.resource(service, &span.resource)?)
                }
            };
            let scope = match last {
                Some((.., name, version, scope))
                    if *name == *span.scope_name && *version == *span.scope_version =>
                {
                    scope
                }
                _ => interner.scope(&span.scope_name, &span.scope_version)?,
            };
            last = Some((
                Arc::as_ptr(&span.resource),
                service,
                resource,
                &span.scope_name,
                &span.scope_version,
                scope,
            ));
            spans.push(RowIds {
                service,
                op: interner.operation(service, batch.name(row), span.kind)?,
                resource,
                scope,
            });
        }
        let mut logs = Vec::with_capacity(batch.logs.len());
        // As for spans: records of one resource block share their `Arc<Resource>`.
        let mut last: Option<(*const Resource, i64, i64)> = None;
        for LogRow { log, .. } in &batch.logs {
            let (service, resource) = match last {
                Some((ptr, service, resource)) if std::ptr::eq(ptr, Arc::as_ptr(&log.resource)) => {
                    (service, resource)
                }
                _ => {
                    let service = interner.service(&log.resource.service)?;
                    (service, interner.resource(service, &log.resource)?)
                }
            };
            last = Some((Arc::as_ptr(&log.resource), service, resource));
            logs.push(RowIds {
                service,
                op: 0,
                resource,
                scope: interner.scope(&log.scope_name, "")?,
            });
        }
        tx.commit()?;
        self.dictionary.add(new);
        Ok((spans, logs))
    }

    /// Starts the next segment and queues the full one for sealing.
    pub(super) fn rotate(&mut self) -> Result<(), StoreError> {
        let tx = self.catalog.transaction()?;
        tx.execute(
            "UPDATE segments SET state = ?1 WHERE id = ?2",
            params![SEALING, self.segment.id],
        )?;
        tx.execute("INSERT INTO segments (state) VALUES (?1)", [OPEN])?;
        let id = tx.last_insert_rowid();
        tx.commit()?;
        let path = Segment::file(&self.dir, id);
        let (conn, format) = segment::open_for_writing(&path, self.sync, self.cache_bytes)?;
        debug_assert!(format.is_current(), "a new file is of the current format");
        let checkpointer = Checkpointer::start(&path)?;
        let next = Arc::new(Segment::new(
            id,
            path,
            format,
            Some(OpenIndex::new(format.keys)),
            None,
        ));
        self.segments
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(next.clone());
        // The full segment's connection closes before the sealer opens it.
        self.conn = conn;
        self.rows = 0;
        self.rollups = Default::default();
        let full = std::mem::replace(&mut self.segment, next);
        let checkpointer = self.checkpointer.replace(checkpointer);
        tracing::debug!(segment = full.id, next = id, "segment full; sealing it");
        self.sealer.submit(Job::Seal(SealJob {
            segment: full,
            checkpointer,
        }));
        Ok(())
    }
}

/// The rows of a batch into the open segment, in one transaction; returns the references
/// its spans add to the segment's lookups, and the rowid of its first span.
fn write_rows<'a>(
    conn: &mut Connection,
    batch: &'a Rows,
    (span_ids, log_ids): (&[RowIds], &[RowIds]),
    received_ns: i64,
    (edge_cells, matcher): (&EdgeCells<u32>, &EdgeMatcher<u32>),
) -> Result<(Vec<Reference<'a>>, Option<i64>), StoreError> {
    let tx = conn.transaction()?;
    tx.execute(
        "INSERT INTO batches (received_ns) VALUES (?1)",
        [received_ns],
    )?;
    let batch_id = tx.last_insert_rowid();
    let (references, last_span) = insert_spans(&tx, batch, span_ids)?;
    super::edges::add(&tx, edge_cells, matcher)?;
    let last_log = insert_logs(&tx, &batch.logs, log_ids)?;
    tx.execute(
        "UPDATE batches SET last_span = ?1, last_log = ?2 WHERE id = ?3",
        params![last_span, last_log, batch_id],
    )?;
    tx.commit()?;
    let first_span = last_span.map(|last| last + 1 - batch.spans.len() as i64);
    Ok((references, first_span))
}

/// The edge matcher as the segments' last batches leave it (`edges::replay`); empty, and
/// said in the log, when they cannot be read.
pub(super) fn rebuilt_matcher(
    segments: &[Arc<Segment>],
    dictionary: &Dictionary,
) -> EdgeMatcher<u32> {
    let started = std::time::Instant::now();
    let matcher = super::edges::replay(segments, &dictionary.read()).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot replay the last batches into the edge matcher; \
            calls whose other side came before this restart are not counted");
        EdgeMatcher::default()
    });
    let (remembered, waiting) = matcher.held();
    tracing::debug!(remembered, waiting, elapsed = ?started.elapsed(),
        "edge matcher rebuilt from the last batches");
    matcher
}

/// What the edge matcher reads of the batch's spans. It knows services by u32 (a remembered
/// span is then 16 bytes, see `rollup::edges`): a span of a service whose catalog ID is
/// beyond that (four billion services: never in practice) is left out.
fn edge_spans<'a>(spans: &'a [SpanRow], ids: &[RowIds]) -> Vec<EdgeSpan<'a, u32>> {
    spans
        .iter()
        .zip(ids)
        .filter_map(|(row, ids)| {
            Some(EdgeSpan {
                trace_id: row.span.trace_id,
                span_id: row.span.span_id,
                parent_span_id: row.span.parent_span_id,
                link: row.first_link,
                service: u32::try_from(ids.service).ok()?,
                start_ns: row.span.start_ns,
                duration_ns: row.span.duration_ns(),
                error: row.span.is_error(),
                protocol: row.protocol.as_deref(),
            })
        })
        .collect()
}

impl Writer {
    /// Saves the attribute keys numbered since the last save (see `dictionary.rs`) into the
    /// catalog, in one transaction.
    fn save_attribute_keys(&mut self) -> Result<(), StoreError> {
        let keys = self.dictionary.unsaved_keys();
        let Some(&(last, _)) = keys.last() else {
            return Ok(());
        };
        let tx = self.catalog.transaction()?;
        {
            let mut insert =
                tx.prepare_cached("INSERT INTO attribute_keys (id, name) VALUES (?1, ?2)")?;
            for (id, key) in &keys {
                insert.execute(params![id, &**key])?;
            }
        }
        tx.commit()?;
        self.dictionary.keys_saved(last as usize + 1);
        Ok(())
    }
}

/// Groups the spans by trace: the traces in the order each first came, each trace's spans in
/// the order they came. When a trace is split, sorts (group, index) pairs, then moves the
/// rows into place along the permutation's cycles, in place: sorting the rows themselves
/// (hundreds of bytes each) moved each one log n times, and moving them into a new vector
/// cost the kernel a megabyte of fresh pages per commit.
fn group_by_trace(spans: &mut [SpanRow]) {
    // Each span's group: the place its trace first appears. Most batches have each trace's
    // spans together already (one service's export of finished requests, or requests of
    // different traces grouped into one commit): then nothing moves.
    let mut groups: HashMap<TraceId, u32> = HashMap::default();
    groups.reserve(spans.len());
    let mut order: Vec<(u32, u32)> = Vec::with_capacity(spans.len());
    let mut together = true;
    let mut previous = None;
    for (i, row) in spans.iter().enumerate() {
        let next = groups.len() as u32;
        let group = *groups.entry(row.span.trace_id).or_insert(next);
        // A trace met before that does not continue the run just read is split.
        together &= group == next || Some(group) == previous;
        previous = Some(group);
        order.push((group, i as u32));
    }
    if together {
        return;
    }
    order.sort_unstable();
    // from[i]: the row that belongs at i.
    let mut from: Vec<u32> = order.into_iter().map(|(_, i)| i).collect();
    for start in 0..from.len() {
        let mut at = start;
        loop {
            let next = from[at] as usize;
            from[at] = at as u32;
            if next == start || next == at {
                break;
            }
            spans.swap(at, next);
            at = next;
        }
    }
}

/// Inserts the spans (grouped by trace); returns the references they make and the last span
/// row.
fn insert_spans<'a>(
    tx: &Transaction<'_>,
    rows: &'a Rows,
    ids: &[RowIds],
) -> Result<(Vec<Reference<'a>>, Option<i64>), StoreError> {
    let mut references: Vec<Reference<'a>> = Vec::with_capacity(rows.spans.len());
    let mut last_span = None;
    let mut insert = tx.prepare_cached(
        "INSERT INTO spans (trace_id, span_id, parent_span_id, service_id, op_id,
            resource_id, scope_id, kind, start_ns, duration_ns, status_code,
            status_message, attributes, events, links, correlation_id, trace_state, flags)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
    )?;
    let mut runs = Runs::<&'a str>::default();
    // Parameter 13: the attributes.
    let mut bound = Bindings::<18>::of(&insert)?.every_row(13);
    for (row, ids) in rows.spans.iter().zip(ids) {
        let span = &row.span;
        let correlation = rows.correlation(row);
        bound.bind(
            &mut insert,
            [
                ValueRef::Blob(&span.trace_id),
                ValueRef::Blob(&span.span_id),
                blob_or_null(span.parent_span_id.as_ref().map(|p| &p[..])),
                ValueRef::Integer(ids.service),
                ValueRef::Integer(ids.op),
                ValueRef::Integer(ids.resource),
                ValueRef::Integer(ids.scope),
                ValueRef::Integer(span.kind as i64),
                ValueRef::Integer(span.start_ns),
                ValueRef::Integer(span.duration_ns()),
                ValueRef::Integer(span.status_code as i64),
                text_or_null(non_empty(&span.status_message)),
                rows.attributes(row),
                text_or_null(row.events.as_deref()),
                text_or_null(row.links.as_deref()),
                text_or_null(correlation),
                text_or_null(non_empty(&span.trace_state)),
                ValueRef::Integer(i64::from(span.flags)),
            ],
        )?;
        insert.raw_execute()?;
        let row = tx.last_insert_rowid();
        last_span = Some(row);
        let (starts, first_carrier) = runs.next(&span.trace_id, correlation, |c| c);
        if starts || first_carrier.is_some() {
            references.push(Reference {
                row,
                trace: starts.then_some(span.trace_id),
                correlation: first_carrier,
            });
        }
    }
    Ok((references, last_span))
}

/// An insert's parameters as last bound. SQLite keeps a statement's bindings from one
/// execution to the next (rusqlite clears them when the statement goes back to its cache),
/// and most of them repeat from row to row: of spans grouped by trace, the trace and its
/// correlation ID, the service, operation, resource and scope, kind, status, flags, and the
/// NULLs of the columns rarely set; of logs, the service, resource, scope and severity.
/// Only what changed is bound again: each bind is a call through rusqlite into SQLite, and
/// for text and blobs an allocation and a copy.
struct Bindings<'a, const N: usize> {
    last: [Option<ValueRef<'a>>; N],
    /// Parameters bound every row without comparing: a span's attributes differ from the
    /// row before's, often only near the end of a long shared prefix.
    every_row: [bool; N],
}

impl<'a, const N: usize> Bindings<'a, N> {
    /// None bound yet, for `statement`, whose parameters must be N: one left unbound would
    /// be NULL in every row.
    fn of(statement: &rusqlite::CachedStatement<'_>) -> Result<Self, StoreError> {
        match statement.parameter_count() {
            n if n == N => Ok(Self {
                last: [None; N],
                every_row: [false; N],
            }),
            n => Err(rusqlite::Error::InvalidParameterCount(N, n).into()),
        }
    }

    /// Binds parameter `i` (from 1) in every row, without comparing it with the row before's.
    fn every_row(mut self, i: usize) -> Self {
        self.every_row[i - 1] = true;
        self
    }

    /// Binds `values` (parameters 1 to N) where they differ from the row before.
    fn bind(
        &mut self,
        statement: &mut rusqlite::CachedStatement<'_>,
        values: [ValueRef<'a>; N],
    ) -> Result<(), StoreError> {
        let each = values.into_iter().zip(&mut self.last).zip(self.every_row);
        for (i, ((value, last), every_row)) in each.enumerate() {
            if every_row || *last != Some(value) {
                // Forgotten first: if binding fails, the next row binds this one again.
                *last = None;
                statement.raw_bind_parameter(i + 1, ToSqlOutput::Borrowed(value))?;
                *last = Some(value);
            }
        }
        Ok(())
    }
}

/// Inserts the logs; returns the last log row.
fn insert_logs(
    tx: &Transaction<'_>,
    logs: &[LogRow],
    ids: &[RowIds],
) -> Result<Option<i64>, StoreError> {
    let mut last_log = None;
    let mut insert = tx.prepare_cached(
        "INSERT INTO logs (time_ns, observed_ns, service_id, resource_id, scope_id,
            severity_number, severity_text, body, attributes, trace_id, span_id,
            correlation_id, flags, event_name)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    )?;
    let mut bound = Bindings::<14>::of(&insert)?;
    for (row, ids) in logs.iter().zip(ids) {
        let log = &row.log;
        bound.bind(
            &mut insert,
            [
                ValueRef::Integer(log.time_ns),
                ValueRef::Integer(log.observed_ns),
                ValueRef::Integer(ids.service),
                ValueRef::Integer(ids.resource),
                ValueRef::Integer(ids.scope),
                ValueRef::Integer(i64::from(log.severity_number)),
                text(&log.severity_text),
                text(&log.body),
                text(&row.attributes),
                blob_or_null(log.trace_id.as_ref().map(|t| &t[..])),
                blob_or_null(log.span_id.as_ref().map(|s| &s[..])),
                text_or_null(log.correlation_id.as_deref()),
                ValueRef::Integer(i64::from(log.flags)),
                text(&log.event_name),
            ],
        )?;
        insert.raw_execute()?;
        last_log = Some(tx.last_insert_rowid());
    }
    Ok(last_log)
}

fn text(text: &str) -> ValueRef<'_> {
    ValueRef::Text(text.as_bytes())
}

fn text_or_null(text: Option<&str>) -> ValueRef<'_> {
    text.map_or(ValueRef::Null, self::text)
}

fn blob_or_null(bytes: Option<&[u8]>) -> ValueRef<'_> {
    bytes.map_or(ValueRef::Null, ValueRef::Blob)
}

/// Most spans have no status message or trace state: store NULL, not bytes.
fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

/// Interns names into small integer IDs within the catalog transaction, noting each new one
/// for the shared dictionary.
struct Interner<'a> {
    tx: &'a Transaction<'a>,
    services: &'a mut HashMap<String, i64>,
    operations: &'a mut HashMap<(i64, i32), HashMap<String, i64>>,
    resources: &'a mut HashMap<String, i64>,
    scopes: &'a mut HashMap<(String, String), i64>,
    new: &'a mut Vec<NewName>,
}

impl Interner<'_> {
    fn service(&mut self, name: &str) -> Result<i64, StoreError> {
        if let Some(id) = self.services.get(name) {
            return Ok(*id);
        }
        self.tx
            .execute("INSERT OR IGNORE INTO services (name) VALUES (?1)", [name])?;
        let id = self
            .tx
            .query_row("SELECT id FROM services WHERE name = ?1", [name], |r| {
                r.get(0)
            })?;
        self.services.insert(name.to_string(), id);
        self.new.push(NewName::Service(id, name.to_string()));
        Ok(id)
    }

    fn operation(
        &mut self,
        service_id: i64,
        name: &str,
        kind: SpanKind,
    ) -> Result<i64, StoreError> {
        if let Some(id) = self
            .operations
            .get(&(service_id, kind as i32))
            .and_then(|names| names.get(name))
        {
            return Ok(*id);
        }
        self.tx.execute(
            "INSERT OR IGNORE INTO operations (service_id, name, kind) VALUES (?1, ?2, ?3)",
            params![service_id, name, kind as i32],
        )?;
        let id = self.tx.query_row(
            "SELECT id FROM operations WHERE service_id = ?1 AND name = ?2 AND kind = ?3",
            params![service_id, name, kind as i32],
            |r| r.get(0),
        )?;
        self.operations
            .entry((service_id, kind as i32))
            .or_default()
            .insert(name.to_string(), id);
        self.new.push(NewName::Operation(
            id,
            OperationName {
                service_id,
                name: name.to_string(),
                kind,
            },
        ));
        Ok(id)
    }

    /// A resource's ID; its key is its attributes' stored JSON.
    fn resource(&mut self, service_id: i64, resource: &Arc<Resource>) -> Result<i64, StoreError> {
        let json = resource.attributes.to_json();
        if let Some(id) = self.resources.get(&json) {
            return Ok(*id);
        }
        self.tx.execute(
            "INSERT OR IGNORE INTO resources (service_id, attributes) VALUES (?1, ?2)",
            params![service_id, json],
        )?;
        let id = self.tx.query_row(
            "SELECT id FROM resources WHERE attributes = ?1",
            [&json],
            |r| r.get(0),
        )?;
        self.resources.insert(json, id);
        self.new.push(NewName::Resource(id, resource.clone()));
        Ok(id)
    }

    fn scope(&mut self, name: &str, version: &str) -> Result<i64, StoreError> {
        let key = (name.to_string(), version.to_string());
        if let Some(id) = self.scopes.get(&key) {
            return Ok(*id);
        }
        self.tx.execute(
            "INSERT OR IGNORE INTO scopes (name, version) VALUES (?1, ?2)",
            params![name, version],
        )?;
        let id = self.tx.query_row(
            "SELECT id FROM scopes WHERE name = ?1 AND version = ?2",
            params![name, version],
            |r| r.get(0),
        )?;
        self.scopes.insert(key, id);
        self.new
            .push(NewName::Scope(id, name.to_string(), version.to_string()));
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Batch, SpanRecord};

    fn span(trace: u8, span: u8) -> SpanRecord {
        SpanRecord::for_test([trace; 16], [span; 8])
    }

    fn ids(rows: &Rows) -> Vec<(u8, u8)> {
        rows.spans
            .iter()
            .map(|r| (r.span.trace_id[0], r.span.span_id[0]))
            .collect()
    }

    #[test]
    fn spans_group_by_trace_in_first_seen_order_and_keep_their_order_within_one() {
        let mut batch = Batch::default();
        for (t, s) in [
            (9, 1),
            (2, 2),
            (9, 3),
            (5, 4),
            (2, 5),
            (9, 6),
            (0xff, 7),
            (2, 8),
        ] {
            batch.spans.push(span(t, s));
        }
        let mut rows = Rows::encode(batch, &Dictionary::default());
        let grouped = [
            (9, 1),
            (9, 3),
            (9, 6),
            (2, 2),
            (2, 5),
            (2, 8),
            (5, 4),
            (0xff, 7),
        ];
        group_by_trace(&mut rows.spans);
        assert_eq!(ids(&rows), grouped);
        // Grouped already: left as it is.
        group_by_trace(&mut rows.spans);
        assert_eq!(ids(&rows), grouped);
    }

    #[test]
    fn spans_of_traces_together_already_stay_where_they_are() {
        let mut batch = Batch::default();
        for (t, s) in [(9, 1), (9, 2), (2, 3), (5, 4), (5, 5), (1, 6)] {
            batch.spans.push(span(t, s));
        }
        let mut rows = Rows::encode(batch, &Dictionary::default());
        group_by_trace(&mut rows.spans);
        assert_eq!(ids(&rows), [(9, 1), (9, 2), (2, 3), (5, 4), (5, 5), (1, 6)]);
    }

    #[test]
    fn many_spans_group_as_a_stable_sort_by_first_appearance_would_put_them() {
        let mut batch = Batch::default();
        let mut x = 7u32;
        for s in 0..600u32 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let mut record = span((x >> 16) as u8 % 37, 0);
            record.span_id = (u64::from(s)).to_le_bytes();
            batch.spans.push(record);
        }
        let mut first_seen: Vec<[u8; 16]> = Vec::new();
        for s in &batch.spans {
            if !first_seen.contains(&s.trace_id) {
                first_seen.push(s.trace_id);
            }
        }
        let mut expected: Vec<([u8; 16], [u8; 8])> = batch
            .spans
            .iter()
            .map(|s| (s.trace_id, s.span_id))
            .collect();
        expected.sort_by_key(|(t, _)| first_seen.iter().position(|f| f == t));
        let mut rows = Rows::encode(batch, &Dictionary::default());
        group_by_trace(&mut rows.spans);
        let got: Vec<([u8; 16], [u8; 8])> = rows
            .spans
            .iter()
            .map(|r| (r.span.trace_id, r.span.span_id))
            .collect();
        assert_eq!(got, expected);
    }
}
