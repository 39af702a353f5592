//! The embedded store: one SQLite file in WAL mode. One writer connection (SQLite has one
//! writer anyway) behind a mutex, used by ingest commits and retention steps in turn; a small
//! pool of reader connections for queries, which WAL lets run beside the writer.
//!
//! Rusqlite is blocking, so every call runs on tokio's blocking pool.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params, params_from_iter};

use super::schema::{MIGRATIONS, current_version};
use super::{
    LogCursor, LogPage, LogQuery, Operation, PruneReport, RetentionPolicy, Store, StoreError,
    StoredLog, TraceQuery, TraceSummary,
};
use crate::model::{
    Batch, LogRecord, Resource, STATUS_ERROR, SpanKind, SpanRecord, TraceId, now_ns,
};

/// File name of the database inside the data directory.
impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Backend {
            backend: "SQLite",
            message: e.to_string(),
        }
    }
}

pub const DB_FILE: &str = "gauntlet.sqlite";

/// Rows one retention step deletes at most, so that ingest waits little for the writer.
const PRUNE_STEP: i64 = 20_000;

/// Rows one trace search walks at most before it answers with what it found.
const MAX_SEARCH_SCAN: usize = 2_000_000;

/// Durability of a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sync {
    /// WAL with synchronous=NORMAL: a commit survives the process being killed (kill -9);
    /// a power loss may lose the last commits.
    #[default]
    Normal,
    /// synchronous=FULL: every commit is fsynced, surviving power loss too; slower.
    Full,
}

#[derive(Debug, Clone)]
pub struct SqliteConfig {
    pub dir: PathBuf,
    pub sync: Sync,
    /// Page cache of the writer connection, in bytes.
    pub cache_bytes: u64,
}

impl SqliteConfig {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            sync: Sync::Normal,
            cache_bytes: 64 << 20,
        }
    }
}

pub struct SqliteStore {
    path: PathBuf,
    /// Dropping it stops the checkpointer thread.
    _checkpointer: Checkpointer,
    writer: Arc<Mutex<Writer>>,
    readers: Arc<Readers>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

/// The writer connection and the IDs it has interned, so that a span insert needs no lookups.
struct Writer {
    conn: Connection,
    services: HashMap<String, i64>,
    operations: HashMap<(i64, String, i32), i64>,
    resources: HashMap<String, i64>,
    scopes: HashMap<(String, String), i64>,
}

struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl SqliteStore {
    /// Opens (creating or migrating) the store in `config.dir`.
    pub fn open(config: &SqliteConfig) -> Result<Self, StoreError> {
        std::fs::create_dir_all(&config.dir)?;
        let path = config.dir.join(DB_FILE);
        let open_err = |e: rusqlite::Error| StoreError::Unavailable {
            location: path.display().to_string(),
            reason: e.to_string(),
        };
        let mut conn = Connection::open(&path).map_err(open_err)?;
        // auto_vacuum only takes effect before the first table exists: new files get it.
        conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL;")
            .map_err(open_err)?;
        conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0))
            .map_err(open_err)?;
        let sync = match config.sync {
            Sync::Normal => "NORMAL",
            Sync::Full => "FULL",
        };
        conn.execute_batch(&format!(
            "PRAGMA synchronous = {sync};
             PRAGMA busy_timeout = 10000;
             PRAGMA temp_store = MEMORY;
             PRAGMA journal_size_limit = 67108864;
             PRAGMA wal_autocheckpoint = 16384;
             PRAGMA cache_size = -{};",
            config.cache_bytes / 1024
        ))
        .map_err(open_err)?;
        migrate(&mut conn, &path)?;
        conn.set_prepared_statement_cache_capacity(64);
        let checkpointer = Checkpointer::start(&path)?;
        Ok(Self {
            _checkpointer: checkpointer,
            writer: Arc::new(Mutex::new(Writer {
                conn,
                services: HashMap::new(),
                operations: HashMap::new(),
                resources: HashMap::new(),
                scopes: HashMap::new(),
            })),
            readers: Arc::new(Readers {
                path: path.clone(),
                idle: Mutex::new(Vec::new()),
            }),
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` with the writer connection on the blocking pool.
    async fn with_writer<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Writer) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let writer = self.writer.clone();
        tokio::task::spawn_blocking(move || {
            let mut w = writer
                .lock()
                .map_err(|_| StoreError::Task("the writer panicked earlier".into()))?;
            f(&mut w)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// Runs `f` with a pooled reader connection on the blocking pool.
    async fn with_reader<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let conn = readers.take()?;
            let result = f(&conn);
            readers.give_back(conn);
            result
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// Writes a batch on the calling thread: for benchmarks measuring the store alone.
    pub fn write_blocking(&self, batch: Batch) -> Result<(), StoreError> {
        let mut w = self
            .writer
            .lock()
            .map_err(|_| StoreError::Task("the writer panicked earlier".into()))?;
        w.write(batch)
    }
}

/// Copies the WAL back into the database on its own thread and connection, so that the
/// writer rarely pays for a checkpoint inside a commit. PASSIVE never blocks the writer or
/// readers, but under steady ingest it never quite catches up, and only a checkpoint that
/// catches up lets the WAL start over; so the writer keeps a high autocheckpoint (64 MiB
/// of WAL), which by then has little left to copy, and the WAL stays bounded.
struct Checkpointer {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    const EVERY: std::time::Duration = std::time::Duration::from_millis(200);

    fn start(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.execute_batch("PRAGMA busy_timeout = 1000;")?;
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(Self::EVERY)
                {
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        tracing::debug!(error = %e, "checkpoint deferred");
                    }
                }
                // A last full checkpoint on a clean stop leaves a small WAL behind.
                let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
            })?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Readers {
    /// Keeps at most this many idle connections; more are opened under load and closed after.
    const MAX_IDLE: usize = 4;

    fn take(&self) -> Result<Connection, StoreError> {
        if let Some(c) = self.idle.lock().ok().and_then(|mut v| v.pop()) {
            return Ok(c);
        }
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.execute_batch("PRAGMA busy_timeout = 10000; PRAGMA cache_size = -16384;")?;
        conn.set_prepared_statement_cache_capacity(32);
        Ok(conn)
    }

    fn give_back(&self, conn: Connection) {
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < Self::MAX_IDLE
        {
            idle.push(conn);
        }
    }
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let supported = current_version();
    if found > supported {
        return Err(StoreError::Incompatible {
            location: path.display().to_string(),
            reason: format!(
                "the data directory holds schema version {found}, newer than this build of \
                 gauntlet understands (version {supported}); run a newer gauntlet, or point \
                 --data-dir at another directory"
            ),
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
        tracing::info!(version = i + 1, path = %path.display(), "store schema migrated");
    }
    Ok(())
}

/// Per-trace totals of the spans of one commit.
struct TraceAgg {
    trace_id: TraceId,
    first: i64,
    last: i64,
    count: i64,
    start: i64,
    end: i64,
    error: bool,
    root: Option<(i64, i64)>,
    correlations: Vec<String>,
}

impl Writer {
    fn write(&mut self, mut batch: Batch) -> Result<(), StoreError> {
        // Contiguous spans per trace let the trace summary point at rowid ranges.
        batch.spans.sort_unstable_by_key(|s| s.trace_id);
        let result = self.write_sorted(&batch);
        if result.is_err() {
            // IDs interned in the rolled-back transaction do not exist.
            self.services.clear();
            self.operations.clear();
            self.resources.clear();
            self.scopes.clear();
        }
        result
    }

    fn write_sorted(&mut self, batch: &Batch) -> Result<(), StoreError> {
        let Writer {
            conn,
            services,
            operations,
            resources,
            scopes,
        } = self;
        let tx = conn.transaction()?;
        tx.execute("INSERT INTO batches (received_ns) VALUES (?1)", [now_ns()])?;
        let batch_id = tx.last_insert_rowid();
        let mut interner = Interner {
            tx: &tx,
            services,
            operations,
            resources,
            scopes,
        };
        let mut traces: Vec<TraceAgg> = Vec::new();
        let mut last_span = None;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO spans (trace_id, span_id, parent_span_id, service_id, op_id,
                    resource_id, scope_id, kind, start_ns, duration_ns, status_code,
                    status_message, attributes, events, links, correlation_id, trace_state, flags)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
            )?;
            for span in &batch.spans {
                let service_id = interner.service(&span.resource.service)?;
                let op_id = interner.operation(service_id, &span.name, span.kind as i32)?;
                let resource_id = interner.resource(service_id, &span.resource)?;
                let scope_id = interner.scope(&span.scope_name, &span.scope_version)?;
                insert.execute(params![
                    &span.trace_id[..],
                    &span.span_id[..],
                    span.parent_span_id.as_ref().map(|p| &p[..]),
                    service_id,
                    op_id,
                    resource_id,
                    scope_id,
                    span.kind as i32,
                    span.start_ns,
                    span.duration_ns(),
                    span.status_code,
                    non_empty(&span.status_message),
                    span.attributes,
                    non_empty_list(&span.events),
                    non_empty_list(&span.links),
                    span.correlation_id,
                    non_empty(&span.trace_state),
                    span.flags,
                ])?;
                let id = tx.last_insert_rowid();
                last_span = Some(id);
                let root = span.parent_span_id.is_none().then_some((service_id, op_id));
                match traces.last_mut() {
                    Some(t) if t.trace_id == span.trace_id => {
                        t.last = id;
                        t.count += 1;
                        t.start = t.start.min(span.start_ns);
                        t.end = t.end.max(span.end_ns);
                        t.error |= span.status_code == STATUS_ERROR;
                        t.root = t.root.or(root);
                        if let Some(c) = &span.correlation_id
                            && !t.correlations.contains(c)
                        {
                            t.correlations.push(c.clone());
                        }
                    }
                    _ => traces.push(TraceAgg {
                        trace_id: span.trace_id,
                        first: id,
                        last: id,
                        count: 1,
                        start: span.start_ns,
                        end: span.end_ns,
                        error: span.status_code == STATUS_ERROR,
                        root,
                        correlations: span.correlation_id.iter().cloned().collect(),
                    }),
                }
            }
        }
        let mut last_part = None;
        {
            let mut part = tx.prepare_cached(
                "INSERT INTO trace_parts (trace_id, first_span, last_span, span_count, start_ns,
                    end_ns, error, root_service_id, root_op_id, correlation_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?;
            for t in &traces {
                part.execute(params![
                    &t.trace_id[..],
                    t.first,
                    t.last,
                    t.count,
                    t.start,
                    t.end,
                    t.error,
                    t.root.map(|r| r.0),
                    t.root.map(|r| r.1),
                    t.correlations.first(),
                ])?;
                // Rare: more than one correlation ID in one part; each gets an empty row.
                for c in t.correlations.iter().skip(1) {
                    part.execute(params![
                        &t.trace_id[..],
                        0,
                        -1,
                        0,
                        t.start,
                        t.end,
                        false,
                        None::<i64>,
                        None::<i64>,
                        c
                    ])?;
                }
                last_part = Some(tx.last_insert_rowid());
            }
        }
        let mut last_log = None;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO logs (time_ns, observed_ns, service_id, resource_id, scope_id,
                    severity_number, severity_text, body, attributes, trace_id, span_id,
                    correlation_id, flags, event_name)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            )?;
            for log in &batch.logs {
                let service_id = interner.service(&log.resource.service)?;
                let resource_id = interner.resource(service_id, &log.resource)?;
                let scope_id = interner.scope(&log.scope_name, "")?;
                insert.execute(params![
                    log.time_ns,
                    log.observed_ns,
                    service_id,
                    resource_id,
                    scope_id,
                    log.severity_number,
                    log.severity_text,
                    log.body,
                    log.attributes,
                    log.trace_id.as_ref().map(|t| &t[..]),
                    log.span_id.as_ref().map(|s| &s[..]),
                    log.correlation_id,
                    log.flags,
                    log.event_name,
                ])?;
                last_log = Some(tx.last_insert_rowid());
            }
        }
        tx.execute(
            "UPDATE batches SET last_span = ?1, last_part = ?2, last_log = ?3 WHERE id = ?4",
            params![last_span, last_part, last_log, batch_id],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn prune(&mut self, policy: RetentionPolicy) -> Result<PruneReport, StoreError> {
        let conn = &mut self.conn;
        let mut cutoff: Option<i64> = None;
        if let Some(older_than) = policy.older_than_ns {
            cutoff = conn.query_row(
                "SELECT max(id) FROM batches WHERE received_ns < ?1",
                [older_than],
                |r| r.get(0),
            )?;
        }
        let over_size = match policy.max_bytes {
            Some(max) => used_bytes(conn)? > max,
            None => false,
        };
        if over_size {
            // Drop about the oldest 5% of batches per round, at least one.
            let by_size: Option<i64> = conn
                .query_row(
                    "SELECT id FROM batches ORDER BY id
                 LIMIT 1 OFFSET (SELECT count(*) / 20 FROM batches)",
                    [],
                    |r| r.get(0),
                )
                .optional()?;
            cutoff = cutoff.max(by_size);
        }
        let Some(cutoff) = cutoff else {
            return Ok(PruneReport::default());
        };
        let tx = conn.transaction()?;
        let (last_span, last_part, last_log): (Option<i64>, Option<i64>, Option<i64>) = tx
            .query_row(
                "SELECT max(last_span), max(last_part), max(last_log) FROM batches WHERE id <= ?1",
                [cutoff],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
        let mut report = PruneReport::default();
        // Rows are appended in batch order, so "everything up to the cut" is a rowid range.
        let delete_up_to = |table: &str, last: Option<i64>| -> Result<u64, StoreError> {
            let Some(last) = last else { return Ok(0) };
            Ok(tx.execute(
                &format!(
                    "DELETE FROM {table} WHERE id <= min(?1, (SELECT min(id) FROM {table}) + ?2)"
                ),
                params![last, PRUNE_STEP - 1],
            )? as u64)
        };
        report.spans = delete_up_to("spans", last_span)?;
        report.traces = delete_up_to("trace_parts", last_part)?;
        report.logs = delete_up_to("logs", last_log)?;
        if report.spans + report.traces + report.logs == 0 {
            tx.execute("DELETE FROM batches WHERE id <= ?1", [cutoff])?;
        }
        tx.commit()?;
        report.more = report.spans + report.logs + report.traces > 0;
        if !report.more {
            // Give freed pages back to the file system (auto_vacuum = INCREMENTAL).
            conn.execute_batch("PRAGMA incremental_vacuum;")?;
            report.more = policy
                .max_bytes
                .map(|max| used_bytes(conn).map(|u| u > max))
                .transpose()?
                .unwrap_or(false)
                && conn.query_row("SELECT count(*) FROM batches", [], |r| r.get::<_, i64>(0))? > 0;
        }
        Ok(report)
    }
}

/// Most spans have no status message, trace state, events or links: store NULL, not bytes.
fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

fn non_empty_list(json: &str) -> Option<&str> {
    (json != "[]").then_some(json)
}

/// Bytes in use: pages holding data (free pages excluded) plus the WAL.
fn used_bytes(conn: &Connection) -> Result<u64, StoreError> {
    let (pages, free, size): (i64, i64, i64) = conn.query_row(
        "SELECT (SELECT page_count FROM pragma_page_count),
                (SELECT freelist_count FROM pragma_freelist_count),
                (SELECT page_size FROM pragma_page_size)",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    Ok(((pages - free).max(0) * size) as u64)
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Interns names into small integer IDs within the writer's transaction.
struct Interner<'a> {
    tx: &'a rusqlite::Transaction<'a>,
    services: &'a mut HashMap<String, i64>,
    operations: &'a mut HashMap<(i64, String, i32), i64>,
    resources: &'a mut HashMap<String, i64>,
    scopes: &'a mut HashMap<(String, String), i64>,
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
        Ok(id)
    }

    fn operation(&mut self, service_id: i64, name: &str, kind: i32) -> Result<i64, StoreError> {
        let key = (service_id, name.to_string(), kind);
        if let Some(id) = self.operations.get(&key) {
            return Ok(*id);
        }
        self.tx.execute(
            "INSERT OR IGNORE INTO operations (service_id, name, kind) VALUES (?1, ?2, ?3)",
            params![service_id, name, kind],
        )?;
        let id = self.tx.query_row(
            "SELECT id FROM operations WHERE service_id = ?1 AND name = ?2 AND kind = ?3",
            params![service_id, name, kind],
            |r| r.get(0),
        )?;
        self.operations.insert(key, id);
        Ok(id)
    }

    fn resource(&mut self, service_id: i64, resource: &Resource) -> Result<i64, StoreError> {
        if let Some(id) = self.resources.get(&resource.attributes) {
            return Ok(*id);
        }
        self.tx.execute(
            "INSERT OR IGNORE INTO resources (service_id, attributes) VALUES (?1, ?2)",
            params![service_id, resource.attributes],
        )?;
        let id = self.tx.query_row(
            "SELECT id FROM resources WHERE attributes = ?1",
            [&resource.attributes],
            |r| r.get(0),
        )?;
        self.resources.insert(resource.attributes.clone(), id);
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
        Ok(id)
    }
}

/// Builds records from rows, sharing one `Arc<Resource>` per resource row.
#[derive(Default)]
struct ResourceCache(HashMap<i64, Arc<Resource>>);

impl ResourceCache {
    fn get(&mut self, id: i64, service: String, attributes: String) -> Arc<Resource> {
        self.0
            .entry(id)
            .or_insert_with(|| {
                Arc::new(Resource {
                    service,
                    attributes,
                })
            })
            .clone()
    }
}

const SPAN_SELECT: &str = "SELECT s.trace_id, s.span_id, s.parent_span_id, sv.name, s.resource_id,
        r.attributes, sc.name, sc.version, o.name, s.kind, s.start_ns, s.duration_ns,
        s.status_code, s.status_message, s.attributes, s.events, s.links, s.correlation_id,
        s.trace_state, s.flags
    FROM spans s
    JOIN services sv ON sv.id = s.service_id
    JOIN operations o ON o.id = s.op_id
    JOIN resources r ON r.id = s.resource_id
    JOIN scopes sc ON sc.id = s.scope_id";

fn span_from_row(
    row: &rusqlite::Row<'_>,
    cache: &mut ResourceCache,
) -> rusqlite::Result<SpanRecord> {
    let start_ns: i64 = row.get(10)?;
    let duration_ns: i64 = row.get(11)?;
    Ok(SpanRecord {
        trace_id: blob_id(row.get_ref(0)?.as_blob()?),
        span_id: blob_id(row.get_ref(1)?.as_blob()?),
        parent_span_id: row.get::<_, Option<Vec<u8>>>(2)?.map(|b| blob_id::<8>(&b)),
        resource: cache.get(row.get(4)?, row.get(3)?, row.get(5)?),
        scope_name: row.get(6)?,
        scope_version: row.get(7)?,
        name: row.get(8)?,
        kind: SpanKind::from_i32(row.get(9)?),
        start_ns,
        end_ns: start_ns.saturating_add(duration_ns),
        status_code: row.get(12)?,
        status_message: row.get::<_, Option<String>>(13)?.unwrap_or_default(),
        attributes: row.get(14)?,
        events: row
            .get::<_, Option<String>>(15)?
            .unwrap_or_else(|| "[]".into()),
        links: row
            .get::<_, Option<String>>(16)?
            .unwrap_or_else(|| "[]".into()),
        correlation_id: row.get(17)?,
        trace_state: row.get::<_, Option<String>>(18)?.unwrap_or_default(),
        flags: row.get(19)?,
    })
}

const LOG_SELECT: &str = "SELECT l.id, l.time_ns, l.observed_ns, sv.name, l.resource_id,
        r.attributes, sc.name, l.severity_number, l.severity_text, l.body, l.attributes,
        l.trace_id, l.span_id, l.correlation_id, l.flags, l.event_name
    FROM logs l
    JOIN services sv ON sv.id = l.service_id
    JOIN resources r ON r.id = l.resource_id
    JOIN scopes sc ON sc.id = l.scope_id";

fn log_from_row(row: &rusqlite::Row<'_>, cache: &mut ResourceCache) -> rusqlite::Result<StoredLog> {
    Ok(StoredLog {
        id: row.get(0)?,
        record: LogRecord {
            time_ns: row.get(1)?,
            observed_ns: row.get(2)?,
            resource: cache.get(row.get(4)?, row.get(3)?, row.get(5)?),
            scope_name: row.get(6)?,
            severity_number: row.get(7)?,
            severity_text: row.get(8)?,
            body: row.get(9)?,
            attributes: row.get(10)?,
            trace_id: row
                .get::<_, Option<Vec<u8>>>(11)?
                .map(|b| blob_id::<16>(&b)),
            span_id: row.get::<_, Option<Vec<u8>>>(12)?.map(|b| blob_id::<8>(&b)),
            correlation_id: row.get(13)?,
            flags: row.get(14)?,
            event_name: row.get(15)?,
        },
    })
}

/// Copies a stored ID blob into a fixed array (short blobs are zero-padded; we wrote them).
fn blob_id<const N: usize>(b: &[u8]) -> [u8; N] {
    let mut id = [0u8; N];
    let n = b.len().min(N);
    id[..n].copy_from_slice(&b[..n]);
    id
}

fn service_id(conn: &Connection, name: &str) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .query_row("SELECT id FROM services WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .optional()?)
}

fn read_traces(
    conn: &Connection,
    ids: &[TraceId],
) -> Result<Vec<(TraceId, Vec<SpanRecord>)>, StoreError> {
    let mut parts_stmt = conn.prepare_cached(
        "SELECT first_span, last_span FROM trace_parts WHERE trace_id = ?1 AND span_count > 0",
    )?;
    let mut spans_stmt = conn.prepare_cached(&format!(
        "{SPAN_SELECT} WHERE s.id BETWEEN ?1 AND ?2 AND s.trace_id = ?3"
    ))?;
    let mut cache = ResourceCache::default();
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let ranges = parts_stmt
            .query_map([&id[..]], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut spans = Vec::new();
        for (first, last) in ranges {
            let rows = spans_stmt.query_map(params![first, last, &id[..]], |r| {
                span_from_row(r, &mut cache)
            })?;
            for span in rows {
                spans.push(span?);
            }
        }
        if spans.is_empty() {
            continue;
        }
        spans.sort_by_key(|s| (s.start_ns, s.span_id));
        out.push((*id, spans));
    }
    Ok(out)
}

/// Does a span row satisfy every tag? Values compare as text; `true`/`false` match booleans.
fn tags_match(
    tags: &[(String, String)],
    attributes: &str,
    resource: &str,
    status_code: i32,
    kind: i32,
) -> bool {
    let parse = |s: &str| {
        serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(s).unwrap_or_default()
    };
    let attrs = parse(attributes);
    let res = parse(resource);
    tags.iter().all(|(key, want)| {
        let pseudo = match key.as_str() {
            "error" => Some((status_code == STATUS_ERROR).to_string()),
            "span.kind" => Some(SpanKind::from_i32(kind).jaeger_name().to_string()),
            "otel.status_code" => Some(
                match status_code {
                    1 => "OK",
                    2 => "ERROR",
                    _ => "UNSET",
                }
                .to_string(),
            ),
            _ => None,
        };
        if let Some(p) = pseudo {
            return p.eq_ignore_ascii_case(want);
        }
        attrs
            .get(key)
            .or_else(|| res.get(key))
            .is_some_and(|v| match v {
                serde_json::Value::String(s) => s == want,
                other => want.as_str() == other.to_string().as_str(),
            })
    })
}

#[async_trait]
impl Store for SqliteStore {
    async fn write(&self, batch: Batch) -> Result<(), StoreError> {
        self.with_writer(move |w| w.write(batch)).await
    }

    async fn services(&self) -> Result<Vec<String>, StoreError> {
        self.with_reader(|conn| {
            let mut stmt = conn.prepare_cached("SELECT name FROM services ORDER BY name")?;
            let names = stmt
                .query_map([], |r| r.get(0))?
                .collect::<Result<Vec<String>, _>>()?;
            Ok(names)
        })
        .await
    }

    async fn operations(
        &self,
        service: &str,
        kind: Option<SpanKind>,
    ) -> Result<Vec<Operation>, StoreError> {
        let service = service.to_string();
        self.with_reader(move |conn| {
            let Some(sid) = service_id(conn, &service)? else {
                return Ok(Vec::new());
            };
            let mut stmt = conn.prepare_cached(
                "SELECT name, kind FROM operations WHERE service_id = ?1
                 AND (?2 IS NULL OR kind = ?2) ORDER BY name, kind",
            )?;
            let ops = stmt
                .query_map(params![sid, kind.map(|k| k as i32)], |r| {
                    Ok(Operation {
                        name: r.get(0)?,
                        kind: SpanKind::from_i32(r.get(1)?).jaeger_name(),
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(ops)
        })
        .await
    }

    async fn find_trace_ids(&self, query: &TraceQuery) -> Result<Vec<TraceId>, StoreError> {
        let q = query.clone();
        self.with_reader(move |conn| {
            let Some(sid) = service_id(conn, &q.service)? else {
                return Ok(Vec::new());
            };
            let mut sql = String::from(
                "SELECT s.trace_id, s.attributes, s.status_code, s.kind, r.attributes
                 FROM spans s INDEXED BY spans_by_service
                 JOIN resources r ON r.id = s.resource_id
                 WHERE s.service_id = ?1 AND s.start_ns >= ?2 AND s.start_ns <= ?3",
            );
            let mut args: Vec<SqlValue> = vec![
                sid.into(),
                q.start_ns.unwrap_or(i64::MIN).into(),
                q.end_ns.unwrap_or(i64::MAX).into(),
            ];
            if let Some(op) = &q.operation {
                args.push(op.clone().into());
                sql.push_str(&format!(
                    " AND s.op_id IN (SELECT id FROM operations WHERE service_id = ?1 AND name = ?{})",
                    args.len()
                ));
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
            let mut stmt = conn.prepare(&sql)?;
            let mut rows = stmt.query(params_from_iter(args))?;
            let mut seen = HashSet::new();
            let mut ids = Vec::new();
            let mut scanned = 0usize;
            while let Some(row) = rows.next()? {
                scanned += 1;
                if scanned > MAX_SEARCH_SCAN || ids.len() >= q.limit {
                    break;
                }
                let id: TraceId = blob_id(&row.get::<_, Vec<u8>>(0)?);
                if seen.contains(&id) {
                    continue;
                }
                if !q.tags.is_empty() {
                    let attrs: String = row.get(1)?;
                    let res: String = row.get(4)?;
                    if !tags_match(&q.tags, &attrs, &res, row.get(2)?, row.get(3)?) {
                        continue;
                    }
                }
                seen.insert(id);
                ids.push(id);
            }
            Ok(ids)
        })
        .await
    }

    async fn traces(&self, ids: &[TraceId]) -> Result<Vec<(TraceId, Vec<SpanRecord>)>, StoreError> {
        let ids = ids.to_vec();
        self.with_reader(move |conn| read_traces(conn, &ids)).await
    }

    async fn trace_summaries(&self, ids: &[TraceId]) -> Result<Vec<TraceSummary>, StoreError> {
        let ids = ids.to_vec();
        self.with_reader(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT t.start_ns, t.end_ns, t.span_count, t.error, sv.name, o.name
                 FROM traces t
                 LEFT JOIN services sv ON sv.id = t.root_service_id
                 LEFT JOIN operations o ON o.id = t.root_op_id
                 WHERE t.trace_id = ?1",
            )?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                let row = stmt
                    .query_row([&id[..]], |r| {
                        let root = match (
                            r.get::<_, Option<String>>(4)?,
                            r.get::<_, Option<String>>(5)?,
                        ) {
                            (Some(s), Some(o)) => Some((s, o)),
                            _ => None,
                        };
                        Ok(TraceSummary {
                            trace_id: id,
                            start_ns: r.get(0)?,
                            end_ns: r.get(1)?,
                            span_count: r.get(2)?,
                            error: r.get(3)?,
                            root,
                        })
                    })
                    .optional()?;
                out.extend(row);
            }
            Ok(out)
        })
        .await
    }

    async fn logs(&self, query: &LogQuery) -> Result<LogPage, StoreError> {
        let q = query.clone();
        self.with_reader(move |conn| {
            let mut clauses: Vec<String> = Vec::new();
            let mut args: Vec<SqlValue> = Vec::new();
            let mut add = |clause: &str, v: SqlValue| {
                args.push(v);
                clauses.push(clause.replace('?', &format!("?{}", args.len())));
            };
            if let Some(service) = &q.service {
                match service_id(conn, service)? {
                    Some(sid) => add("l.service_id = ?", sid.into()),
                    None => return Ok(LogPage::default()),
                }
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
            if let Some(c) = q.before {
                args.push(c.time_ns.into());
                args.push(c.id.into());
                clauses.push(format!(
                    "(l.time_ns, l.id) < (?{}, ?{})",
                    args.len() - 1,
                    args.len()
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
            let mut stmt = conn.prepare(&sql)?;
            let mut cache = ResourceCache::default();
            let mut logs = stmt
                .query_map(params_from_iter(args), |r| log_from_row(r, &mut cache))?
                .collect::<Result<Vec<_>, _>>()?;
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
        self.with_reader(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT trace_id FROM trace_parts WHERE correlation_id = ?1
                 GROUP BY trace_id ORDER BY min(start_ns), trace_id LIMIT ?2",
            )?;
            let ids = stmt
                .query_map(params![cid, limit as i64], |r| {
                    Ok(blob_id::<16>(r.get_ref(0)?.as_blob()?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(ids)
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
        self.with_reader(move |conn| {
            let mut args: Vec<SqlValue> = vec![cid.into()];
            let mut sql = format!("{LOG_SELECT} WHERE l.correlation_id = ?1");
            if !traces.is_empty() {
                let marks: Vec<String> = (0..traces.len()).map(|i| format!("?{}", i + 2)).collect();
                sql.push_str(&format!(" OR l.trace_id IN ({})", marks.join(", ")));
                args.extend(traces.iter().map(|t| SqlValue::from(t.to_vec())));
            }
            args.push((limit as i64).into());
            sql.push_str(&format!(" ORDER BY l.time_ns, l.id LIMIT ?{}", args.len()));
            let mut stmt = conn.prepare(&sql)?;
            let mut cache = ResourceCache::default();
            let logs = stmt
                .query_map(params_from_iter(args), |r| {
                    log_from_row(r, &mut cache).map(|l| l.record)
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(logs)
        })
        .await
    }

    async fn prune(&self, policy: RetentionPolicy) -> Result<PruneReport, StoreError> {
        self.with_writer(move |w| w.prune(policy)).await
    }

    async fn disk_usage(&self) -> Result<u64, StoreError> {
        let db = self.path.clone();
        let wal = PathBuf::from(format!("{}-wal", db.display()));
        Ok(file_len(&db) + file_len(&wal))
    }

    async fn check_ready(&self) -> Result<(), StoreError> {
        self.with_reader(|conn| {
            let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            if v != current_version() {
                return Err(StoreError::Task(format!(
                    "schema version {v}, expected {}",
                    current_version()
                )));
            }
            Ok(())
        })
        .await?;
        // The writer must be free of a panic and its connection usable.
        self.with_writer(|w| {
            w.conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &Path) -> SqliteStore {
        SqliteStore::open(&SqliteConfig::new(dir)).expect("open store")
    }

    #[test]
    fn a_newer_schema_is_refused_with_advice() {
        let dir = tempfile::tempdir().expect("tempdir");
        drop(store(dir.path()));
        let conn = Connection::open(dir.path().join(DB_FILE)).expect("open");
        conn.pragma_update(None, "user_version", 99)
            .expect("set version");
        drop(conn);
        let err = SqliteStore::open(&SqliteConfig::new(dir.path())).expect_err("refused");
        let msg = err.to_string();
        assert!(
            matches!(err, StoreError::Incompatible { .. }) && msg.contains("version 99"),
            "{msg}"
        );
        assert!(msg.contains("run a newer gauntlet"), "{msg}");
    }

    #[test]
    fn an_older_schema_is_migrated_and_keeps_its_data() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(DB_FILE);
        {
            // A data dir written by a build that knew only migration 1.
            let conn = Connection::open(&path).expect("open");
            conn.execute_batch(MIGRATIONS[0]).expect("v1");
            conn.pragma_update(None, "user_version", 1)
                .expect("version");
            conn.execute("INSERT INTO services (name) VALUES ('old-service')", [])
                .expect("insert");
        }
        let store = store(dir.path());
        let conn = Connection::open(&path).expect("reopen");
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("version");
        assert_eq!(v, current_version());
        let logs: i64 = conn
            .query_row("SELECT count(*) FROM logs", [], |r| r.get(0))
            .expect("logs table exists");
        assert_eq!(logs, 0);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("rt");
        let services = rt.block_on(store.services()).expect("services");
        assert_eq!(services, vec!["old-service".to_string()]);
    }

    #[test]
    fn tags_compare_as_text_and_know_the_pseudo_tags() {
        let attrs = r#"{"http.status_code":500,"ok":true,"name":"x"}"#;
        let res = r#"{"service.name":"svc"}"#;
        let t = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        assert!(tags_match(&t("http.status_code", "500"), attrs, res, 0, 2));
        assert!(tags_match(&t("ok", "true"), attrs, res, 0, 2));
        assert!(tags_match(&t("service.name", "svc"), attrs, res, 0, 2));
        assert!(tags_match(&t("error", "true"), attrs, res, STATUS_ERROR, 2));
        assert!(!tags_match(&t("error", "true"), attrs, res, 0, 2));
        assert!(tags_match(&t("span.kind", "server"), attrs, res, 0, 2));
        assert!(!tags_match(&t("name", "y"), attrs, res, 0, 2));
    }
}
