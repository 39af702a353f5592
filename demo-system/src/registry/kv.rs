//! The registry's configuration store: keys with versions and blocking reads, in the shape
//! of Consul's KV HTTP API (`/v1/kv/{key}`), so a service can wait for a change instead of
//! polling, and Consul's tools can read it.
//!
//! - `GET /v1/kv/{key}`: the key as `[KvEntry]` (value base64), `404` when not set;
//!   `?recurse`: every key under the prefix; `?raw`: the bare value. Every answer carries
//!   the store's index in `X-Consul-Index`; `?index=N` (with `?wait=10s`, at most 10 min,
//!   5 min by default) holds the read until the index passes N or the wait ends, then
//!   answers what is there. Like Consul's, the index is the whole store's: a wake-up may
//!   be for another key, and a reader compares what it got.
//! - `PUT /v1/kv/{key}` with the value as the body: `true`. The registry checks keys and
//!   values against the services' catalog ([`crate::platform::live_config`]) and refuses
//!   one they would not take with a `400` that says why, changing nothing.
//! - `DELETE /v1/kv/{key}`: `true`, set or not.
//!
//! Every change is committed to the registry's SQLite file (with the index) before it is
//! answered or seen by a reader, so a registry restarted by its supervisor serves the same
//! configuration; the index goes on from where it was, and readers blocked on the old
//! process's index just read again.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use serde::Deserialize;

use super::api::{KV_INDEX_HEADER, KvEntry};
use crate::platform::db::{Db, DbError};
use crate::platform::http::ApiError;
use crate::platform::live_config::ConfigKey;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    create_index INTEGER NOT NULL,
    modify_index INTEGER NOT NULL,
    session TEXT,
    lock_index INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS kv_index (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    value INTEGER NOT NULL
);
INSERT OR IGNORE INTO kv_index (one, value) VALUES (1, 0);
";

/// The longest a blocking read may wait, and what it waits without `?wait` (Consul's).
const MAX_WAIT: Duration = Duration::from_secs(600);
const DEFAULT_WAIT: Duration = Duration::from_secs(300);

/// A value larger than this is refused (Consul's limit is 512 KiB; these are settings).
const MAX_VALUE: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub(super) struct Stored {
    pub(super) value: Vec<u8>,
    pub(super) create_index: u64,
    pub(super) modify_index: u64,
    /// The session holding the key's lock (see [`super::locks`]).
    pub(super) session: Option<uuid::Uuid>,
    /// How many times the key's lock was acquired: a fencing token, larger for each new
    /// holder.
    pub(super) lock_index: u64,
}

impl Stored {
    fn entry(&self, key: &str) -> KvEntry {
        KvEntry {
            key: key.to_string(),
            value: Some(base64::engine::general_purpose::STANDARD.encode(&self.value)),
            create_index: self.create_index,
            modify_index: self.modify_index,
            lock_index: self.lock_index,
            flags: 0,
            session: self.session.map(|s| s.to_string()),
        }
    }
}

/// The store; cheap to clone (clones share it).
#[derive(Clone)]
pub struct KvStore {
    pub(super) db: Db,
    /// What the file holds, for reads without a transaction.
    pub(super) entries: Arc<Mutex<BTreeMap<String, Stored>>>,
    /// The index of the last committed change; readers wait on it.
    pub(super) index: Arc<tokio::sync::watch::Sender<u64>>,
    /// One change at a time, so indexes are committed and published in order.
    pub(super) writing: Arc<tokio::sync::Mutex<()>>,
    /// The live sessions and the lock delays of keys their end released.
    pub(super) sessions: Arc<Mutex<super::locks::Sessions>>,
}

impl std::fmt::Debug for KvStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvStore")
            .field("index", &self.index())
            .finish()
    }
}

impl KvStore {
    /// Opens (creating) the store in the SQLite file at `path`. Blocking: call it before
    /// serving.
    pub fn open(path: &Path) -> Result<Self, DbError> {
        let db = Db::open(path, &format!("{SCHEMA}\n{}", super::locks::SCHEMA))?;
        let (entries, index, sessions) =
            db.blocking(rusqlite::TransactionBehavior::Immediate, |tx| {
                add_lock_columns(tx)?;
                let index = tx.query_row("SELECT value FROM kv_index", [], |r| index_at(r, 0))?;
                let mut stmt = tx.prepare(
                    "SELECT key, value, create_index, modify_index, session, lock_index FROM kv",
                )?;
                let rows = stmt.query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        Stored {
                            value: r.get(1)?,
                            create_index: index_at(r, 2)?,
                            modify_index: index_at(r, 3)?,
                            session: r
                                .get::<_, Option<String>>(4)?
                                .and_then(|s| uuid::Uuid::parse_str(&s).ok()),
                            lock_index: index_at(r, 5)?,
                        },
                    ))
                })?;
                let entries = rows.collect::<Result<BTreeMap<_, _>, _>>()?;
                let sessions = super::locks::Sessions::load(tx)?;
                Ok((entries, index, sessions))
            })?;
        Ok(Self {
            db,
            entries: Arc::new(Mutex::new(entries)),
            index: Arc::new(tokio::sync::watch::channel(index).0),
            writing: Arc::new(tokio::sync::Mutex::new(())),
            sessions: Arc::new(Mutex::new(sessions)),
        })
    }

    /// A store that lives as long as the process (tests, and a registry without a data
    /// directory).
    pub fn in_memory() -> Result<Self, DbError> {
        Self::open(Path::new(":memory:"))
    }

    /// The index of the last change.
    pub fn index(&self) -> u64 {
        *self.index.borrow()
    }

    /// The entry at `key`, or with `recurse` every entry whose key starts with it.
    pub fn get(&self, key: &str, recurse: bool) -> Vec<KvEntry> {
        let entries = crate::platform::lock(&self.entries);
        if recurse {
            entries
                .range(key.to_string()..)
                .take_while(|(k, _)| k.starts_with(key))
                .map(|(k, s)| s.entry(k))
                .collect()
        } else {
            entries.get(key).map(|s| s.entry(key)).into_iter().collect()
        }
    }

    /// Sets `key` to `value`, committed before it returns; the change's index. Who holds
    /// the key's lock does not change.
    pub async fn put(&self, key: &str, value: Vec<u8>) -> Result<u64, DbError> {
        let _one = self.writing.lock().await;
        let held = crate::platform::lock(&self.entries).get(key).cloned();
        let (session, lock_index) = held
            .as_ref()
            .map_or((None, 0), |h| (h.session, h.lock_index));
        self.commit(key, value, session, lock_index, held).await
    }

    /// Commits `key` with `value`, its lock held by `session`, then shows it to readers; the
    /// change's index. The caller holds the write lock, and `held` is what the key was.
    pub(super) async fn commit(
        &self,
        key: &str,
        value: Vec<u8>,
        session: Option<uuid::Uuid>,
        lock_index: u64,
        held: Option<Stored>,
    ) -> Result<u64, DbError> {
        let k = key.to_string();
        let stored = self
            .db
            .write(move |tx| {
                let index = next_index(tx)?;
                let stored = Stored {
                    value,
                    create_index: held.map_or(index, |h| h.create_index),
                    modify_index: index,
                    session,
                    lock_index,
                };
                tx.execute(
                    "INSERT INTO kv (key, value, create_index, modify_index, session, lock_index)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (key) DO UPDATE SET value = ?2, modify_index = ?4,
                         session = ?5, lock_index = ?6",
                    rusqlite::params![
                        k,
                        stored.value,
                        stored.create_index as i64,
                        stored.modify_index as i64,
                        stored.session.map(|s| s.to_string()),
                        stored.lock_index as i64
                    ],
                )?;
                Ok(stored)
            })
            .await?;
        let index = stored.modify_index;
        crate::platform::lock(&self.entries).insert(key.to_string(), stored);
        self.index.send_replace(index);
        Ok(index)
    }

    /// Removes `key`, committed before it returns; whether it was set.
    pub async fn delete(&self, key: &str) -> Result<bool, DbError> {
        let _one = self.writing.lock().await;
        if !crate::platform::lock(&self.entries).contains_key(key) {
            return Ok(false);
        }
        let k = key.to_string();
        let index = self
            .db
            .write(move |tx| {
                let index = next_index(tx)?;
                tx.execute("DELETE FROM kv WHERE key = ?1", [&k])?;
                Ok(index)
            })
            .await?;
        crate::platform::lock(&self.entries).remove(key);
        self.index.send_replace(index);
        Ok(true)
    }

    /// Waits until the index passes `after` or `wait` ends, whichever is first; whether it
    /// passed.
    pub async fn changed_after(&self, after: u64, wait: Duration) -> bool {
        let mut seen = self.index.subscribe();
        matches!(
            tokio::time::timeout(wait, seen.wait_for(|i| *i > after)).await,
            Ok(Ok(_))
        )
    }
}

/// Adds the lock columns to a `kv` table from before sessions.
fn add_lock_columns(tx: &rusqlite::Transaction<'_>) -> Result<(), DbError> {
    if !crate::platform::db::has_column(tx, "kv", "lock_index")? {
        tx.execute_batch(
            "ALTER TABLE kv ADD COLUMN session TEXT;
             ALTER TABLE kv ADD COLUMN lock_index INTEGER NOT NULL DEFAULT 0;",
        )?;
    }
    Ok(())
}

/// Takes the next index in the transaction that makes the change.
pub(super) fn next_index(tx: &rusqlite::Transaction<'_>) -> Result<u64, DbError> {
    Ok(tx.query_row(
        "UPDATE kv_index SET value = value + 1 RETURNING value",
        [],
        |r| index_at(r, 0),
    )?)
}

/// Column `n` as an index (SQLite's integers are signed; indexes start at 0).
pub(super) fn index_at(row: &rusqlite::Row<'_>, n: usize) -> rusqlite::Result<u64> {
    row.get::<_, i64>(n).map(|v| v.max(0) as u64)
}

/// The query of a read.
#[derive(Debug, Default, Deserialize)]
struct ReadQuery {
    recurse: Option<String>,
    raw: Option<String>,
    index: Option<String>,
    wait: Option<String>,
}

/// A duration as Consul writes one (`10s`, `500ms`, `5m`, `1h`; a bare number is seconds);
/// `what` names it in the error.
pub(super) fn parse_duration(what: &str, text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{what} {text:?} is not a duration such as 10s, 500ms or 5m"))?;
    Ok(match unit {
        "ms" => Duration::from_millis(n),
        "s" | "" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => {
            return Err(format!(
                "{what} {text:?} has unit {unit:?}; use ms, s, m or h"
            ));
        }
    })
}

/// A blocking read's wait, within [`MAX_WAIT`].
fn parse_wait(text: &str) -> Result<Duration, String> {
    let wait = parse_duration("wait", text)?;
    if wait > MAX_WAIT {
        return Err(format!("wait {text:?} is longer than the limit of 10m"));
    }
    Ok(wait)
}

/// The routes, on the registry's state.
pub fn router(store: KvStore) -> Router {
    Router::new()
        .route("/v1/kv/", get(read_prefix))
        .route(
            "/v1/kv/{*key}",
            get(read_key).put(write_key).delete(delete_key),
        )
        .with_state(store)
}

async fn read_prefix(
    State(store): State<KvStore>,
    query: Result<Query<ReadQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    read(store, String::new(), query).await
}

async fn read_key(
    State(store): State<KvStore>,
    UrlPath(key): UrlPath<String>,
    query: Result<Query<ReadQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    read(store, key, query).await
}

async fn read(
    store: KvStore,
    key: String,
    query: Result<Query<ReadQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query?;
    if let Some(index) = &q.index {
        let after: u64 = index.parse().map_err(|_| {
            ApiError::bad_request(format!(
                "index {index:?} is not a whole number: send back the X-Consul-Index of the last read"
            ))
        })?;
        let wait = q.wait.as_deref().map_or(Ok(DEFAULT_WAIT), parse_wait);
        // Woken or not, the read answers what is there now, as Consul's does.
        let _changed = store
            .changed_after(after, wait.map_err(ApiError::bad_request)?)
            .await;
    }
    let index = store.index();
    let entries = store.get(&key, q.recurse.is_some());
    let mut answer = match (entries.first(), q.raw.is_some()) {
        (None, _) => StatusCode::NOT_FOUND.into_response(),
        (Some(e), true) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(e.value.as_deref().unwrap_or_default())
                .unwrap_or_default();
            bytes.into_response()
        }
        (Some(_), false) => axum::Json(entries).into_response(),
    };
    if let Ok(v) = HeaderValue::from_str(&index.to_string()) {
        answer.headers_mut().insert(KV_INDEX_HEADER, v);
    }
    Ok(answer)
}

/// Keys under this prefix are free: what services coordinate through (a leader's lock at
/// `service/{name}/leader`, as Consul's leader-election guide puts it), not settings.
pub const COORDINATION_PREFIX: &str = "service/";

/// Whether `value` may be stored at `key`: anything under [`COORDINATION_PREFIX`]; else
/// the catalog's key and a value its reader takes.
fn check(key: &str, value: &[u8]) -> Result<(), String> {
    if key.starts_with(COORDINATION_PREFIX) {
        return Ok(());
    }
    let known = ConfigKey::parse(key)?;
    let text = std::str::from_utf8(value).map_err(|_| format!("the value of {key} is not text"))?;
    known.check(text)
}

/// The query of a write: take or give up the key's lock for a session (see
/// [`super::locks`]).
#[derive(Debug, Default, Deserialize)]
struct WriteQuery {
    acquire: Option<String>,
    release: Option<String>,
}

async fn write_key(
    State(store): State<KvStore>,
    UrlPath(key): UrlPath<String>,
    query: Result<Query<WriteQuery>, axum::extract::rejection::QueryRejection>,
    value: Bytes,
) -> Result<Response, ApiError> {
    let Query(q) = query?;
    if value.len() > MAX_VALUE {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a value may be {MAX_VALUE} bytes at most"),
        ));
    }
    check(&key, &value).map_err(ApiError::bad_request)?;
    match (q.acquire, q.release) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "acquire and release in one write: send one of them",
            ));
        }
        (Some(session), None) => {
            let taken = store.acquire(&key, value.to_vec(), &session).await?;
            return Ok(json_bool(taken));
        }
        (None, Some(session)) => {
            let given = store.release(&key, value.to_vec(), &session).await?;
            return Ok(json_bool(given));
        }
        (None, None) => {}
    }
    let index = store.put(&key, value.to_vec()).await?;
    tracing::info!(%key, index, "configuration set");
    Ok(json_true())
}

async fn delete_key(
    State(store): State<KvStore>,
    UrlPath(key): UrlPath<String>,
) -> Result<Response, ApiError> {
    if store.delete(&key).await? {
        tracing::info!(%key, "configuration unset");
    }
    Ok(json_true())
}

/// Consul's answer to a write: the JSON `true`.
fn json_true() -> Response {
    json_bool(true)
}

/// The JSON `true` or `false`, as Consul answers writes.
pub(super) fn json_bool(b: bool) -> Response {
    let body = if b { "true" } else { "false" };
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(store: &KvStore) -> BTreeMap<String, Vec<u8>> {
        crate::platform::lock(&store.entries)
            .iter()
            .map(|(k, s)| (k.clone(), s.value.clone()))
            .collect()
    }

    #[tokio::test]
    async fn changes_are_indexed_kept_on_disk_and_wake_readers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("registry.sqlite");
        let kv = KvStore::open(&path).expect("opens");
        assert_eq!(kv.index(), 0);
        let waiting = {
            let kv = kv.clone();
            tokio::spawn(async move { kv.changed_after(0, Duration::from_secs(30)).await })
        };
        let first = kv
            .put("orders/payments/timeout_ms", b"500".to_vec())
            .await
            .expect("put");
        assert!(
            waiting.await.expect("the waiting task"),
            "woken by the change, not the 30 s wait"
        );
        assert!(
            !kv.changed_after(1, Duration::from_millis(10)).await,
            "nothing changed after index 1"
        );
        let second = kv
            .put("orders/payments/timeout_ms", b"700".to_vec())
            .await
            .expect("put");
        assert_eq!((first, second), (1, 2));
        let e = &kv.get("orders/payments/timeout_ms", false)[0];
        assert_eq!((e.create_index, e.modify_index), (1, 2));
        assert_eq!(e.text().as_deref(), Some("700"));
        assert_eq!(kv.get("orders/", true).len(), 1);
        assert!(kv.get("orders/", false).is_empty(), "a prefix is no key");
        assert!(kv.get("web-bff/", true).is_empty());

        let again = KvStore::open(&path).expect("opens again");
        assert_eq!(again.index(), 2, "the index goes on after a restart");
        assert_eq!(values(&again), values(&kv));
        assert!(
            kv.delete("orders/payments/timeout_ms")
                .await
                .expect("delete")
        );
        assert!(
            !kv.delete("orders/payments/timeout_ms")
                .await
                .expect("delete")
        );
        assert!(
            KvStore::open(&path)
                .expect("opens")
                .get("", true)
                .is_empty()
        );
        assert_eq!(kv.index(), 3);
    }

    #[test]
    fn a_file_from_before_sessions_opens_with_its_keys_unlocked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("registry.sqlite");
        let old = rusqlite::Connection::open(&path).expect("old file");
        old.execute_batch(
            "CREATE TABLE kv (key TEXT PRIMARY KEY, value BLOB NOT NULL,
                 create_index INTEGER NOT NULL, modify_index INTEGER NOT NULL);
             CREATE TABLE kv_index (one INTEGER PRIMARY KEY CHECK (one = 1), value INTEGER NOT NULL);
             INSERT INTO kv_index VALUES (1, 4);
             INSERT INTO kv VALUES ('orders/payments/timeout_ms', CAST('900' AS BLOB), 3, 4);",
        )
        .expect("old layout");
        drop(old);
        let kv = KvStore::open(&path).expect("opens");
        let e = &kv.get("orders/payments/timeout_ms", false)[0];
        assert_eq!(
            (e.text().as_deref(), e.lock_index, &e.session),
            (Some("900"), 0, &None)
        );
        assert_eq!(kv.index(), 4);
    }

    #[test]
    fn waits_and_values_are_checked() {
        assert_eq!(parse_wait("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_wait("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_wait("5m"), Ok(Duration::from_secs(300)));
        assert!(parse_wait("11m").is_err());
        assert!(parse_wait("ten").is_err());
        assert!(parse_wait("10h").is_err());
        assert!(check("orders/payments/retry/max_attempts", b"1").is_ok());
        let bad = check("orders/payments/retry/max_attempts", b"0").expect_err("0 attempts");
        assert!(bad.contains("from 1 to 10"), "{bad}");
        assert!(check("orders/payment/retry/max_attempts", b"1").is_err());
        assert!(check("orders/payments/timeout_ms", &[0xff]).is_err());
    }
}
