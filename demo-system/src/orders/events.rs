//! Orders' event store. Each order is a stream of [`OrderChange`]s; an append names the
//! stream version it follows, and is refused when the stream has moved on (optimistic
//! concurrency: checked in the transaction, and enforced by `UNIQUE (order_id, version)`
//! even against another process writing the same file). The `orders` table is a projection
//! of the streams, written in the same transaction as each event and rebuilt from them when
//! it does not match ([`rebuild_projection`]). The orders feed (`GET /events`) is this table
//! in the order events were stored, each served with the order as it was after it: there
//! is no separate publication log to keep in step.

use std::collections::HashMap;

use rusqlite::{Connection, Transaction, params};
use uuid::Uuid;

use super::api::{ORDER_EVENT_PREFIX, Order, OrderChange, OrderEvent, OrderStatus};
use super::db;
use crate::platform::db::{DbError, json_column, text_column};
use crate::platform::http::now_unix_ms;
use crate::platform::outbox::{Event, FeedSource};

pub const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS order_events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        order_id TEXT NOT NULL,
        version INTEGER NOT NULL,
        type TEXT NOT NULL,
        data TEXT NOT NULL,
        traceparent TEXT,
        baggage TEXT,
        created_unix_ms INTEGER NOT NULL,
        UNIQUE (order_id, version)
    );
";

/// The orders feed, read from the event store.
pub const FEED: FeedSource = FeedSource {
    after: feed_after,
    latest: feed_latest,
    end: |conn| {
        Ok(
            conn.query_row("SELECT coalesce(max(seq), 0) FROM order_events", [], |r| {
                r.get(0)
            })?,
        )
    },
    clear: None,
};

/// What an append did.
#[derive(Debug, Clone, PartialEq)]
pub enum Appended {
    /// Stored as this version of the stream.
    At(i64),
    /// The stream is at `current`, not at the version the append followed: someone else
    /// appended first. Nothing was stored.
    Conflict { current: i64 },
}

/// The version of `order_id`'s stream: its newest event's, 0 when it has none.
pub fn version(conn: &Connection, order_id: &str) -> Result<i64, DbError> {
    Ok(conn.query_row(
        "SELECT coalesce(max(version), 0) FROM order_events WHERE order_id = ?1",
        [order_id],
        |r| r.get(0),
    )?)
}

/// Appends `change` to `order_id`'s stream if it is still at version `expected`, with the
/// current trace context.
pub fn append(
    tx: &Transaction<'_>,
    order_id: &str,
    expected: i64,
    change: &OrderChange,
) -> Result<Appended, DbError> {
    let current = version(tx, order_id)?;
    if current != expected {
        return Ok(Appended::Conflict { current });
    }
    let trace = crate::platform::telemetry::current_headers();
    let inserted = tx.execute(
        "INSERT INTO order_events (id, order_id, version, type, data, traceparent, baggage, created_unix_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            Uuid::now_v7().to_string(),
            order_id,
            expected + 1,
            change.status().event_kind(),
            serde_json::to_string(change)?,
            trace.get("traceparent"),
            trace.get("baggage"),
            now_unix_ms()
        ],
    );
    match inserted {
        Ok(_) => Ok(Appended::At(expected + 1)),
        // Another writer took this version between our read and our insert.
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Ok(Appended::Conflict {
                current: version(tx, order_id)?,
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// A stored event with what the feed also needs.
struct Stored {
    order_id: String,
    baggage: Option<String>,
    event: OrderEvent,
}

const COLUMNS: &str = "seq, id, order_id, version, data, traceparent, baggage, created_unix_ms";

fn stored_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Stored> {
    Ok(Stored {
        order_id: r.get(2)?,
        baggage: r.get(6)?,
        event: OrderEvent {
            seq: r.get(0)?,
            id: text_column(r, 1, |s| Uuid::parse_str(s).ok())?,
            version: r.get(3)?,
            change: json_column(r, 4)?,
            traceparent: r.get(5)?,
            created_unix_ms: r.get(7)?,
        },
    })
}

fn query(
    conn: &Connection,
    filter: &str,
    args: impl rusqlite::Params,
) -> Result<Vec<Stored>, DbError> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM order_events {filter}"))?;
    let rows = stmt
        .query_map(args, stored_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// `order_id`'s stream, oldest first (empty when there is no such order).
pub fn stream(conn: &Connection, order_id: &str) -> Result<Vec<OrderEvent>, DbError> {
    let rows = query(conn, "WHERE order_id = ?1 ORDER BY version", [order_id])?;
    Ok(rows.into_iter().map(|s| s.event).collect())
}

/// The order after each version of its stream.
fn snapshots(conn: &Connection, order_id: &str) -> Result<HashMap<i64, Order>, DbError> {
    let events = stream(conn, order_id)?;
    let mut out = HashMap::new();
    let mut order: Option<Order> = None;
    for e in &events {
        match &mut order {
            None => order = Order::replay(order_id, [&e.change]),
            Some(o) => o.apply(&e.change),
        }
        if let Some(o) = &order {
            out.insert(e.version, o.clone());
        }
    }
    Ok(out)
}

/// Stored events as the feed serves them: each with the order as it was after it.
fn as_feed(conn: &Connection, rows: Vec<Stored>) -> Result<Vec<Event>, DbError> {
    let mut orders: HashMap<String, HashMap<i64, Order>> = HashMap::new();
    let mut events = Vec::with_capacity(rows.len());
    for s in rows {
        if !orders.contains_key(&s.order_id) {
            let snaps = snapshots(conn, &s.order_id)?;
            orders.insert(s.order_id.clone(), snaps);
        }
        let order = orders
            .get(&s.order_id)
            .and_then(|v| v.get(&s.event.version))
            .ok_or_else(|| {
                DbError::Aborted(format!(
                    "order {}'s stream does not start with order.pending",
                    s.order_id
                ))
            })?;
        events.push(Event {
            seq: s.event.seq,
            id: s.event.id,
            kind: s.event.change.status().event_kind(),
            aggregate_id: s.order_id,
            payload: serde_json::to_value(order)?,
            traceparent: s.event.traceparent,
            baggage: s.baggage,
            created_unix_ms: s.event.created_unix_ms,
        });
    }
    Ok(events)
}

fn feed_after(conn: &Connection, after: i64, limit: usize) -> Result<Vec<Event>, DbError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = query(
        conn,
        "WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        params![after, limit],
    )?;
    as_feed(conn, rows)
}

fn feed_latest(conn: &Connection, order_id: &str, kind: &str) -> Result<Option<Event>, DbError> {
    let rows = query(
        conn,
        "WHERE order_id = ?1 AND type = ?2 ORDER BY version DESC LIMIT 1",
        params![order_id, kind],
    )?;
    Ok(as_feed(conn, rows)?.pop())
}

/// Whether the `orders` table holds exactly one row per stream, at the stream's version.
pub fn projection_is_current(conn: &Connection) -> Result<bool, DbError> {
    Ok(conn.query_row(
        "SELECT (SELECT count(*) FROM orders) = (SELECT count(DISTINCT order_id) FROM order_events)
            AND (SELECT count(*) FROM orders o JOIN
                    (SELECT order_id, max(version) AS v FROM order_events GROUP BY order_id) e
                 ON o.id = e.order_id AND o.version = e.v)
              = (SELECT count(*) FROM orders)",
        [],
        |r| r.get(0),
    )?)
}

/// Replaces the `orders` table with the projection of every stream; how many orders it
/// holds now.
pub fn rebuild_projection(tx: &Transaction<'_>) -> Result<usize, DbError> {
    tx.execute("DELETE FROM orders", [])?;
    let rows = query(tx, "ORDER BY order_id, version", [])?;
    let mut projected = 0;
    let mut i = 0;
    while i < rows.len() {
        let id = &rows[i].order_id;
        let n = rows[i..].iter().take_while(|s| &s.order_id == id).count();
        let stream = &rows[i..i + n];
        if let Some(order) = Order::replay(id, stream.iter().map(|s| &s.event.change)) {
            let (first, last) = (&stream[0].event, &stream[n - 1].event);
            db::project(tx, &order, last.version, first.created_unix_ms)?;
            projected += 1;
        }
        i += n;
    }
    Ok(projected)
}

/// Moves the order events of a database from before the event store (the `outbox` table,
/// each event carrying the order after it) into streams, at the same feed positions so
/// consumers' cursors stay valid; how many were moved. Only into an empty event store.
pub fn import_outbox(tx: &Transaction<'_>) -> Result<usize, DbError> {
    if (FEED.end)(tx)? > 0 {
        return Ok(0);
    }
    let old = crate::platform::outbox::rows_of_kinds(tx, ORDER_EVENT_PREFIX)?;
    let mut versions: HashMap<String, i64> = HashMap::new();
    for e in &old {
        let order: Order = e.payload_as()?;
        let change = change_of(&order);
        let version = versions.entry(order.id.clone()).or_insert(0);
        *version += 1;
        tx.execute(
            "INSERT INTO order_events (seq, id, order_id, version, type, data, traceparent, baggage, created_unix_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                e.seq,
                e.id.to_string(),
                order.id,
                *version,
                e.kind,
                serde_json::to_string(&change)?,
                e.traceparent,
                e.baggage,
                e.created_unix_ms
            ],
        )?;
    }
    tx.execute("DELETE FROM outbox WHERE type LIKE 'order.%'", [])?;
    Ok(old.len())
}

/// The change an old event announced, read from the order it carried.
fn change_of(order: &Order) -> OrderChange {
    match order.status {
        OrderStatus::Pending => OrderChange::Placed {
            customer_id: order.customer_id.clone(),
            items: order.items.clone(),
            total_cents: order.total_cents,
        },
        OrderStatus::StockReserved => OrderChange::StockReserved,
        OrderStatus::PaymentAuthorized => OrderChange::PaymentAuthorized {
            payment_id: order.payment_id.clone().unwrap_or_default(),
        },
        OrderStatus::Compensating => OrderChange::Compensating {
            payment_id: order.payment_id.clone(),
            reason: order.reason.clone(),
        },
        OrderStatus::Confirmed => OrderChange::Confirmed,
        OrderStatus::Cancelled => OrderChange::Cancelled,
        OrderStatus::Rejected => OrderChange::Rejected {
            reason: order.reason.clone(),
        },
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::TransactionBehavior::Immediate;

    use super::*;
    use crate::orders::api::Item;
    use crate::platform::db::Db;
    use crate::platform::outbox::{NewEvent, Outbox, open_db};

    fn store(dir: &std::path::Path) -> Db {
        open_db(
            &dir.join("orders.sqlite"),
            &format!("{}\n{SCHEMA}", db::SCHEMA),
        )
        .expect("opens")
    }

    fn placed(customer: &str) -> OrderChange {
        OrderChange::Placed {
            customer_id: customer.into(),
            items: vec![Item {
                sku: "SKU-LAMP".into(),
                quantity: 1,
            }],
            total_cents: 3413,
        }
    }

    /// Appends to `id`'s stream after `expected` and projects it, as the saga does.
    fn record(tx: &Transaction<'_>, id: &str, expected: i64, change: OrderChange) -> Appended {
        let appended = append(tx, id, expected, &change).expect("append");
        if let Appended::At(v) = appended {
            let events = stream(tx, id).expect("stream");
            let order = Order::replay(id, events.iter().map(|e| &e.change)).expect("replay");
            db::project(tx, &order, v, 0).expect("project");
        }
        appended
    }

    #[test]
    fn an_append_after_a_version_the_stream_moved_past_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = store(dir.path());
        db.blocking(Immediate, |tx| {
            assert_eq!(record(tx, "o-1", 0, placed("c-1")), Appended::At(1));
            assert_eq!(
                record(tx, "o-1", 1, OrderChange::StockReserved),
                Appended::At(2)
            );
            // A second run of the saga, still at version 1, decides the same step.
            assert_eq!(
                record(tx, "o-1", 1, OrderChange::Rejected { reason: None }),
                Appended::Conflict { current: 2 }
            );
            // A new order's first event cannot land on an existing stream either.
            assert_eq!(
                record(tx, "o-1", 0, placed("c-2")),
                Appended::Conflict { current: 2 }
            );
            let kinds: Vec<_> = stream(tx, "o-1")?
                .iter()
                .map(|e| (e.version, e.change.status()))
                .collect();
            assert_eq!(
                kinds,
                [(1, OrderStatus::Pending), (2, OrderStatus::StockReserved)],
                "nothing stored for the refused appends"
            );
            Ok(())
        })
        .expect("tx");
    }

    #[test]
    fn the_feed_serves_each_event_with_the_order_as_it_was_after_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = store(dir.path());
        db.blocking(Immediate, |tx| {
            record(tx, "o-1", 0, placed("c-1"));
            record(tx, "o-2", 0, placed("c-2"));
            let pay = OrderChange::PaymentAuthorized {
                payment_id: "pay-1".into(),
            };
            record(tx, "o-1", 1, OrderChange::StockReserved);
            record(tx, "o-1", 2, pay);
            let declined = OrderChange::Compensating {
                payment_id: None,
                reason: Some("declined".into()),
            };
            record(tx, "o-1", 3, declined);
            Ok(())
        })
        .expect("tx");
        let feed = db
            .blocking(Immediate, |tx| (FEED.after)(tx, 1, 100))
            .expect("feed");
        type Seen<'a> = (i64, &'a str, OrderStatus, Option<&'a str>, Option<&'a str>);
        let seen: Vec<Seen<'_>> = feed
            .iter()
            .map(|e| {
                let o: &serde_json::Value = &e.payload;
                (
                    e.seq,
                    e.aggregate_id.as_str(),
                    OrderStatus::of_event(&e.kind).expect("order event"),
                    o["payment_id"].as_str(),
                    o["reason"].as_str(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (2, "o-2", OrderStatus::Pending, None, None),
                (3, "o-1", OrderStatus::StockReserved, None, None),
                (
                    4,
                    "o-1",
                    OrderStatus::PaymentAuthorized,
                    Some("pay-1"),
                    None
                ),
                (
                    5,
                    "o-1",
                    OrderStatus::Compensating,
                    Some("pay-1"),
                    Some("declined")
                ),
            ]
        );
        let order: Order = feed[3].payload_as().expect("an order");
        assert_eq!(order.customer_id, "c-1");
    }

    #[test]
    fn a_lost_or_stale_projection_is_rebuilt_from_the_streams() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = store(dir.path());
        let orders = |db: &Db| {
            db.blocking(Immediate, |tx| {
                Ok((db::of_customer(tx, "c-1")?, db::load_versioned(tx, "o-1")?))
            })
            .expect("read")
        };
        db.blocking(Immediate, |tx| {
            record(tx, "o-1", 0, placed("c-1"));
            record(tx, "o-1", 1, OrderChange::StockReserved);
            record(tx, "o-2", 0, placed("c-1"));
            assert!(projection_is_current(tx)?);
            Ok(())
        })
        .expect("tx");
        let before = orders(&db);
        assert_eq!(before.0.len(), 2);
        for damage in [
            "DELETE FROM orders",
            "DELETE FROM orders WHERE id = 'o-2'",
            "UPDATE orders SET status = 'confirmed', version = 1 WHERE id = 'o-1'",
            "INSERT INTO orders SELECT 'o-9', customer_id, items, total_cents, status, payment_id,
                 reason, created_unix_ms, updated_unix_ms, version FROM orders WHERE id = 'o-1'",
        ] {
            db.blocking(Immediate, |tx| {
                tx.execute(damage, [])?;
                assert!(!projection_is_current(tx)?, "{damage}: noticed");
                assert_eq!(rebuild_projection(tx)?, 2);
                assert!(projection_is_current(tx)?);
                Ok(())
            })
            .expect("tx");
            assert_eq!(orders(&db), before, "{damage}: rebuilt as it was");
        }
    }

    #[test]
    fn order_events_from_before_the_event_store_keep_their_feed_positions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = store(dir.path());
        let mut order = Order::replay("o-1", [&placed("c-1")]).expect("order");
        db.blocking(Immediate, |tx| {
            // The old layout: an unrelated event first, then the order's three events.
            Outbox::append(tx, &NewEvent::new("stock.low", "SKU-LAMP", &1)?)?;
            Outbox::append(tx, &NewEvent::new("order.pending", "o-1", &order)?)?;
            order.apply(&OrderChange::StockReserved);
            Outbox::append(tx, &NewEvent::new("order.stock_reserved", "o-1", &order)?)?;
            order.apply(&OrderChange::Rejected {
                reason: Some("gone".into()),
            });
            Outbox::append(tx, &NewEvent::new("order.rejected", "o-1", &order)?)?;
            assert_eq!(import_outbox(tx)?, 3);
            assert_eq!(import_outbox(tx)?, 0, "only into an empty store");
            Ok(())
        })
        .expect("tx");
        let feed = db
            .blocking(Immediate, |tx| (FEED.after)(tx, 0, 100))
            .expect("feed");
        let seqs: Vec<(i64, &str)> = feed.iter().map(|e| (e.seq, e.kind.as_str())).collect();
        assert_eq!(
            seqs,
            [
                (2, "order.pending"),
                (3, "order.stock_reserved"),
                (4, "order.rejected")
            ]
        );
        assert_eq!(feed[2].payload_as::<Order>().expect("order"), order);
        let next = db
            .blocking(Immediate, |tx| append(tx, "o-2", 0, &placed("c-2")))
            .expect("append");
        assert_eq!(next, Appended::At(1));
        let end = db.blocking(Immediate, |tx| (FEED.end)(tx)).expect("end");
        assert_eq!(end, 5, "new events follow the imported ones");
    }
}
