//! The embedded store: one SQLite file in WAL mode. One writer connection (SQLite has one
//! writer anyway) behind a mutex, used by ingest commits and retention steps in turn; a small
//! pool of reader connections for queries, which WAL lets run beside the writer.
//!
//! Rusqlite is blocking, so every call runs on tokio's blocking pool. The parts:
//! [`connections`] (the checkpointer thread and the reader pool), [`write`] (a batch in one
//! transaction: spans, trace summaries, logs), [`prune`] (retention), [`read`] (rows into
//! records, tag matching), [`query`] (the [`Store`] implementation). `rusqlite` errors stop
//! here: they become [`StoreError::Backend`].

mod connections;
mod prune;
mod query;
mod read;
mod write;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use self::connections::{Checkpointer, Readers};
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

/// File name of the database inside the data directory.
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
    use crate::model::{STATUS_ERROR, SpanKind};
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

    #[test]
    fn filters_compare_attributes_as_text_and_read_status_and_kind() {
        let attrs = r#"{"http.status_code":500,"ok":true,"name":"x"}"#;
        let res = r#"{"service.name":"svc"}"#;
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
        assert!(filters_match(&error, attrs, res, STATUS_ERROR, server));
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
            &[SpanFilter::StatusCode(1)],
            attrs,
            res,
            1,
            server
        ));
        assert!(!filters_match(
            &[SpanFilter::StatusCode(1)],
            attrs,
            res,
            2,
            server
        ));
    }
}
