//! A service's own SQLite database, used only from blocking threads: every transaction runs
//! in `spawn_blocking`, so a slow write (or a file locked by the other inventory instance)
//! never stalls the async workers that serve unrelated requests. The caller's tracing span
//! is entered on the blocking thread, so logs and outbox trace context stay attached.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, Transaction, TransactionBehavior};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("stored data is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the database task failed: {0}")]
    Task(String),
    /// The caller's own reason to roll the transaction back.
    #[error("{0}")]
    Aborted(String),
    /// A store kept beside the database (committed first, synced before the database
    /// commits) could not be synced: nothing was committed.
    #[error("the store beside the database could not sync: {0}")]
    Sync(String),
}

/// A connection to a service database; cheap to clone (clones share the connection).
#[derive(Clone)]
pub struct Db {
    conn: Arc<Mutex<Connection>>,
    /// Transactions handed to a blocking thread and not yet finished (waiting for the
    /// connection or another process's lock, or running): what a test waits on to know a
    /// request reached the database, instead of guessing with a sleep.
    in_progress: Arc<AtomicUsize>,
}

/// Counts one transaction in progress while it lives.
struct InProgress(Arc<AtomicUsize>);

impl InProgress {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count.clone())
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Db")
    }
}

impl Db {
    /// Opens (creating) the database at `path` in WAL mode and applies `schema`, which must
    /// be idempotent (`CREATE TABLE IF NOT EXISTS ...`). Blocking: call it before serving.
    pub fn open(path: &Path, schema: &str) -> Result<Self, DbError> {
        let conn = Connection::open(path)?;
        conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
        // Another process may hold the write lock (inventory's instances share a file):
        // wait for it on this blocking thread rather than failing the request.
        conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;")?;
        conn.execute_batch(schema)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            in_progress: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Transactions in progress on this database from this process.
    pub fn in_progress(&self) -> usize {
        self.in_progress.load(Ordering::SeqCst)
    }

    /// Runs `f` in one write transaction on a blocking thread. IMMEDIATE: the write lock is
    /// taken up front, so a read-then-write cannot be overtaken by another process.
    pub async fn write<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, DbError> + Send + 'static,
    {
        self.run(TransactionBehavior::Immediate, f).await
    }

    /// Runs `f` in one read transaction on a blocking thread.
    pub async fn read<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, DbError> + Send + 'static,
    {
        self.run(TransactionBehavior::Deferred, f).await
    }

    async fn run<T, F>(&self, behavior: TransactionBehavior, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, DbError> + Send + 'static,
    {
        let db = self.clone();
        let span = tracing::Span::current();
        let counted = InProgress::new(&self.in_progress);
        tokio::task::spawn_blocking(move || {
            let _counted = counted;
            let _entered = span.enter();
            db.blocking(behavior, f)
        })
        .await
        .map_err(|e| DbError::Task(e.to_string()))?
    }

    /// The same, on the calling thread: for code already off the runtime.
    pub(crate) fn blocking<T>(
        &self,
        behavior: TransactionBehavior,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        // A panic while holding the lock leaves a connection whose transaction was rolled
        // back on drop: safe to keep using.
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn.transaction_with_behavior(behavior)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }
}

/// Whether `table` has `column` (a file from before the column was added has not).
pub fn has_column(conn: &Connection, table: &str, column: &str) -> Result<bool, DbError> {
    Ok(conn.query_row(
        "SELECT count(*) > 0 FROM pragma_table_info(?1) WHERE name = ?2",
        [table, column],
        |r| r.get(0),
    )?)
}

/// Column `idx` as one of a text enum's values (see [`super::text_enum`]).
pub fn text_column<T>(
    row: &rusqlite::Row<'_>,
    idx: usize,
    parse: fn(&str) -> Option<T>,
) -> rusqlite::Result<T> {
    let text: String = row.get(idx)?;
    parse(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            idx,
            rusqlite::types::Type::Text,
            format!("unknown value {text:?}").into(),
        )
    })
}

/// Column `idx` as JSON of type `T`.
pub fn json_column<T: serde::de::DeserializeOwned>(
    row: &rusqlite::Row<'_>,
    idx: usize,
) -> rusqlite::Result<T> {
    let text: String = row.get(idx)?;
    serde_json::from_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e))
    })
}
