//! Event-driven messaging with a transactional outbox. A service writes its domain events
//! into an `outbox` table of its own database *in the same transaction* as the state change
//! they describe, so an event exists if and only if the change does. Consumers read the
//! publisher's feed (`GET /events?after=CURSOR&wait_ms=...`, long-poll) at least once and
//! apply each event idempotently ([`Consumer`]): their cursor and the IDs of the events
//! they processed live in their own database, committed with the effect of the event.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tracing::Instrument;
use uuid::Uuid;

use super::client::{ClientError, HttpClient};
use super::db::{Db, DbError, json_column, text_column};
use super::discovery::Endpoint;
use super::http::ApiError;
use super::resilience::{Call, ConfigError, ResilienceConfig, Upstream};

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("could not read the event feed {feed}: {reason}")]
    Feed { feed: String, reason: ClientError },
    #[error("the handler for event {event_id} failed: {reason}")]
    Handler { event_id: Uuid, reason: String },
}

impl From<rusqlite::Error> for OutboxError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Db(e.into())
    }
}

/// A domain event as the feed serves it. `payload` is the publisher's own type (an order
/// event carries an `Order`); [`Event::payload_as`] reads it back as that type.
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

impl Event {
    /// The payload as the publisher's type.
    pub fn payload_as<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(&self.payload)
    }
}

/// What `GET /events` answers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FeedPage {
    pub events: Vec<Event>,
    /// The cursor to ask from next: the last event's `seq`, or `after` when there was none.
    pub next: i64,
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

impl NewEvent {
    /// An event of `kind` about `aggregate_id` carrying `payload`, with the current trace
    /// context (taken when it is appended).
    pub fn new(
        kind: impl Into<String>,
        aggregate_id: impl Into<String>,
        payload: &impl Serialize,
    ) -> Result<Self, serde_json::Error> {
        Ok(Self {
            kind: kind.into(),
            aggregate_id: aggregate_id.into(),
            payload: serde_json::to_value(payload)?,
            traceparent: None,
            baggage: None,
        })
    }
}

/// A table of events as the feed serves them: the outbox, and the volatile feed of
/// `--disable outbox` (see [`Outbox::fire_and_forget`]).
macro_rules! event_table {
    ($name:literal) => {
        concat!(
            "CREATE TABLE IF NOT EXISTS ",
            $name,
            " (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        type TEXT NOT NULL,
        aggregate_id TEXT NOT NULL,
        payload TEXT NOT NULL,
        traceparent TEXT,
        baggage TEXT,
        created_unix_ms INTEGER NOT NULL
    );"
        )
    };
}

/// The outbox and consumer tables, created in every service database that uses them.
pub const SCHEMA: &str = concat!(
    event_table!("outbox"),
    event_table!("volatile_feed"),
    "
    CREATE TABLE IF NOT EXISTS consumer_cursors (
        feed TEXT PRIMARY KEY,
        after INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS relay_positions (
        feed TEXT PRIMARY KEY,
        after INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS relay_leases (
        feed TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        until_ms INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS processed_events (
        id TEXT PRIMARY KEY,
        processed_unix_ms INTEGER NOT NULL
    ) WITHOUT ROWID;
",
);

/// Opens a service database with the outbox and dead-letter tables and the service's own
/// `schema`.
pub fn open_db(path: &std::path::Path, schema: &str) -> Result<Db, DbError> {
    Db::open(
        path,
        &format!("{SCHEMA}\n{}\n{schema}", super::dead_letters::SCHEMA),
    )
}

/// How often a parked long poll reads the database again when other processes append to
/// it too (see [`Outbox::shared`]).
const RECHECK: Duration = Duration::from_millis(250);

/// Where a feed's events are read from: the `outbox` table, a publication log, by default;
/// orders serves its feed from its event store instead ([`Outbox::from_source`]).
#[derive(Clone, Copy)]
pub struct FeedSource {
    /// Events after a position, in order, at most `limit`.
    pub after: fn(&Connection, i64, usize) -> Result<Vec<Event>, DbError>,
    /// The newest event of a type about an aggregate (`aggregate_id`, `kind`).
    pub latest: fn(&Connection, &str, &str) -> Result<Option<Event>, DbError>,
    /// The position of the newest event (0 when there is none).
    pub end: fn(&Connection) -> Result<i64, DbError>,
    /// What fire-and-forget does with events once handed over: an outbox deletes them
    /// (they were only there to be published); an event store keeps them (they are the
    /// state) and only its feed forgets them.
    pub clear: Option<Clear>,
}

/// Deletes what a fire-and-forget transaction handed over (see [`FeedSource::clear`]).
pub type Clear = fn(&Connection) -> Result<(), DbError>;

impl FeedSource {
    /// The `outbox` table.
    pub const OUTBOX: Self = Self {
        after: |conn, after, limit| rows_in(conn, "outbox", after, limit),
        latest: |conn, aggregate, kind| latest_in(conn, "outbox", aggregate, kind),
        end: |conn| {
            Ok(conn.query_row("SELECT coalesce(max(seq), 0) FROM outbox", [], |r| r.get(0))?)
        },
        clear: Some(|conn| {
            conn.execute("DELETE FROM outbox", [])?;
            Ok(())
        }),
    };
}

/// The publishing side: a service's database plus a wake-up for long-pollers.
#[derive(Clone)]
pub struct Outbox {
    db: Db,
    appended: Arc<tokio::sync::Notify>,
    /// Long polls waiting for an event: what a test waits on to know a poll reached the
    /// publisher and is parked, instead of guessing with a sleep.
    waiting: Arc<std::sync::atomic::AtomicUsize>,
    /// Set by [`Outbox::fire_and_forget`]: events then go to the volatile feed.
    volatile: Arc<std::sync::atomic::AtomicBool>,
    /// Other processes append to the same database (see [`Outbox::shared`]).
    shared: bool,
    source: FeedSource,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Outbox")
    }
}

impl Outbox {
    /// The outbox of `db` (opened with [`open_db`]).
    pub fn new(db: Db) -> Self {
        Self::from_source(db, FeedSource::OUTBOX)
    }

    /// The feed of `db` read from `source` instead of the `outbox` table; events appended
    /// to it inside [`Outbox::transaction`] wake long polls as outbox rows do.
    pub fn from_source(db: Db, source: FeedSource) -> Self {
        Self {
            db,
            appended: Arc::new(tokio::sync::Notify::new()),
            waiting: Arc::default(),
            volatile: Arc::default(),
            shared: false,
            source,
        }
    }

    /// The outbox of a database other instances of the service also append to (inventory's
    /// share one file): their appends wake nobody here, so a parked long poll reads again
    /// every 250 ms instead of waiting for this process's own appends only.
    pub fn shared(mut self) -> Self {
        self.shared = true;
        self
    }

    /// Long polls parked in [`Outbox::read_after`], waiting for an event.
    pub fn long_polls_waiting(&self) -> usize {
        self.waiting.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The service database behind the outbox.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Publishes fire-and-forget from now on instead of through the outbox (`--disable
    /// outbox`): the feed serves the `volatile_feed` table, which every publisher's start
    /// empties and numbers from 1 again, as if its events had lived only in the memory of
    /// the processes that published them: a restart loses the ones not yet read, and
    /// consumers holding a later position miss what follows. (A table rather than each
    /// process's memory, so the instances sharing a database serve one feed, as one broker
    /// would; in memory, a consumer alternating between them would mix two numberings and
    /// lose events with no fault at all.) What the outbox prevents, on demand.
    /// Blocking: call it before serving, as opening the database is.
    pub fn fire_and_forget(&self) -> Result<(), DbError> {
        self.db
            .blocking(rusqlite::TransactionBehavior::Immediate, |tx| {
                // A relay's position counts the old numbering: it starts over too.
                tx.execute_batch(
                    "DELETE FROM volatile_feed;
                     DELETE FROM sqlite_sequence WHERE name = 'volatile_feed';
                     DELETE FROM relay_positions;",
                )?;
                Ok(())
            })?;
        self.volatile
            .store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    fn is_volatile(&self) -> bool {
        self.volatile.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Runs `f` in one write transaction (on a blocking thread); events appended inside it
    /// become visible to the feed exactly when the transaction commits.
    pub async fn transaction<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, DbError> + Send + 'static,
    {
        let volatile = self.is_volatile();
        let source = self.source;
        let out = self
            .db
            .write(move |tx| {
                if !volatile {
                    return f(tx);
                }
                // Take the events this transaction appends (off the disk, for an outbox)
                // to the volatile feed, where they show when it commits.
                let end = (source.end)(tx)?;
                let out = f(tx)?;
                let handed_over = (source.after)(tx, end, usize::MAX)?;
                if let Some(clear) = source.clear {
                    clear(tx)?;
                }
                for e in &handed_over {
                    insert_row(tx, "volatile_feed", e)?;
                }
                Ok(out)
            })
            .await?;
        self.appended.notify_waiters();
        Ok(out)
    }

    /// Appends an event inside the caller's transaction; returns its ID.
    pub fn append(tx: &Transaction<'_>, event: &NewEvent) -> Result<Uuid, DbError> {
        let id = Uuid::now_v7();
        // Unless told otherwise, the event carries the publishing span's trace context.
        let trace = super::telemetry::current_headers();
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
                super::http::now_unix_ms()
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
    ) -> Result<Vec<Event>, DbError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Register interest before reading, so an append in between is not missed.
            let appended = self.appended.notified();
            let events = self.read_now(after, limit).await?;
            let now = tokio::time::Instant::now();
            if !events.is_empty() || now >= deadline {
                return Ok(events);
            }
            self.waiting
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            // Woken by this process's appends; another process sharing the database wakes
            // nobody here, so a shared outbox looks again every RECHECK.
            let until = if self.shared {
                deadline.min(now + RECHECK)
            } else {
                deadline
            };
            let _ = tokio::time::timeout_at(until, appended).await;
            self.waiting
                .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    async fn read_now(&self, after: i64, limit: usize) -> Result<Vec<Event>, DbError> {
        if self.is_volatile() {
            return self
                .db
                .read(move |tx| rows_in(tx, "volatile_feed", after, limit))
                .await;
        }
        let read = self.source.after;
        self.db.read(move |tx| read(tx, after, limit)).await
    }

    /// The newest event of type `kind` about `aggregate_id`, exactly as the feed serves it.
    pub async fn latest(&self, aggregate_id: &str, kind: &str) -> Result<Option<Event>, DbError> {
        let (aggregate_id, kind) = (aggregate_id.to_string(), kind.to_string());
        let latest = if self.is_volatile() {
            |c: &Connection, a: &str, k: &str| latest_in(c, "volatile_feed", a, k)
        } else {
            self.source.latest
        };
        self.db
            .read(move |tx| latest(tx, &aggregate_id, &kind))
            .await
    }
}

/// The newest row of `table` (the outbox or the volatile feed) of type `kind` about
/// `aggregate_id`.
fn latest_in(
    conn: &Connection,
    table: &str,
    aggregate_id: &str,
    kind: &str,
) -> Result<Option<Event>, DbError> {
    Ok(conn
        .query_row(
            &format!(
                "SELECT {EVENT_COLUMNS} FROM {table} WHERE aggregate_id = ?1 AND type = ?2
                 ORDER BY seq DESC LIMIT 1"
            ),
            params![aggregate_id, kind],
            event_row,
        )
        .optional()?)
}

/// Adds `e` to `table` (the volatile feed) at the next position.
fn insert_row(conn: &Connection, table: &str, e: &Event) -> Result<(), DbError> {
    conn.execute(
        &format!(
            "INSERT INTO {table} (id, type, aggregate_id, payload, traceparent, baggage, created_unix_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
        ),
        params![
            e.id.to_string(),
            e.kind,
            e.aggregate_id,
            serde_json::to_string(&e.payload)?,
            e.traceparent,
            e.baggage,
            e.created_unix_ms
        ],
    )?;
    Ok(())
}

/// Rows of `table` (the outbox or the volatile feed) after `after`, in order.
fn rows_in(
    conn: &Connection,
    table: &str,
    after: i64,
    limit: usize,
) -> Result<Vec<Event>, DbError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {EVENT_COLUMNS} FROM {table} WHERE seq > ?1 ORDER BY seq LIMIT ?2"
    ))?;
    let events = stmt
        .query_map(
            params![after, i64::try_from(limit).unwrap_or(i64::MAX)],
            event_row,
        )?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(events)
}

/// Outbox rows whose type starts with `prefix`, in order.
pub fn rows_of_kinds(conn: &Connection, prefix: &str) -> Result<Vec<Event>, DbError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {EVENT_COLUMNS} FROM outbox WHERE substr(type, 1, length(?1)) = ?1 ORDER BY seq"
    ))?;
    let events = stmt
        .query_map([prefix], event_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(events)
}

const EVENT_COLUMNS: &str =
    "seq, id, type, aggregate_id, payload, traceparent, baggage, created_unix_ms";

fn event_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Event> {
    Ok(Event {
        seq: r.get(0)?,
        id: text_column(r, 1, |s| Uuid::parse_str(s).ok())?,
        kind: r.get(2)?,
        aggregate_id: r.get(3)?,
        payload: json_column(r, 4)?,
        traceparent: r.get(5)?,
        baggage: r.get(6)?,
        created_unix_ms: r.get(7)?,
    })
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

/// `GET /events?after=CURSOR&limit=N&wait_ms=MS`: a [`FeedPage`].
pub fn feed_router(outbox: Outbox) -> Router {
    Router::new().route("/events", get(feed)).with_state(outbox)
}

async fn feed(
    State(outbox): State<Outbox>,
    params: Result<Query<FeedParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<FeedPage>, ApiError> {
    let Query(p) = params?;
    let limit = p.limit.unwrap_or(100).clamp(1, 1000);
    let wait = Duration::from_millis(p.wait_ms.unwrap_or(0)).min(MAX_WAIT);
    let events = outbox.read_after(p.after, limit, wait).await?;
    let next = events.last().map_or(p.after, |e| e.seq);
    Ok(Json(FeedPage { events, next }))
}

/// How a consumer reads a feed: no breaker and no retries (the consumer's loop backs off
/// on its own, and a long poll is slow by design), a timeout longer than the longest poll.
pub fn feed_client(feed: &str, endpoint: Endpoint) -> Result<HttpClient, ConfigError> {
    let mut config = ResilienceConfig::default();
    config.circuit_breaker.enabled = false;
    config.retry.enabled = false;
    config.timeout_ms = (MAX_WAIT + Duration::from_secs(5)).as_millis() as u64;
    Ok(HttpClient::new(Upstream::new(
        feed,
        endpoint,
        reqwest::Client::new(),
        &config,
    )?))
}

/// Applies one event inside the consumer's transaction.
pub trait Apply:
    Fn(&Transaction<'_>, &Event) -> Result<(), String> + Clone + Send + Sync + 'static
{
}
impl<F> Apply for F where
    F: Fn(&Transaction<'_>, &Event) -> Result<(), String> + Clone + Send + Sync + 'static
{
}

/// Makes durable what a handler wrote outside the consumer's SQLite transaction (a store of
/// its own that commits without syncing: order-history's documents), run inside that
/// transaction before it commits, once per page. None for a handler that writes only
/// through the transaction. Its failure is the store's, not the event's: the delivery is
/// retried like any database failure, never counted toward parking the event.
#[derive(Clone, Default)]
pub struct Flush(Option<Arc<dyn Fn() -> Result<(), String> + Send + Sync>>);

impl Flush {
    pub fn new(f: impl Fn() -> Result<(), String> + Send + Sync + 'static) -> Self {
        Self(Some(Arc::new(f)))
    }

    fn run(&self) -> Result<(), String> {
        self.0.as_ref().map_or(Ok(()), |f| f())
    }
}

impl std::fmt::Debug for Flush {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Flush(..)"
        } else {
            "Flush(none)"
        })
    }
}

/// A service that keeps state of its own from another service's feed (notifications and
/// order-history read the orders feed).
pub trait FeedConsumer: 'static {
    /// The feed's name in the consumer's cursor table, e.g. `orders`.
    const FEED: &'static str;

    /// The consumer's own database.
    fn db(&self) -> &Db;

    /// What applies one event, inside the transaction that records it as processed (and
    /// what the dead-letter replay applies a parked one with).
    fn handler(&self) -> impl Apply + use<Self>;

    /// What makes the handler's writes outside the transaction durable (see [`Flush`]).
    fn flush(&self) -> Flush {
        Flush::default()
    }

    /// A reader of the feed through `client` (see [`feed_client`]) that remembers its
    /// place in this service's database.
    fn consumer(&self, client: HttpClient) -> Consumer {
        let mut consumer = Consumer::new(Self::FEED, client, self.db().clone());
        consumer.flush = self.flush();
        consumer
    }

    /// Reads the feed until `shutdown` resolves, as `options` say.
    fn consume<S: Future<Output = ()>>(
        &self,
        client: HttpClient,
        options: ConsumeOptions,
        shutdown: S,
    ) -> impl Future<Output = ()> + use<Self, S> {
        self.consume_from(Self::FEED, client, options, shutdown)
    }

    /// As [`FeedConsumer::consume`], for another feed `feed` this service also reads with
    /// the same handler (its cursor kept under that name).
    fn consume_from<S: Future<Output = ()>>(
        &self,
        feed: &str,
        client: HttpClient,
        options: ConsumeOptions,
        shutdown: S,
    ) -> impl Future<Output = ()> + use<Self, S> {
        self.reader(feed, client, options)
            .run(self.handler(), shutdown)
    }

    /// The consumer of `feed` this service reads with, as `options` say: its database, its
    /// flush, its catch-up and dead-letter settings (whatever carries the events).
    fn reader(&self, feed: &str, client: HttpClient, options: ConsumeOptions) -> Consumer {
        let mut consumer = Consumer::new(feed, client, self.db().clone());
        consumer.flush = self.flush();
        consumer.catch_up = options.catch_up;
        consumer.dead_letter_after = options.dead_letter_after;
        consumer
    }
}

/// A feed consumer reading its events from a broker's queue instead of the feed: the same
/// consumer (its database, handler, flush and dead-letter count), another way in.
pub trait QueueConsumer: FeedConsumer {
    /// Reads `feed`'s events from `queue` on `broker` until `shutdown` resolves. `client`
    /// is the feed's (the consumer keeps it; the broker brings the events).
    fn consume_queue<S: Future<Output = ()>>(
        &self,
        feed: &str,
        client: HttpClient,
        queue: String,
        broker: super::broker::Broker,
        options: ConsumeOptions,
        shutdown: S,
    ) -> impl Future<Output = ()> + use<Self, S> {
        let consumer = self.reader(feed, client, options);
        let subscription = super::broker::Subscription {
            queue,
            feed: feed.to_string(),
        };
        super::broker::consume(consumer, self.handler(), subscription, broker, shutdown)
    }
}
impl<T: FeedConsumer> QueueConsumer for T {}

/// How a consumer reads its feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumeOptions {
    /// From the stored cursor (`true`), or from the newest event.
    pub catch_up: bool,
    /// Park an event the handler failed on this many times in a row (`None`: retry it
    /// for ever, and every event after it waits).
    pub dead_letter_after: Option<u32>,
}

impl Default for ConsumeOptions {
    fn default() -> Self {
        Self {
            catch_up: true,
            dead_letter_after: Some(3),
        }
    }
}

/// An at-least-once, idempotent reader of one publisher's feed.
#[derive(Debug, Clone)]
pub struct Consumer {
    /// Name of the feed in this consumer's cursor table, e.g. `orders`.
    pub feed: String,
    /// Reaches the publisher (see [`feed_client`]).
    pub client: HttpClient,
    /// The consumer's own database: its cursor, the events it processed, their effects.
    pub db: Db,
    /// How long one poll waits for new events.
    pub wait: Duration,
    /// Resume from the stored cursor (catch up on what was missed); `false` (`--disable
    /// read-model-catch-up`): start from the newest event, skipping what came meanwhile.
    pub catch_up: bool,
    /// Park an event after this many failed deliveries in a row (see
    /// [`super::dead_letters`]); `None` (`--disable dead-letters`): retry it for ever.
    pub dead_letter_after: Option<u32>,
    /// Failed deliveries so far, per event not yet handled or parked.
    pub failures: FailureCounts,
    /// Run before each delivery's transaction commits (see [`Flush`]).
    pub flush: Flush,
    /// The broker the events came through, for the consumer spans' `messaging.system` and
    /// `messaging.destination.name` (`None`: the publisher's own feed).
    pub messaging: Option<Messaging>,
}

/// Where a consumer's events come from when a broker carries them.
#[derive(Debug, Clone)]
pub struct Messaging {
    /// `messaging.system`, e.g. `rabbitmq`.
    pub system: &'static str,
    /// The queue read.
    pub destination: String,
}

/// Failed deliveries per event, shared by a consumer's clones.
#[derive(Debug, Clone, Default)]
pub struct FailureCounts(Arc<Mutex<HashMap<Uuid, u32>>>);

impl FailureCounts {
    /// One more failure of `event`; how many in a row now.
    fn count(&self, event: Uuid) -> u32 {
        let mut all = super::lock(&self.0);
        let n = all.entry(event).or_insert(0);
        *n += 1;
        *n
    }

    pub(crate) fn forget(&self, event: Uuid) {
        super::lock(&self.0).remove(&event);
    }
}

impl Consumer {
    /// A consumer of the feed `feed` reached through `client`, keeping its place in `db`;
    /// each poll waits up to 10 s for new events.
    pub fn new(feed: &str, client: HttpClient, db: Db) -> Self {
        Self {
            feed: feed.to_string(),
            client,
            db,
            wait: Duration::from_secs(10),
            catch_up: true,
            dead_letter_after: ConsumeOptions::default().dead_letter_after,
            failures: FailureCounts::default(),
            flush: Flush::default(),
            messaging: None,
        }
    }

    /// The CONSUMER span processing `event` runs under.
    fn span(&self, event: &Event) -> tracing::Span {
        let span = super::telemetry::consumer_span(
            &event.kind,
            event.traceparent.as_deref(),
            event.baggage.as_deref(),
        );
        if let Some(m) = &self.messaging {
            span.record("messaging.system", m.system);
            span.record("messaging.destination.name", m.destination.as_str());
        }
        span
    }

    /// Moves the cursor past every event the feed holds now, applying none of them: what
    /// a consumer that starts "from the newest" does.
    pub async fn skip_to_newest(&self) -> Result<usize, OutboxError> {
        let mut skipped = 0;
        loop {
            let after = self.cursor().await?;
            let page = self
                .page(Call::get(format!("/events?after={after}&limit=1000")))
                .await?;
            if page.events.is_empty() {
                return Ok(skipped);
            }
            skipped += page.events.len();
            let (feed, next) = (self.feed.clone(), page.next);
            self.db
                .write(move |tx| {
                    tx.execute(
                        "INSERT INTO consumer_cursors (feed, after) VALUES (?1, ?2)
                         ON CONFLICT (feed) DO UPDATE SET after = excluded.after",
                        params![feed, next],
                    )?;
                    Ok(())
                })
                .await?;
        }
    }

    /// The cursor this consumer has committed for its feed.
    pub async fn cursor(&self) -> Result<i64, DbError> {
        let feed = self.feed.clone();
        self.db
            .read(move |tx| {
                Ok(tx
                    .query_row(
                        "SELECT after FROM consumer_cursors WHERE feed = ?1",
                        [&feed],
                        |r| r.get(0),
                    )
                    .optional()?
                    .unwrap_or(0))
            })
            .await
    }

    /// One page of the feed.
    async fn page(&self, call: Call) -> Result<FeedPage, OutboxError> {
        Ok(self
            .client
            .send(call)
            .await
            .map_err(|reason| OutboxError::Feed {
                feed: self.feed.clone(),
                reason,
            })?
            .body)
    }

    /// Fetches one page and applies it; returns how many events were new to this consumer.
    /// `apply` runs inside the transaction that records the event as processed, so its
    /// effect and the bookkeeping commit together: a crash repeats the event, never half of it.
    pub async fn poll_once(&self, apply: &impl Apply) -> Result<usize, OutboxError> {
        let after = self.cursor().await?;
        let call = Call::get(format!(
            "/events?after={after}&wait_ms={}",
            self.wait.as_millis()
        ))
        .timeout(self.wait + Duration::from_secs(5));
        let page = self.page(call).await?;
        if page.events.len() > 1 {
            match self.deliver_page(apply, &page.events).await {
                Ok(fresh) => {
                    for e in &page.events {
                        self.failures.forget(e.id);
                    }
                    return Ok(fresh);
                }
                // One of them failed: deliver them one by one, so the failure is counted
                // against that event alone (the page's transaction changed nothing).
                Err(OutboxError::Handler { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let mut applied = 0;
        for event in page.events {
            match self.deliver(apply, event.clone()).await {
                Ok(fresh) => {
                    applied += usize::from(fresh);
                    self.failures.forget(event.id);
                }
                Err(OutboxError::Handler { event_id, reason }) => {
                    if !self.failed(&event, &reason).await? {
                        return Err(OutboxError::Handler { event_id, reason });
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(applied)
    }

    /// Counts a failed delivery of `event`; parks it once it has failed `dead_letter_after`
    /// times in a row (`true`: parked, go on with the next).
    pub(crate) async fn failed(&self, event: &Event, reason: &str) -> Result<bool, OutboxError> {
        let attempts = self.failures.count(event.id);
        if self.dead_letter_after.is_none_or(|max| attempts < max) {
            return Ok(false);
        }
        let span = self.span(event);
        let (feed, parked, error) = (self.feed.clone(), event.clone(), reason.to_string());
        self.db
            .write(move |tx| {
                super::dead_letters::park(tx, &feed, &parked, &error, attempts)?;
                tx.execute(
                    "INSERT INTO consumer_cursors (feed, after) VALUES (?1, ?2)
                     ON CONFLICT (feed) DO UPDATE SET after = excluded.after",
                    params![feed, parked.seq],
                )?;
                tracing::warn!(
                    event_id = %parked.id,
                    event_kind = %parked.kind,
                    attempts,
                    error = %error,
                    "dead_letter.parked: the handler keeps failing on this event; parked, going on with the next"
                );
                Ok(())
            })
            .instrument(span)
            .await?;
        self.failures.forget(event.id);
        Ok(true)
    }

    /// Applies one event as [`Consumer::poll_once`] does: `apply` runs in the transaction
    /// that records the event as processed and moves the cursor to it; `false` if this
    /// consumer had processed it before (nothing is applied twice).
    pub async fn deliver(&self, apply: &impl Apply, event: Event) -> Result<bool, OutboxError> {
        let span = self.span(&event);
        let (apply, feed, event_id) = (apply.clone(), self.feed.clone(), event.id);
        let flush = self.flush.clone();
        let created = event.created_unix_ms;
        let fresh = self
            .db
            .write(move |tx| {
                let seen = tx.execute(
                    "INSERT OR IGNORE INTO processed_events (id, processed_unix_ms) VALUES (?1, ?2)",
                    params![event.id.to_string(), super::http::now_unix_ms()],
                )? == 0;
                if !seen {
                    apply(tx, &event).map_err(DbError::Aborted)?;
                    flush.run().map_err(DbError::Sync)?;
                }
                tx.execute(
                    "INSERT INTO consumer_cursors (feed, after) VALUES (?1, ?2)
                     ON CONFLICT (feed) DO UPDATE SET after = excluded.after",
                    params![feed, event.seq],
                )?;
                Ok(!seen)
            })
            .instrument(span)
            .await
            .map_err(|e| match e {
                DbError::Aborted(reason) => OutboxError::Handler { event_id, reason },
                other => OutboxError::Db(other),
            })?;
        if fresh {
            super::meters::consumed(&self.feed, &[created]);
        }
        Ok(fresh)
    }

    /// Applies a page of events in one transaction, each as [`Consumer::deliver`] would
    /// (under its own consumer span, recorded as processed, skipped if it was before), with
    /// one flush and one commit for all: what replaying a long feed costs. How many were new.
    async fn deliver_page(
        &self,
        apply: &impl Apply,
        events: &[Event],
    ) -> Result<usize, OutboxError> {
        let spans: Vec<tracing::Span> = events.iter().map(|e| self.span(e)).collect();
        let (apply, feed, flush) = (apply.clone(), self.feed.clone(), self.flush.clone());
        let events = events.to_vec();
        let last = events.last().map_or(0, |e| e.seq);
        let fresh = self
            .db
            .write(move |tx| {
                let mut fresh = Vec::new();
                for (event, span) in events.iter().zip(&spans) {
                    let _entered = span.enter();
                    let seen = tx.execute(
                        "INSERT OR IGNORE INTO processed_events (id, processed_unix_ms) VALUES (?1, ?2)",
                        params![event.id.to_string(), super::http::now_unix_ms()],
                    )? == 0;
                    if !seen {
                        apply(tx, event).map_err(DbError::Aborted)?;
                        fresh.push(event.created_unix_ms);
                    }
                }
                flush.run().map_err(DbError::Sync)?;
                tx.execute(
                    "INSERT INTO consumer_cursors (feed, after) VALUES (?1, ?2)
                     ON CONFLICT (feed) DO UPDATE SET after = excluded.after",
                    params![feed, last],
                )?;
                Ok(fresh)
            })
            .await
            .map_err(|e| match e {
                // Which event failed is found again by delivering them one by one.
                DbError::Aborted(reason) => OutboxError::Handler {
                    event_id: Uuid::nil(),
                    reason,
                },
                other => OutboxError::Db(other),
            })?;
        super::meters::consumed(&self.feed, &fresh);
        Ok(fresh.len())
    }

    /// [`Consumer::skip_to_newest`], retrying while the feed is unreachable.
    async fn start_from_newest(&self) {
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.skip_to_newest().await {
                Ok(n) => {
                    tracing::warn!(feed = %self.feed, skipped = n, "catch-up disabled: started from the newest event");
                    return;
                }
                Err(e) => {
                    tracing::warn!(feed = %self.feed, error = %e, "event feed unavailable; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Polls until `shutdown` resolves, backing off while the feed is unreachable.
    pub async fn run(self, apply: impl Apply, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut backoff = Duration::from_millis(100);
        if !self.catch_up {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = self.start_from_newest() => {}
            }
        }
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                result = self.poll_once(&apply) => match result {
                    Ok(_) => backoff = Duration::from_millis(100),
                    Err(e) => {
                        tracing::warn!(feed = %self.feed, error = %e, "consuming the feed failed; retrying");
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
