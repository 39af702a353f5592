//! The embedded store: a directory of SQLite files in WAL mode. The catalog
//! (`gauntlet.sqlite`) interns names and lists the segments; rows go to the open segment
//! (`segments/NNNNNN.sqlite`) until it is full, then it is sealed (its in-memory trace-ID,
//! correlation-ID and service-time lookups written, sorted, into its key tables and
//! `span_times`, on another thread) and the next one opens.
//! Retention drops whole segments. Every write goes through one writer behind a mutex
//! (SQLite has one writer per file anyway); queries use per-file pools of read-only
//! connections, which WAL lets run beside the writer, and merge what the segments hold.
//!
//! Rusqlite is blocking, so every call runs on tokio's blocking pool. The parts:
//! [`connections`] (checkpointer, reader pools), [`dictionary`] (names and attribute keys in
//! memory), [`encoding`] (records into row columns), [`packed`] (span attributes as stored),
//! [`open_index`] (the open segment's lookups), [`key_blocks`] (a sealed segment's),
//! [`span_times`] (spans by service and start time, for search),
//! [`segment`] (segment files, sealing),
//! [`write`], [`rollups`] (RED per 10 s, counted as spans commit, written about once a second), [`prune`] (retention),
//! [`read`] (rows into records, per-segment lookups),
//! [`query`] (the [`Store`] implementation). `rusqlite` errors stop here: they become
//! [`StoreError::Backend`].

mod connections;
mod dictionary;
mod edges;
mod encoding;
mod key_blocks;
mod metrics;
mod open_index;
mod packed;
mod prune;
mod query;
mod read;
mod rollups;
mod segment;
mod span_times;
mod write;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use rusqlite::{Connection, OptionalExtension};

use self::connections::{Checkpointer, Readers};
use self::dictionary::{Dictionary, Names};
pub use self::encoding::Rows;
use self::open_index::OpenIndex;
use self::segment::{Format, Job, LEGACY, OPEN, SEALED, SEALING, SealJob, Sealer, Segment};
use self::write::Writer;
use super::StoreError;
use super::schema::{MIGRATIONS, current_version};
use crate::model::Batch;

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Backend {
            backend: "SQLite",
            message: e.to_string(),
        }
    }
}

impl From<rusqlite::types::FromSqlError> for StoreError {
    fn from(e: rusqlite::types::FromSqlError) -> Self {
        StoreError::Backend {
            backend: "SQLite",
            message: format!("unexpected stored value: {e}"),
        }
    }
}

/// File name of the catalog inside the data directory.
pub const DB_FILE: &str = "gauntlet.sqlite";

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

/// When the open segment is full and gets sealed.
#[derive(Debug, Clone, Copy)]
pub struct SegmentLimits {
    /// Spans and logs written to it. Bounds the memory of its in-memory lookups (about
    /// 60 bytes per run of a trace and 32 per span) and how much one seal sorts.
    pub rows: u64,
    /// Bytes of its file: the unit retention by disk use drops.
    pub bytes: u64,
}

impl Default for SegmentLimits {
    fn default() -> Self {
        Self {
            rows: 1_000_000,
            bytes: 1 << 30,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SqliteConfig {
    pub dir: PathBuf,
    pub sync: Sync,
    /// Page cache of the writer's connection to the open segment, in bytes. Small on
    /// purpose: appends touch few pages, and SQLite scans its whole page cache at every
    /// commit (a 64 MiB cache cost 13% of the collector's CPU under ingest, 8 MiB 3%).
    pub cache_bytes: u64,
    pub segments: SegmentLimits,
    /// How often the open segment's RED cells, counted in memory as spans commit, are
    /// written to its `red_rollups`: an upsert per cell per commit cost ~4% of ingest CPU.
    /// Nothing waits on it (RED reads the waiting cells too, and a restart counts the
    /// spans after the last flush again); `ZERO` flushes at every commit.
    pub red_flush_every: std::time::Duration,
}

impl SqliteConfig {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            sync: Sync::Normal,
            cache_bytes: 2 << 20,
            segments: SegmentLimits::default(),
            red_flush_every: std::time::Duration::from_secs(1),
        }
    }
}

/// A segment as [`SqliteStore::segments`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    pub path: PathBuf,
    /// Its trace-ID and correlation-ID indexes are built and it takes no more rows.
    pub sealed: bool,
}

pub struct SqliteStore {
    path: PathBuf,
    writer: Arc<Mutex<Writer>>,
    /// Every segment, oldest first (the catalog's own rows, if any, first of all).
    segments: Arc<RwLock<Vec<Arc<Segment>>>>,
    dictionary: Arc<Dictionary>,
    catalog_readers: Arc<Readers>,
    metrics: Arc<metrics::MetricReader>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

/// The pragmas every writing connection gets.
fn configure(conn: &Connection, sync: Sync, cache_bytes: u64) -> rusqlite::Result<()> {
    // Page size and auto_vacuum only take effect before the first table exists: new files
    // get them. 16 KiB pages: a WAL frame (one write call, a checksum) per 16 KiB of spans
    // rather than per 4 KiB, fewer B-tree levels; a commit's rewritten last pages cost a
    // little more.
    conn.execute_batch("PRAGMA page_size = 16384; PRAGMA auto_vacuum = INCREMENTAL;")?;
    conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0))?;
    let sync = match sync {
        Sync::Normal => "NORMAL",
        Sync::Full => "FULL",
    };
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {sync};
         PRAGMA busy_timeout = 10000;
         PRAGMA temp_store = MEMORY;
         PRAGMA journal_size_limit = 67108864;
         PRAGMA wal_autocheckpoint = 4096;
         PRAGMA cache_size = -{};",
        cache_bytes / 1024
    ))
}

/// Segments to read, and those of them to seal.
type Listed = (Vec<Arc<Segment>>, Vec<Arc<Segment>>);

/// The segments the catalog lists but the writer's (the legacy rows first, if any), and
/// those of them to seal: left sealing by a stop, or open in an older format. A listed file
/// that is gone is dropped from the catalog with a warning.
fn listed_segments(
    catalog: &Connection,
    config: &SqliteConfig,
    path: &Path,
    names: &Names,
) -> Result<Listed, StoreError> {
    let mut segments = Vec::new();
    let legacy_rows: bool = catalog.query_row(
        "SELECT EXISTS (SELECT 1 FROM spans) OR EXISTS (SELECT 1 FROM logs)",
        [],
        |r| r.get(0),
    )?;
    if legacy_rows {
        // Written before segments existed: indexed already; a search always looks at it.
        segments.push(Arc::new(Segment::new(
            LEGACY,
            path.to_path_buf(),
            Format::legacy(),
            None,
            Some((i64::MIN, i64::MAX)),
        )));
    }
    let listed: Vec<(i64, i64, Option<i64>, Option<i64>)> = catalog
        .prepare("SELECT id, state, min_start_ns, max_start_ns FROM segments ORDER BY id")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<Result<_, _>>()?;
    let mut to_seal = Vec::new();
    let last_id = listed.last().map(|l| l.0);
    for (id, state, min, max) in listed {
        let file = Segment::file(&config.dir, id);
        let may_be_absent = Some(id) == last_id && state == OPEN;
        if !file.is_file() && !may_be_absent {
            tracing::warn!(segment = id, file = %file.display(),
                "a listed segment file is missing; its data is gone");
            catalog.execute("DELETE FROM segments WHERE id = ?1", [id])?;
            continue;
        }
        if state == SEALED {
            let format = segment::sealed_format(&file).map_err(|e| StoreError::Unavailable {
                location: file.display().to_string(),
                reason: format!("cannot read this sealed segment: {e}"),
            })?;
            let sealed = Segment::new(id, file, format, None, min.zip(max));
            sealed.mark_sealed();
            segments.push(Arc::new(sealed));
            continue;
        }
        if may_be_absent && !file.is_file() {
            // Created by `open_segment`: the stop came before its first row.
            continue;
        }
        if let Some(seg) = unsealed(catalog, config, (id, state, file), may_be_absent, names)? {
            to_seal.push(seg.clone());
            segments.push(seg);
        }
    }
    Ok((segments, to_seal))
}

/// A segment not sealed yet, indexed again to be sealed; `None` for the writer's own
/// segment of the current format (reopened by `open_segment`).
fn unsealed(
    catalog: &Connection,
    config: &SqliteConfig,
    (id, state, file): (i64, i64, PathBuf),
    may_be_writers: bool,
    names: &Names,
) -> Result<Option<Arc<Segment>>, StoreError> {
    let (conn, format) = segment::open_for_writing(&file, config.sync, 4 << 20)?;
    if may_be_writers && format.is_current() {
        return Ok(None);
    }
    // Left sealing by a stop, or open in an older format (sealed in it: new rows go to a new
    // segment of the current format).
    let index = OpenIndex::rebuild(&conn, format, names)?;
    let range = Segment::read_start_range(&conn)?;
    drop(conn);
    if state != SEALING {
        catalog.execute(
            "UPDATE segments SET state = ?1 WHERE id = ?2",
            [SEALING, id],
        )?;
    }
    Ok(Some(Arc::new(Segment::new(
        id,
        file,
        format,
        Some(index),
        range,
    ))))
}

/// The writer's segment (the newest open one, or a new one), its connection and its rows.
fn open_segment(
    catalog: &Connection,
    config: &SqliteConfig,
    names: &Names,
) -> Result<(Connection, Arc<Segment>, u64), StoreError> {
    let open_id: i64 = match catalog
        .query_row(
            "SELECT id FROM segments WHERE state = ?1 ORDER BY id DESC LIMIT 1",
            [OPEN],
            |r| r.get(0),
        )
        .optional()?
    {
        Some(id) => id,
        None => {
            catalog.execute("INSERT INTO segments (state) VALUES (?1)", [OPEN])?;
            catalog.last_insert_rowid()
        }
    };
    let open_file = Segment::file(&config.dir, open_id);
    let (conn, format) = segment::open_for_writing(&open_file, config.sync, config.cache_bytes)?;
    let index = OpenIndex::rebuild(&conn, format, names)?;
    let rows: u64 = conn.query_row(
        "SELECT (SELECT count(*) FROM spans) + (SELECT count(*) FROM logs)",
        [],
        |r| r.get::<_, i64>(0),
    )? as u64;
    let range = Segment::read_start_range(&conn)?;
    let open = Arc::new(Segment::new(open_id, open_file, format, Some(index), range));
    Ok((conn, open, rows))
}

impl SqliteStore {
    /// Opens (creating or migrating) the store in `config.dir`: the catalog, then every
    /// segment it lists. Segments left unsealed by a stop are indexed in memory again and
    /// queued for sealing.
    pub fn open(config: &SqliteConfig) -> Result<Self, StoreError> {
        std::fs::create_dir_all(&config.dir)?;
        let path = config.dir.join(DB_FILE);
        let open_err = |e: rusqlite::Error| StoreError::Unavailable {
            location: path.display().to_string(),
            reason: e.to_string(),
        };
        let mut catalog = Connection::open(&path).map_err(open_err)?;
        configure(&catalog, config.sync, 4 << 20).map_err(open_err)?;
        migrate(&mut catalog, &path)?;
        catalog.set_prepared_statement_cache_capacity(16);
        let dictionary = Arc::new(Dictionary::load(&catalog)?);
        let (mut segments, to_seal) = listed_segments(&catalog, config, &path, &dictionary.read())?;
        let (conn, open, rows) = open_segment(&catalog, config, &dictionary.read())?;
        segments.push(open.clone());
        let checkpointer = Checkpointer::start(&open.path)?;
        let sealer = Sealer::start(path.clone())?;
        // What retention dropped before the last stop and no one deleted yet.
        sealer.submit(Job::EmptyTrash(segment::trash_dir(&open.path)));
        for seg in to_seal {
            sealer.submit(Job::Seal(SealJob {
                segment: seg,
                checkpointer: None,
            }));
        }
        // Newest first: recent traces are the ones people look up.
        for seg in segments.iter().rev().filter(|s| s.index().is_none()) {
            sealer.submit(Job::Filter(seg.clone()));
        }
        // Before the first write: the replay of a busy store's last seconds takes a while
        // that an exporter's request should not wait.
        let edges = write::rebuilt_matcher(&segments, &dictionary);
        let segments = Arc::new(RwLock::new(segments));
        let (metric_writer, series) = metrics::MetricWriter::open(&config.dir, config.sync)?;
        Ok(Self {
            metrics: Arc::new(metrics::MetricReader::new(&config.dir, series)),
            writer: Arc::new(Mutex::new(Writer {
                rollups: Default::default(),
                red_flush: (config.red_flush_every, std::time::Instant::now()),
                edges: Some(edges),
                catalog,
                dir: config.dir.clone(),
                sync: config.sync,
                cache_bytes: config.cache_bytes,
                limits: config.segments,
                conn,
                segment: open,
                rows,
                checkpointer: Some(checkpointer),
                segments: segments.clone(),
                dictionary: dictionary.clone(),
                services: Default::default(),
                operations: Default::default(),
                resources: Default::default(),
                scopes: Default::default(),
                metrics: metric_writer,
                sealer,
            })),
            segments,
            dictionary,
            catalog_readers: Arc::new(Readers::new(path.clone(), 2)),
            path,
        })
    }

    /// The catalog file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The segment files, oldest first (the last one is open), and whether each is sealed.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        self.snapshot()
            .iter()
            .filter(|s| s.id != LEGACY)
            .map(|s| SegmentInfo {
                path: s.path.clone(),
                sealed: s.index().is_none(),
            })
            .collect()
    }

    /// The segments as they are now, oldest first.
    fn snapshot(&self) -> Vec<Arc<Segment>> {
        self.segments
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Runs `f` with the writer on the blocking pool.
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

    /// Runs `f` on the blocking pool with the dictionary and a snapshot of the segments.
    async fn with_segments<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Dictionary, &[Arc<Segment>]) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let segments = self.snapshot();
        let dictionary = self.dictionary.clone();
        tokio::task::spawn_blocking(move || f(&dictionary, &segments))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// Writes a batch on the calling thread: for benchmarks measuring the store alone.
    pub fn write_blocking(&self, batch: Batch) -> Result<(), StoreError> {
        let rows = Rows::encode(batch, &self.dictionary);
        let mut w = self
            .writer
            .lock()
            .map_err(|_| StoreError::Task("the writer panicked earlier".into()))?;
        w.write(rows)
    }
}

/// Runs `f` with a pooled reader of the segment; a segment retention dropped meanwhile
/// reads as empty.
fn with_segment<T: Default>(
    segment: &Segment,
    f: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    if segment.is_retired() {
        return Ok(T::default());
    }
    let conn = match segment.readers.take() {
        Ok(c) => c,
        Err(_) if segment.is_retired() => return Ok(T::default()),
        Err(e) => return Err(e),
    };
    let result = f(&conn);
    segment.readers.give_back(conn);
    match result {
        Err(_) if segment.is_retired() => Ok(T::default()),
        other => other,
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

#[cfg(test)]
mod tests {
    use super::read::filters_match;
    use super::*;
    use crate::model::{Attributes, SpanKind, StatusCode};
    use crate::store::{SpanFilter, Store};

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

    /// The writer binds only the parameters that changed from the row before (`Bindings`):
    /// spans whose optional fields are set, then not, then set otherwise, in one batch and
    /// one trace, each read back as written.
    #[test]
    fn each_span_of_a_batch_reads_back_as_written() {
        use crate::model::{Batch, Event, Link, SpanRecord};
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store(dir.path());
        let full = |trace: u8, id: u8| {
            let mut s = SpanRecord::for_test([trace; 16], [id; 8]);
            s.parent_span_id = Some([id + 100; 8]);
            s.kind = SpanKind::Client;
            s.status_code = StatusCode::Error;
            s.status_message = format!("failed {id}");
            s.attributes =
                Attributes::from_json(&format!(r#"{{"n":{id},"s":"x{id}"}}"#)).expect("attributes");
            s.events = vec![Event {
                time_ns: s.start_ns + 1,
                name: format!("event {id}"),
                attributes: Attributes::new(),
            }];
            s.links = vec![Link {
                trace_id: [9; 16],
                span_id: [id; 8],
                trace_state: String::new(),
                attributes: Attributes::new(),
            }];
            s.correlation_id = Some(format!("corr-{trace}"));
            s.trace_state = format!("k={id}");
            s.flags = 1;
            s
        };
        let bare = |trace: u8, id: u8| SpanRecord::for_test([trace; 16], [id; 8]);
        let mut other_service = full(2, 6);
        other_service.resource = std::sync::Arc::new(crate::model::Resource {
            service: "other".into(),
            attributes: Attributes::from_json(r#"{"service.name":"other"}"#).expect("attributes"),
        });
        let spans = vec![
            full(1, 1),
            bare(1, 2),
            full(1, 3),
            bare(2, 4),
            full(1, 5),
            other_service,
            bare(1, 7),
        ];
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("rt");
        let batch = Batch {
            spans: spans.clone(),
            ..Batch::default()
        };
        rt.block_on(store.write(batch)).expect("write");
        let traces = rt
            .block_on(store.traces(&[[1; 16], [2; 16]]))
            .expect("read");
        let read: Vec<&SpanRecord> = traces.iter().flat_map(|(_, spans)| spans).collect();
        assert_eq!(read.len(), spans.len());
        for written in &spans {
            let back = read.iter().find(|s| s.span_id == written.span_id);
            assert_eq!(back, Some(&written), "span {}", written.span_id[0]);
        }
    }

    #[test]
    fn filters_compare_attributes_as_text_and_read_status_and_kind() {
        let json = r#"{"http.status_code":500,"ok":true,"name":"x"}"#;
        let attrs = || Attributes::from_json(json).ok();
        let res = &Attributes::from_json(r#"{"service.name":"svc"}"#).unwrap_or_default();
        let attr = |k: &str, v: &str| {
            vec![SpanFilter::Attribute {
                key: k.into(),
                value: v.into(),
            }]
        };
        let server = SpanKind::Server as i32;
        assert!(filters_match(
            &attr("http.status_code", "500"),
            attrs,
            res,
            0,
            server
        ));
        assert!(filters_match(&attr("ok", "true"), attrs, res, 0, server));
        assert!(filters_match(
            &attr("service.name", "svc"),
            attrs,
            res,
            0,
            server
        ));
        assert!(!filters_match(&attr("name", "y"), attrs, res, 0, server));
        let error = [SpanFilter::Error(true)];
        assert!(filters_match(
            &error,
            attrs,
            res,
            StatusCode::Error as i32,
            server
        ));
        assert!(!filters_match(&error, attrs, res, 0, server));
        assert!(filters_match(
            &[SpanFilter::Error(false)],
            attrs,
            res,
            0,
            server
        ));
        let kind = [SpanFilter::Kind(SpanKind::Server)];
        assert!(filters_match(&kind, attrs, res, 0, server));
        assert!(!filters_match(
            &kind,
            attrs,
            res,
            0,
            SpanKind::Client as i32
        ));
        assert!(filters_match(
            &[SpanFilter::StatusCode(StatusCode::Ok)],
            attrs,
            res,
            1,
            server
        ));
        assert!(!filters_match(
            &[SpanFilter::StatusCode(StatusCode::Ok)],
            attrs,
            res,
            2,
            server
        ));
    }
}
