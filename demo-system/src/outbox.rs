//! Event-driven messaging with a transactional outbox. A service writes its domain events
//! into an `outbox` table of its own database *in the same transaction* as the state change
//! they describe, so an event exists if and only if the change does. Consumers read the
//! publisher's feed (`GET /events?after=CURSOR&wait_ms=...`, long-poll) at least once and
//! apply each event idempotently ([`Consumer`]): their cursor and the IDs of the events
//! they processed live in their own database, committed with the effect of the event.

use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("database error: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("event payload is not JSON: {0}")]
    Payload(#[from] serde_json::Error),
    #[error("could not read the event feed at {url}: {reason}")]
    Feed { url: String, reason: String },
    #[error("the handler for event {event_id} failed: {reason}")]
    Handler { event_id: Uuid, reason: String },
}

/// A domain event as the feed serves it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    /// Position in the publisher's feed; strictly increasing.
    pub seq: i64,
    /// Unique across publishers: what consumers de-duplicate on.
    pub id: Uuid,
    #[serde(rename = "type")]
    pub kind: String,
    pub aggregate_id: String,
    pub payload: serde_json::Value,
    /// W3C trace context of the span that published it, so the consumer can link to it.
    pub traceparent: Option<String>,
    pub baggage: Option<String>,
    pub created_unix_ms: i64,
}

/// What a service publishes; [`Outbox::append`] gives it its ID and position.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub kind: String,
    pub aggregate_id: String,
    pub payload: serde_json::Value,
    pub traceparent: Option<String>,
    pub baggage: Option<String>,
}

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        type TEXT NOT NULL,
        aggregate_id TEXT NOT NULL,
        payload TEXT NOT NULL,
        traceparent TEXT,
        baggage TEXT,
        created_unix_ms INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS consumer_cursors (
        feed TEXT PRIMARY KEY,
        after INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS processed_events (
        id TEXT PRIMARY KEY,
        processed_unix_ms INTEGER NOT NULL
    ) WITHOUT ROWID;
";

/// Creates the outbox and consumer tables in a service's database (idempotent).
pub fn migrate(conn: &Connection) -> Result<(), OutboxError> {
    conn.execute_batch(SCHEMA)?;
    Ok(())
}

/// The publishing side: a service's database connection plus a wake-up for long-pollers.
#[derive(Clone)]
pub struct Outbox {
    conn: Arc<Mutex<Connection>>,
    appended: Arc<tokio::sync::Notify>,
    /// Set by [`Outbox::fire_and_forget`]: events then live only in this process's memory.
    memory: Arc<MemoryFeed>,
}

/// The fire-and-forget alternative to the outbox (`--disable outbox`): events are handed
/// over after the commit and kept only in memory, so a restart of the publisher loses the
/// ones not yet read, and its positions start again at 1 (consumers holding a later cursor
/// miss what follows). What the outbox prevents, on demand.
#[derive(Default)]
struct MemoryFeed {
    enabled: std::sync::atomic::AtomicBool,
    events: Mutex<Vec<Event>>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Outbox")
    }
}

impl Outbox {
    /// Opens (creating) the service database at `path` in WAL mode.
    pub fn open(path: &Path) -> Result<Self, OutboxError> {
        let conn = Connection::open(path)?;
        conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
        conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;")?;
        migrate(&conn)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            appended: Arc::new(tokio::sync::Notify::new()),
            memory: Arc::new(MemoryFeed::default()),
        })
    }

    /// Opens the service database and creates the service's own tables (`schema` is
    /// idempotent SQL: `CREATE TABLE IF NOT EXISTS ...`).
    pub fn open_with_schema(path: &Path, schema: &str) -> Result<Self, OutboxError> {
        let db = Self::open(path)?;
        db.transaction(|tx| {
            tx.execute_batch(schema)?;
            Ok(())
        })?;
        Ok(db)
    }

    /// Publishes fire-and-forget from now on instead of through the outbox.
    pub fn fire_and_forget(&self) {
        self.memory
            .enabled
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn in_memory(&self) -> bool {
        self.memory
            .enabled
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Runs `f` in one transaction on the service database; events appended inside it
    /// become visible to the feed exactly when the transaction commits.
    pub fn transaction<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, OutboxError>,
    ) -> Result<T, OutboxError> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        // IMMEDIATE: take the write lock up front, so a read-then-write cannot be overtaken
        // by another process sharing the file (two instances of one service do).
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        if self.in_memory() {
            // Hand the events over after the commit and forget them on disk.
            let published = rows_after(&conn, 0, usize::MAX)?;
            conn.execute("DELETE FROM outbox", [])?;
            let mut mem = self.memory.events.lock().unwrap_or_else(|p| p.into_inner());
            for mut e in published {
                e.seq = mem.len() as i64 + 1;
                mem.push(e);
            }
        }
        drop(conn);
        self.appended.notify_waiters();
        Ok(out)
    }

    /// Appends an event inside the caller's transaction; returns its ID.
    pub fn append(tx: &Transaction<'_>, event: &NewEvent) -> Result<Uuid, OutboxError> {
        let id = Uuid::now_v7();
        // Unless told otherwise, the event carries the publishing span's trace context.
        let trace = crate::telemetry::current_headers();
        let traceparent = event
            .traceparent
            .clone()
            .or_else(|| trace.get("traceparent").cloned());
        let baggage = event
            .baggage
            .clone()
            .or_else(|| trace.get("baggage").cloned());
        tx.execute(
            "INSERT INTO outbox (id, type, aggregate_id, payload, traceparent, baggage, created_unix_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                id.to_string(),
                event.kind,
                event.aggregate_id,
                serde_json::to_string(&event.payload)?,
                traceparent,
                baggage,
                crate::service::now_unix_ms()
            ],
        )?;
        Ok(id)
    }

    /// Events after `after`, at most `limit`; waits up to `wait` for one if there are none.
    pub async fn read_after(
        &self,
        after: i64,
        limit: usize,
        wait: Duration,
    ) -> Result<Vec<Event>, OutboxError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Register interest before reading, so an append in between is not missed.
            let appended = self.appended.notified();
            let events = self.read_now(after, limit)?;
            if !events.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(events);
            }
            if tokio::time::timeout_at(deadline, appended).await.is_err() {
                return self.read_now(after, limit);
            }
        }
    }

    fn read_now(&self, after: i64, limit: usize) -> Result<Vec<Event>, OutboxError> {
        if self.in_memory() {
            let mem = self.memory.events.lock().unwrap_or_else(|p| p.into_inner());
            return Ok(mem
                .iter()
                .filter(|e| e.seq > after)
                .take(limit)
                .cloned()
                .collect());
        }
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        rows_after(&conn, after, limit)
    }
}

/// Outbox rows after `after`, in order.
fn rows_after(conn: &Connection, after: i64, limit: usize) -> Result<Vec<Event>, OutboxError> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, id, type, aggregate_id, payload, traceparent, baggage, created_unix_ms
         FROM outbox WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    )?;
    let rows = stmt.query_map(
        params![after, i64::try_from(limit).unwrap_or(i64::MAX)],
        |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, Option<String>>(6)?,
                r.get::<_, i64>(7)?,
            ))
        },
    )?;
    let mut events = Vec::new();
    for row in rows {
        let (seq, id, kind, aggregate_id, payload, traceparent, baggage, created) = row?;
        events.push(Event {
            seq,
            id: Uuid::parse_str(&id).unwrap_or_default(),
            kind,
            aggregate_id,
            payload: serde_json::from_str(&payload)?,
            traceparent,
            baggage,
            created_unix_ms: created,
        });
    }
    Ok(events)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedParams {
    #[serde(default)]
    after: i64,
    limit: Option<usize>,
    wait_ms: Option<u64>,
}

/// Longest a feed request may wait for an event.
const MAX_WAIT: Duration = Duration::from_secs(30);

/// `GET /events?after=CURSOR&limit=N&wait_ms=MS`: `{"events": [...], "next": CURSOR}`.
pub fn feed_router(outbox: Outbox) -> Router {
    Router::new().route("/events", get(feed)).with_state(outbox)
}

async fn feed(
    State(outbox): State<Outbox>,
    params: Result<Query<FeedParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(p) = match params {
        Ok(p) => p,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(serde_json::json!({"error": e.body_text()})),
            )
                .into_response();
        }
    };
    let limit = p.limit.unwrap_or(100).clamp(1, 1000);
    let wait = Duration::from_millis(p.wait_ms.unwrap_or(0)).min(MAX_WAIT);
    match outbox.read_after(p.after, limit, wait).await {
        Ok(events) => {
            let next = events.last().map_or(p.after, |e| e.seq);
            Json(serde_json::json!({"events": events, "next": next})).into_response()
        }
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"error": e.to_string()})),
        )
            .into_response(),
    }
}

/// An at-least-once, idempotent reader of one publisher's feed.
pub struct Consumer {
    /// Name of the feed in this consumer's cursor table, e.g. `orders`.
    pub feed: String,
    pub url: String,
    pub db: Outbox,
    pub http: reqwest::Client,
    /// How long one poll waits for new events.
    pub wait: Duration,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("feed", &self.feed)
            .field("url", &self.url)
            .finish()
    }
}

#[derive(Deserialize)]
struct FeedPage {
    events: Vec<Event>,
}

impl Consumer {
    /// A consumer of the feed `feed` served at `url` (its base URL), keeping its place in
    /// `db`; each poll waits up to 10 s for new events.
    pub fn new(feed: &str, url: &str, db: Outbox) -> Self {
        Self {
            feed: feed.to_string(),
            url: url.trim_end_matches('/').to_string(),
            db,
            http: reqwest::Client::new(),
            wait: Duration::from_secs(10),
        }
    }

    /// The cursor this consumer has committed for its feed.
    pub fn cursor(&self) -> Result<i64, OutboxError> {
        self.db.transaction(|tx| {
            Ok(tx
                .query_row(
                    "SELECT after FROM consumer_cursors WHERE feed = ?1",
                    [&self.feed],
                    |r| r.get(0),
                )
                .optional()?
                .unwrap_or(0))
        })
    }

    /// Fetches one page and applies it; returns how many events were new to this consumer.
    /// `apply` runs inside the transaction that records the event as processed, so its
    /// effect and the bookkeeping commit together: a crash repeats the event, never half of it.
    pub async fn poll_once(
        &self,
        apply: &impl Fn(&Transaction<'_>, &Event) -> Result<(), String>,
    ) -> Result<usize, OutboxError> {
        let after = self.cursor()?;
        let url = format!(
            "{}/events?after={after}&wait_ms={}",
            self.url,
            self.wait.as_millis()
        );
        let feed_err = |reason: String| OutboxError::Feed {
            url: url.clone(),
            reason,
        };
        let resp = self
            .http
            .get(&url)
            .timeout(self.wait + Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| feed_err(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(feed_err(format!("status {}", resp.status())));
        }
        let page: FeedPage = resp.json().await.map_err(|e| feed_err(e.to_string()))?;
        let mut applied = 0;
        for event in &page.events {
            let span = crate::telemetry::consumer_span(
                &event.kind,
                event.traceparent.as_deref(),
                event.baggage.as_deref(),
            );
            let _entered = span.enter();
            let fresh = self.db.transaction(|tx| {
                let seen = tx.execute(
                    "INSERT OR IGNORE INTO processed_events (id, processed_unix_ms) VALUES (?1, ?2)",
                    params![event.id.to_string(), crate::service::now_unix_ms()],
                )? == 0;
                if !seen {
                    apply(tx, event).map_err(|reason| OutboxError::Handler {
                        event_id: event.id,
                        reason,
                    })?;
                }
                tx.execute(
                    "INSERT INTO consumer_cursors (feed, after) VALUES (?1, ?2)
                     ON CONFLICT (feed) DO UPDATE SET after = excluded.after",
                    params![self.feed, event.seq],
                )?;
                Ok(!seen)
            })?;
            applied += usize::from(fresh);
        }
        Ok(applied)
    }

    /// Polls until `shutdown` resolves, backing off while the feed is unreachable.
    pub async fn run(
        self,
        apply: impl Fn(&Transaction<'_>, &Event) -> Result<(), String>,
        shutdown: impl Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        let mut backoff = Duration::from_millis(100);
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                result = self.poll_once(&apply) => match result {
                    Ok(_) => backoff = Duration::from_millis(100),
                    Err(e) => {
                        tracing::warn!(feed = %self.feed, error = %e, "event feed unavailable; retrying");
                        tokio::select! {
                            _ = &mut shutdown => return,
                            _ = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                },
            }
        }
    }
}
