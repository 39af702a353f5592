//! The order-history service: the CQRS query side. It builds its own read model from the
//! orders feed (one row per order with its latest state, plus every state it went through)
//! and answers `GET /orders/{id}/history` and `GET /customers/{id}/orders` without ever
//! asking the orders service.

use std::future::Future;
use std::path::Path;

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use rusqlite::{OptionalExtension, Transaction, params};
use serde_json::{Value, json};

use crate::outbox::{Consumer, Event, Outbox, OutboxError};
use crate::service::with_health;

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS order_views (
        order_id TEXT PRIMARY KEY,
        customer_id TEXT NOT NULL,
        status TEXT NOT NULL,
        total_cents INTEGER NOT NULL,
        items TEXT NOT NULL,
        last_seq INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS order_views_by_customer ON order_views (customer_id);
    CREATE TABLE IF NOT EXISTS order_history (
        order_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        status TEXT NOT NULL,
        reason TEXT,
        at_unix_ms INTEGER NOT NULL,
        PRIMARY KEY (order_id, seq)
    );
";

#[derive(Clone)]
pub struct OrderHistory {
    db: Outbox,
}

impl std::fmt::Debug for OrderHistory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OrderHistory")
    }
}

impl OrderHistory {
    pub fn open(db_path: &Path) -> Result<Self, OutboxError> {
        let db = Outbox::open_with_schema(db_path, SCHEMA)?;
        Ok(Self { db })
    }

    /// Applies one order event to this service's database (inside the consumer's transaction).
    pub fn apply(tx: &Transaction<'_>, e: &Event) -> Result<(), String> {
        let Some(status) = e.kind.strip_prefix("order.") else {
            return Ok(());
        };
        tracing::info!(order_id = %e.aggregate_id, status, "order history updated");
        let p = &e.payload;
        let db = |err: rusqlite::Error| err.to_string();
        // Events arrive in feed order; the view keeps the latest even if one is replayed.
        tx.execute(
            "INSERT INTO order_views (order_id, customer_id, status, total_cents, items, last_seq)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (order_id) DO UPDATE SET status = excluded.status, last_seq = excluded.last_seq
             WHERE excluded.last_seq > order_views.last_seq",
            params![
                e.aggregate_id,
                p["customer_id"].as_str().unwrap_or_default(),
                status,
                p["total_cents"].as_i64().unwrap_or(0),
                p["items"].to_string(),
                e.seq
            ],
        )
        .map_err(db)?;
        tx.execute(
            "INSERT OR IGNORE INTO order_history (order_id, seq, status, reason, at_unix_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![e.aggregate_id, e.seq, status, p["reason"].as_str(), e.created_unix_ms],
        )
        .map_err(db)?;
        Ok(())
    }

    /// A reader of the orders feed at `orders_url` that remembers its place in this database.
    pub fn consumer(&self, orders_url: &str) -> Consumer {
        Consumer::new("orders", orders_url, self.db.clone())
    }

    /// Reads the orders feed at `orders_url` until `shutdown` resolves.
    pub fn consume<S: Future<Output = ()>>(
        &self,
        orders_url: &str,
        shutdown: S,
    ) -> impl Future<Output = ()> + use<S> {
        self.consumer(orders_url).run(Self::apply, shutdown)
    }

    pub fn history(&self, order_id: &str) -> Result<Option<Value>, OutboxError> {
        self.db.transaction(|tx| {
            let Some(view) = view(tx, order_id)? else {
                return Ok(None);
            };
            let mut stmt = tx.prepare(
                "SELECT status, reason, at_unix_ms FROM order_history WHERE order_id = ?1 ORDER BY seq",
            )?;
            let steps = stmt
                .query_map([order_id], |r| {
                    Ok(json!({"status": r.get::<_, String>(0)?, "reason": r.get::<_, Option<String>>(1)?,
                              "at_unix_ms": r.get::<_, i64>(2)?}))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let mut out = view;
            out["history"] = Value::Array(steps);
            Ok(Some(out))
        })
    }

    pub fn of_customer(&self, customer_id: &str) -> Result<Vec<Value>, OutboxError> {
        self.db.transaction(|tx| {
            let mut stmt = tx.prepare(
                "SELECT order_id FROM order_views WHERE customer_id = ?1 ORDER BY last_seq",
            )?;
            let ids = stmt
                .query_map([customer_id], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            let mut out = Vec::new();
            for id in ids {
                out.extend(view(tx, &id)?);
            }
            Ok(out)
        })
    }
}

fn view(tx: &Transaction<'_>, order_id: &str) -> Result<Option<Value>, OutboxError> {
    Ok(tx
        .query_row(
            "SELECT order_id, customer_id, status, total_cents, items FROM order_views WHERE order_id = ?1",
            [order_id],
            |r| {
                Ok(json!({
                    "order_id": r.get::<_, String>(0)?, "customer_id": r.get::<_, String>(1)?,
                    "status": r.get::<_, String>(2)?, "total_cents": r.get::<_, i64>(3)?,
                    "items": serde_json::from_str::<Value>(&r.get::<_, String>(4)?).unwrap_or(Value::Null),
                }))
            },
        )
        .optional()?)
}

pub fn app(h: OrderHistory) -> Router {
    let db = h.db.clone();
    let routes = Router::new()
        .route("/orders/{id}/history", get(order))
        .route("/customers/{id}/orders", get(customer))
        .with_state(h);
    let routes = crate::service::with_resilience_admin(routes, Vec::new());
    with_health(routes, db).layer(axum::middleware::from_fn(crate::telemetry::trace_request))
}

fn unavailable(e: OutboxError) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"error": e.to_string()})),
    )
        .into_response()
}

async fn order(State(h): State<OrderHistory>, UrlPath(id): UrlPath<String>) -> Response {
    match h.history(&id) {
        Ok(Some(v)) => Json(v).into_response(),
        Ok(None) => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("no order {id} in the history (yet: the read model follows the orders feed)")})),
        )
            .into_response(),
        Err(e) => unavailable(e),
    }
}

async fn customer(State(h): State<OrderHistory>, UrlPath(id): UrlPath<String>) -> Response {
    match h.of_customer(&id) {
        Ok(list) => Json(list).into_response(),
        Err(e) => unavailable(e),
    }
}
