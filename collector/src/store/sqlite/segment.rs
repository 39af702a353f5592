//! A segment: one SQLite file of spans and logs, written while it is open and
//! never again once sealed (retention drops it whole, or cuts its oldest batches when it
//! straddles the cut). Sealing writes the in-memory lookups into the file's key tables and
//! `span_times` on the sealer's own thread and connection: another file, so ingest into the
//! next segment never waits for it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};

use rusqlite::{Connection, OptionalExtension, params};

use super::connections::{Checkpointer, Readers};
use super::key_blocks::{self, KeyTable};
use super::open_index::{Keys, LogFilters, OpenIndex, SegmentFilters, key_rows_of_file, log_range};
use super::span_times::{self, ServiceTimes};
use super::{Sync, configure};
use super::{edges, rollups};
use crate::model::TraceId;
use crate::store::StoreError;
use crate::store::schema::{SEGMENT_KEY_TABLES, SEGMENT_SCHEMA, SEGMENT_VERSION};

/// The catalog's `segments.state` values.
pub(super) const OPEN: i64 = 0;
pub(super) const SEALING: i64 = 1;
pub(super) const SEALED: i64 = 2;

/// The catalog file's own data tables, read as one more sealed segment.
pub(super) const LEGACY: i64 = 0;

/// How a segment finds trace and correlation IDs, by its format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lookup {
    /// Format 3: keys (in memory while open, in the key tables once sealed) point at span
    /// rows: where a run of the trace starts, where a run first carries the correlation ID.
    SpanKeys,
    /// Format 2: keys point at `trace_parts` rows.
    PartKeys,
    /// Format 1 sealed, and the catalog's own tables: indexes on `trace_parts`.
    PartIndexes,
}

/// How a segment finds a service's spans by start time, by its format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Search {
    /// Format 4: sorted runs in memory while open, `span_times` blocks once sealed.
    SpanTimes,
    /// Formats 1 to 3, and the catalog's own tables: the live index `spans_by_service`.
    ServiceIndex,
}

/// A segment file's format (its `user_version`) and the secret of its ID keys.
#[derive(Debug, Clone, Copy)]
pub(super) struct Format {
    pub(super) keys: Keys,
    pub(super) version: i64,
}

impl Format {
    /// The catalog's own tables: read as a sealed segment of format 1.
    pub(super) fn legacy() -> Self {
        Self {
            keys: Keys::random(),
            version: 1,
        }
    }

    pub(super) fn lookup(self) -> Lookup {
        match self.version {
            3.. => Lookup::SpanKeys,
            2 => Lookup::PartKeys,
            _ => Lookup::PartIndexes,
        }
    }

    pub(super) fn search(self) -> Search {
        match self.version {
            4.. => Search::SpanTimes,
            _ => Search::ServiceIndex,
        }
    }

    /// Whether the file has `red_rollups` (format 5 on); RED reads an older one's spans.
    pub(super) fn has_rollups(self) -> bool {
        self.version >= 5
    }

    /// Whether sealing it writes `red_tiers` (format 6 on).
    pub(super) fn has_tiers(self) -> bool {
        self.version >= 6
    }

    /// Whether the file has `edge_rollups` and `edge_tiers` (format 7 on); the dependencies
    /// read an older one's spans.
    pub(super) fn has_edges(self) -> bool {
        self.version >= 7
    }

    /// Whether the open segment's RED cells wait in memory between flushes (format 9 on;
    /// `rollups.rs`).
    pub(super) fn defers_red(self) -> bool {
        self.version >= 9
    }

    /// Whether this build writes new rows into such a file.
    pub(super) fn is_current(self) -> bool {
        self.version == SEGMENT_VERSION
    }
}

impl Lookup {
    /// Whether the file has a `trace_parts` table.
    pub(super) fn has_parts(self) -> bool {
        self != Self::SpanKeys
    }
}

pub(super) struct Segment {
    pub(super) id: i64,
    pub(super) path: PathBuf,
    pub(super) readers: Readers,
    /// Turns IDs into the keys of its lookups and filters.
    pub(super) keys: Keys,
    pub(super) lookup: Lookup,
    pub(super) search: Search,
    /// Whether it has RED rollups (format 5 on).
    pub(super) rollups: bool,
    /// Whether sealing it writes `red_tiers` (format 6 on).
    has_tiers: bool,
    /// Whether it has edge rollups, and sealing writes their tiers (format 7 on).
    pub(super) edges: bool,
    /// Set once its `red_tiers` are committed (sealed, format 6 on): RED may read them.
    tiers_ready: AtomicBool,
    /// `Some` until the sealed segment's own indexes exist.
    index: RwLock<Option<OpenIndex>>,
    /// The span start times it holds (`None`: no spans), kept up to date by the writer while
    /// it is open: a search skips segments outside its window.
    pub(super) start_range: Mutex<Option<(i64, i64)>>,
    /// Once sealed: which IDs it may hold. Until they are built (after a restart, on the
    /// sealer's thread), lookups probe the segment's indexes.
    filters: OnceLock<SegmentFilters>,
    /// Once sealed: which trace and correlation IDs its logs may hold, and their time range.
    log_filters: OnceLock<LogFilters>,
    /// Dropped by retention: readers that still hold it skip it.
    pub(super) retired: AtomicBool,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("id", &self.id)
            .field("path", &self.path)
            .finish()
    }
}

impl Segment {
    pub(super) fn file(dir: &Path, id: i64) -> PathBuf {
        dir.join("segments").join(format!("{id:06}.sqlite"))
    }

    pub(super) fn new(
        id: i64,
        path: PathBuf,
        format: Format,
        index: Option<OpenIndex>,
        start_range: Option<(i64, i64)>,
    ) -> Self {
        Self {
            id,
            readers: Readers::new(path.clone(), 2),
            path,
            keys: format.keys,
            lookup: format.lookup(),
            search: format.search(),
            rollups: format.has_rollups(),
            has_tiers: format.has_tiers(),
            edges: format.has_edges(),
            tiers_ready: AtomicBool::new(false),
            index: RwLock::new(index),
            start_range: Mutex::new(start_range),
            filters: OnceLock::new(),
            log_filters: OnceLock::new(),
            retired: AtomicBool::new(false),
        }
    }

    /// Whether its format has `red_tiers` (filled when sealed).
    pub(super) fn has_tiers(&self) -> bool {
        self.has_tiers
    }

    /// Whether RED may read its `red_tiers`: sealed, of format 6 on.
    pub(super) fn tiers_ready(&self) -> bool {
        self.tiers_ready.load(Ordering::Acquire)
    }

    /// Marks a sealed segment's tiers readable (if its format has them).
    pub(super) fn mark_sealed(&self) {
        self.tiers_ready.store(self.has_tiers, Ordering::Release);
    }

    /// The in-memory lookups, while the segment is not sealed.
    pub(super) fn index(&self) -> RwLockReadGuard<'_, Option<OpenIndex>> {
        self.index.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn index_mut(&self) -> RwLockWriteGuard<'_, Option<OpenIndex>> {
        self.index.write().unwrap_or_else(|p| p.into_inner())
    }

    /// False only if the segment surely has no part of the trace.
    pub(super) fn may_hold_trace(&self, trace: &TraceId) -> bool {
        match (self.index().as_ref(), self.filters.get()) {
            (Some(index), _) => !index.trace_refs(trace).is_empty(),
            (None, Some(filters)) => filters.may_hold_trace(trace),
            (None, None) => true,
        }
    }

    /// False only if the segment surely has no part with the correlation ID.
    pub(super) fn may_hold_correlation(&self, correlation: &str) -> bool {
        match (self.index().as_ref(), self.filters.get()) {
            (Some(index), _) => !index.correlation_refs(correlation).is_empty(),
            (None, Some(filters)) => filters.may_hold_correlation(correlation),
            (None, None) => true,
        }
    }

    /// False only if the segment surely has no log of the trace.
    pub(super) fn may_hold_log_trace(&self, trace: &TraceId) -> bool {
        self.log_filters
            .get()
            .is_none_or(|f| f.may_hold_trace(trace))
    }

    /// False only if the segment surely has no log with the correlation ID.
    pub(super) fn may_hold_log_correlation(&self, correlation: &str) -> bool {
        self.log_filters
            .get()
            .is_none_or(|f| f.may_hold_correlation(correlation))
    }

    /// The oldest and newest log times (`None`: no logs): kept once sealed, read through the
    /// time index while open.
    pub(super) fn log_range(&self) -> Result<Option<(i64, i64)>, StoreError> {
        match self.log_filters.get() {
            Some(f) => Ok(f.range()),
            None => super::with_segment(self, log_range),
        }
    }

    pub(super) fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }

    pub(super) fn start_range(&self) -> Option<(i64, i64)> {
        *self.start_range.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Widens the start range by newly committed spans.
    pub(super) fn extend_start_range(&self, lo: i64, hi: i64) {
        let mut range = self.start_range.lock().unwrap_or_else(|p| p.into_inner());
        *range = Some(match *range {
            Some((a, b)) => (a.min(lo), b.max(hi)),
            None => (lo, hi),
        });
    }

    /// Reads the start range from the file: for a segment opened again unsealed.
    pub(super) fn read_start_range(conn: &Connection) -> Result<Option<(i64, i64)>, StoreError> {
        Ok(conn
            .query_row(
                "SELECT min(start_ns), max(start_ns) FROM spans HAVING count(*) > 0",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    /// Bytes on disk: the file and its WAL.
    pub(super) fn disk_bytes(&self) -> u64 {
        file_len(&self.path) + file_len(&wal_path(&self.path))
    }

    /// Moves the segment's files to the trash (readers holding a connection keep reading what
    /// they had); the sealer's thread deletes them.
    pub(super) fn retire_files(&self) -> std::io::Result<()> {
        self.retired.store(true, Ordering::Release);
        let trash = trash_dir(&self.path);
        std::fs::create_dir_all(&trash)?;
        for p in [
            self.path.clone(),
            wal_path(&self.path),
            PathBuf::from(format!("{}-shm", self.path.display())),
        ] {
            let Some(name) = p.file_name() else { continue };
            match std::fs::rename(&p, trash.join(name)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }
}

/// Where retired segment files wait to be deleted, beside the segments. Renaming is instant;
/// deleting a large file is not (the kernel frees its cached pages: ~100 ms for a 1M-span
/// segment), and the writer, which retires segments, must not wait for it. Whatever a stop
/// leaves there is deleted on the next start.
pub(super) fn trash_dir(segment_path: &Path) -> PathBuf {
    segment_path
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join("trash")
}

/// Deletes every file in the trash.
fn empty_trash(trash: &Path) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(trash) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        other => other?,
    };
    for entry in entries {
        let path = entry?.path();
        if path.is_file() {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

pub(super) fn wal_path(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}-wal", path.display()))
}

pub(super) fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Opens a segment file for writing, creating its tables if it is new (and adding the key
/// tables to an unsealed file of format 1, which makes it format 2); returns it with the
/// segment's keys and lookup. Only a file of the current format takes new rows: an older
/// unsealed one is sealed in its own format.
pub(super) fn open_for_writing(
    path: &Path,
    sync: Sync,
    cache_bytes: u64,
) -> Result<(Connection, Format), StoreError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let unavailable = |e: rusqlite::Error| StoreError::Unavailable {
        location: path.display().to_string(),
        reason: e.to_string(),
    };
    let conn = Connection::open(path).map_err(unavailable)?;
    configure(&conn, sync, cache_bytes).map_err(unavailable)?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let (tables, version) = match version {
        0 => (
            format!("{SEGMENT_SCHEMA} {SEGMENT_KEY_TABLES}"),
            SEGMENT_VERSION,
        ),
        1 => (SEGMENT_KEY_TABLES.to_string(), 2),
        2..=SEGMENT_VERSION => (String::new(), version),
        other => {
            return Err(StoreError::Incompatible {
                location: path.display().to_string(),
                reason: format!(
                    "segment format {other}, this build of gauntlet reads formats 1 to \
                     {SEGMENT_VERSION}; run a newer gauntlet, or point --data-dir elsewhere"
                ),
            });
        }
    };
    if !tables.is_empty() {
        let (k0, k1) = Keys::random().to_stored();
        conn.execute_batch(&format!(
            "BEGIN; {tables} INSERT INTO segment_keys (k0, k1) VALUES ({k0}, {k1});
             PRAGMA user_version = {version}; COMMIT;"
        ))?;
    }
    let keys = read_keys(&conn)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok((conn, Format { keys, version }))
}

fn read_keys(conn: &Connection) -> Result<Keys, StoreError> {
    Ok(conn.query_row("SELECT k0, k1 FROM segment_keys", [], |r| {
        Ok(Keys::from_stored(r.get(0)?, r.get(1)?))
    })?)
}

/// The format of a sealed segment file, read from it. A file of format 1 has no stored keys:
/// its filters, built on each start, get fresh ones.
pub(super) fn sealed_format(path: &Path) -> Result<Format, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.execute_batch("PRAGMA busy_timeout = 10000;")?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let keys = match version {
        2.. => read_keys(&conn)?,
        _ => Keys::random(),
    };
    Ok(Format { keys, version })
}

/// One segment to seal, with the checkpointer that kept its WAL short while it was open.
pub(super) struct SealJob {
    pub(super) segment: Arc<Segment>,
    pub(super) checkpointer: Option<Checkpointer>,
}

/// What the sealer's thread does, in order.
pub(super) enum Job {
    Seal(SealJob),
    /// Builds the filters of a segment sealed before this start.
    Filter(Arc<Segment>),
    /// Deletes the files retention moved to this trash directory.
    EmptyTrash(PathBuf),
}

/// Seals segments one after another on its own thread. Dropping it lets the segment being
/// sealed finish and leaves the rest to be sealed on the next start.
pub(super) struct Sealer {
    jobs: Option<mpsc::Sender<Job>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sealer {
    pub(super) fn start(catalog: PathBuf) -> Result<Self, StoreError> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("sqlite-sealer".into())
            .spawn(move || {
                for job in queue {
                    if stopping.load(Ordering::Acquire) {
                        break;
                    }
                    match job {
                        Job::Seal(job) => {
                            let id = job.segment.id;
                            if let Err(e) = seal(&catalog, job) {
                                tracing::warn!(segment = id, error = %e,
                                    "sealing a segment failed; it stays indexed in memory \
                                     and is sealed again on the next start");
                            }
                        }
                        Job::EmptyTrash(trash) => {
                            if let Err(e) = empty_trash(&trash) {
                                tracing::warn!(trash = %trash.display(), error = %e,
                                    "cannot delete dropped segment files; trying again on \
                                     the next drop or start");
                            }
                        }
                        Job::Filter(segment) => {
                            if let Err(e) = build_filters(&segment) {
                                tracing::warn!(segment = segment.id, error = %e,
                                    "cannot build a segment's filters; lookups probe its \
                                     index instead");
                            }
                        }
                    }
                }
            })?;
        Ok(Self {
            jobs: Some(jobs),
            stop,
            thread: Some(thread),
        })
    }

    pub(super) fn submit(&self, job: Job) {
        if let Some(jobs) = &self.jobs {
            // The thread only ends when this sender is dropped.
            let _ = jobs.send(job);
        }
    }
}

impl Drop for Sealer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        drop(self.jobs.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn seal(catalog: &Path, job: SealJob) -> Result<(), StoreError> {
    let SealJob {
        segment,
        checkpointer,
    } = job;
    // Its last checkpoint copies the WAL into the file before the index is built.
    drop(checkpointer);
    if segment.is_retired() {
        return Ok(());
    }
    let started = std::time::Instant::now();
    let mut conn = Connection::open(&segment.path)?;
    conn.execute_batch("PRAGMA busy_timeout = 10000; PRAGMA cache_size = -16384;")?;
    let rows = segment.index().as_ref().and_then(OpenIndex::key_rows);
    let (traces, correlations) = match rows {
        Some(rows) => rows,
        None => key_rows_of_file(&conn, segment.keys, segment.lookup)?,
    };
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    key_blocks::write(&tx, KeyTable::Traces, &traces)?;
    key_blocks::write(&tx, KeyTable::Correlations, &correlations)?;
    if segment.search == Search::SpanTimes {
        let index = segment.index();
        match index.as_ref() {
            Some(open) => span_times::write(&tx, open.times())?,
            None => span_times::write(&tx, &ServiceTimes::rebuild(&tx)?)?,
        }
    }
    if let Some(open) = segment.index().as_ref()
        && open.red().len() > 0
    {
        // What the writer had not flushed yet (or a restart counted again from the spans).
        rollups::flush(&tx, open.red(), &rollups::RollupCache::default())?;
    }
    if segment.has_tiers {
        rollups::write_tiers(&tx)?;
    }
    if segment.edges {
        edges::write_tiers(&tx)?;
    }
    tx.commit()?;
    let range = segment.start_range();
    let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    let cat = Connection::open(catalog)?;
    cat.execute_batch("PRAGMA busy_timeout = 10000;")?;
    cat.execute(
        "UPDATE segments SET state = ?1, min_start_ns = ?2, max_start_ns = ?3 WHERE id = ?4",
        params![SEALED, range.map(|r| r.0), range.map(|r| r.1), segment.id],
    )?;
    segment.mark_sealed();
    // From here lookups use the filters and the file's indexes.
    {
        let mut index = segment.index_mut();
        if let Some(open) = index.as_ref() {
            let _ = segment.filters.set(open.filters());
        }
        *index = None;
    }
    // Log queries skip it by ID and time from here (without them they probe its indexes,
    // so a failure here costs speed, not the seal).
    match LogFilters::read(&conn, segment.keys) {
        Ok(filters) => {
            let _ = segment.log_filters.set(filters);
        }
        Err(e) => tracing::warn!(segment = segment.id, error = %e,
            "cannot build a sealed segment's log filters; log queries probe its indexes"),
    }
    tracing::debug!(segment = segment.id, elapsed = ?started.elapsed(), "segment sealed");
    Ok(())
}

fn build_filters(segment: &Segment) -> Result<(), StoreError> {
    if segment.is_retired() {
        return Ok(());
    }
    let conn = Connection::open_with_flags(
        &segment.path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.execute_batch("PRAGMA busy_timeout = 10000;")?;
    let filters = match segment.lookup {
        Lookup::SpanKeys | Lookup::PartKeys => {
            SegmentFilters::from_key_tables(&conn, segment.keys)?
        }
        Lookup::PartIndexes => SegmentFilters::from_parts(&conn, segment.keys)?,
    };
    let _ = segment.filters.set(filters);
    let _ = segment
        .log_filters
        .set(LogFilters::read(&conn, segment.keys)?);
    Ok(())
}
