//! The notifications service: consumes the orders feed and records the notification it
//! would send for each outcome (confirmed, cancelled, rejected). Idempotent through the
//! outbox consumer: a redelivered event records nothing new.

use std::future::Future;
use std::path::Path;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use rusqlite::{Transaction, params};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::outbox::{Consumer, Event, Outbox, OutboxError};
use crate::service::with_health;

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS notifications (
        id INTEGER PRIMARY KEY,
        order_id TEXT NOT NULL,
        customer_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        message TEXT NOT NULL,
        event_id TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS notifications_by_order ON notifications (order_id);
";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Notification {
    pub order_id: String,
    pub customer_id: String,
    pub kind: String,
    pub message: String,
    pub event_id: String,
}

#[derive(Clone)]
pub struct Notifications {
    db: Outbox,
}

impl std::fmt::Debug for Notifications {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Notifications")
    }
}

/// The message for an order event, or `None` for events nobody is told about.
fn message(e: &Event) -> Option<(&'static str, String)> {
    let order = e.payload["id"].as_str().unwrap_or(&e.aggregate_id);
    match e.kind.as_str() {
        "order.confirmed" => Some((
            "order_confirmed",
            format!("Your order {order} is confirmed."),
        )),
        "order.cancelled" => Some((
            "order_cancelled",
            format!(
                "Your order {order} was cancelled: {}.",
                e.payload["reason"].as_str().unwrap_or("no reason given")
            ),
        )),
        "order.rejected" => Some((
            "order_rejected",
            format!(
                "We could not take your order {order}: {}.",
                e.payload["reason"].as_str().unwrap_or("no reason given")
            ),
        )),
        _ => None,
    }
}

impl Notifications {
    pub fn open(db_path: &Path) -> Result<Self, OutboxError> {
        let db = Outbox::open_with_schema(db_path, SCHEMA)?;
        Ok(Self { db })
    }

    /// Applies one order event to this service's database (inside the consumer's transaction).
    pub fn apply(tx: &Transaction<'_>, e: &Event) -> Result<(), String> {
        let Some((kind, text)) = message(e) else {
            return Ok(());
        };
        tracing::info!(order_id = %e.aggregate_id, kind, "notification recorded");
        tx.execute(
            "INSERT INTO notifications (order_id, customer_id, kind, message, event_id) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                e.aggregate_id,
                e.payload["customer_id"].as_str().unwrap_or_default(),
                kind,
                text,
                e.id.to_string()
            ],
        )
        .map(|_| ())
        .map_err(|err| err.to_string())
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

    pub fn for_order(&self, order_id: Option<&str>) -> Result<Vec<Notification>, OutboxError> {
        self.db.transaction(|tx| {
            let mut stmt = tx.prepare(
                "SELECT order_id, customer_id, kind, message, event_id FROM notifications
                 WHERE ?1 IS NULL OR order_id = ?1 ORDER BY id",
            )?;
            let rows = stmt
                .query_map([order_id], |r| {
                    Ok(Notification {
                        order_id: r.get(0)?,
                        customer_id: r.get(1)?,
                        kind: r.get(2)?,
                        message: r.get(3)?,
                        event_id: r.get(4)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    order_id: Option<String>,
}

pub fn app(n: Notifications) -> Router {
    let db = n.db.clone();
    let routes = Router::new()
        .route("/notifications", get(list))
        .with_state(n);
    let routes = crate::service::with_resilience_admin(routes, Vec::new());
    with_health(routes, db).layer(axum::middleware::from_fn(crate::telemetry::trace_request))
}

async fn list(State(n): State<Notifications>, Query(p): Query<ListParams>) -> Response {
    match n.for_order(p.order_id.as_deref()) {
        Ok(list) => Json(list).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": e.to_string()})),
        )
            .into_response(),
    }
}
