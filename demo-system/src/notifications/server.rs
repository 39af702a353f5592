//! The notifications service: consumes the orders feed and records the notification it
//! would send for each outcome (confirmed, cancelled, rejected). Idempotent through the
//! outbox consumer: a redelivered event records nothing new.

use std::future::Future;
use std::path::Path;

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use rusqlite::Transaction;

use super::api::{Notification, NotificationQuery};
use super::db;
use crate::orders::{Order, OrderStatus};
use crate::platform::client::HttpClient;
use crate::platform::db::{Db, DbError};
use crate::platform::http::{ApiError, with_health, with_resilience_admin};
use crate::platform::outbox::{Consumer, Event, open_db};

#[derive(Clone, Debug)]
pub struct Notifications {
    db: Db,
}

/// The notification for an order event, or `None` for events nobody is told about.
fn notification(e: &Event) -> Result<Option<Notification>, String> {
    let Some(status) = OrderStatus::of_event(&e.kind) else {
        return Ok(None);
    };
    let order: Order = e
        .payload_as()
        .map_err(|err| format!("{} is not an order event: {err}", e.kind))?;
    let reason = || {
        order
            .reason
            .clone()
            .unwrap_or_else(|| "no reason given".into())
    };
    let (kind, message) = match status {
        OrderStatus::Confirmed => (
            "order_confirmed",
            format!("Your order {} is confirmed.", order.id),
        ),
        OrderStatus::Cancelled => (
            "order_cancelled",
            format!("Your order {} was cancelled: {}.", order.id, reason()),
        ),
        OrderStatus::Rejected => (
            "order_rejected",
            format!("We could not take your order {}: {}.", order.id, reason()),
        ),
        _ => return Ok(None),
    };
    Ok(Some(Notification {
        order_id: order.id.clone(),
        customer_id: order.customer_id.clone(),
        kind: kind.into(),
        message,
        event_id: e.id.to_string(),
    }))
}

impl Notifications {
    pub fn open(db_path: &Path) -> Result<Self, DbError> {
        Ok(Self {
            db: open_db(db_path, db::SCHEMA)?,
        })
    }

    /// Applies one order event to this service's database (inside the consumer's transaction).
    pub fn apply(tx: &Transaction<'_>, e: &Event) -> Result<(), String> {
        let Some(n) = notification(e)? else {
            return Ok(());
        };
        tracing::info!(order_id = %n.order_id, kind = %n.kind, "notification recorded");
        db::insert(tx, &n).map_err(|err| err.to_string())
    }

    /// A reader of the orders feed through `orders` (see `outbox::feed_client`) that
    /// remembers its place in this database.
    pub fn consumer(&self, orders: HttpClient) -> Consumer {
        Consumer::new("orders", orders, self.db.clone())
    }

    /// Reads the orders feed until `shutdown` resolves.
    pub fn consume<S: Future<Output = ()>>(
        &self,
        orders: HttpClient,
        shutdown: S,
    ) -> impl Future<Output = ()> + use<S> {
        self.consumer(orders).run(Self::apply, shutdown)
    }

    pub async fn for_order(&self, order_id: Option<&str>) -> Result<Vec<Notification>, DbError> {
        let order_id = order_id.map(str::to_string);
        self.db
            .read(move |tx| db::list(tx, order_id.as_deref()))
            .await
    }
}

pub fn app(n: Notifications) -> Router {
    let db = n.db.clone();
    let routes = Router::new()
        .route("/notifications", get(list))
        .with_state(n);
    let routes = with_resilience_admin(routes, Vec::new());
    with_health(routes, db).layer(axum::middleware::from_fn(
        crate::platform::telemetry::trace_request,
    ))
}

async fn list(
    State(n): State<Notifications>,
    q: Result<Query<NotificationQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<Notification>>, ApiError> {
    let Query(q) = q?;
    Ok(Json(n.for_order(q.order_id.as_deref()).await?))
}
