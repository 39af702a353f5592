//! The order-history service, the CQRS query side: it builds its own read model from the
//! orders feed and answers `GET /orders/{id}/history` and `GET /customers/{id}/orders`
//! without ever asking the orders service.

use std::future::Future;
use std::path::Path;

use axum::extract::{Path as UrlPath, State};
use axum::routing::get;
use axum::{Json, Router};
use rusqlite::Transaction;

use super::api::{OrderHistoryView, OrderView};
use super::db;
use crate::orders::{Order, OrderStatus};
use crate::platform::client::HttpClient;
use crate::platform::db::{Db, DbError};
use crate::platform::http::{ApiError, with_health, with_resilience_admin};
use crate::platform::outbox::{Consumer, Event, open_db};

#[derive(Clone, Debug)]
pub struct OrderHistory {
    db: Db,
}

impl OrderHistory {
    pub fn open(db_path: &Path) -> Result<Self, DbError> {
        Ok(Self {
            db: open_db(db_path, db::SCHEMA)?,
        })
    }

    /// Applies one order event to this service's database (inside the consumer's transaction).
    pub fn apply(tx: &Transaction<'_>, e: &Event) -> Result<(), String> {
        if OrderStatus::of_event(&e.kind).is_none() {
            return Ok(());
        }
        let order: Order = e
            .payload_as()
            .map_err(|err| format!("{} is not an order event: {err}", e.kind))?;
        tracing::info!(order_id = %order.id, status = order.status.as_str(), "order history updated");
        db::apply(tx, &order, e.seq, e.created_unix_ms).map_err(|err| err.to_string())
    }

    /// A reader of the orders feed through `orders` that remembers its place in this database.
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

    pub async fn history(&self, order_id: &str) -> Result<Option<OrderHistoryView>, DbError> {
        let order_id = order_id.to_string();
        self.db
            .read(move |tx| {
                let Some(order) = db::view(tx, &order_id)? else {
                    return Ok(None);
                };
                let history = db::steps(tx, &order_id)?;
                Ok(Some(OrderHistoryView { order, history }))
            })
            .await
    }

    pub async fn of_customer(&self, customer_id: &str) -> Result<Vec<OrderView>, DbError> {
        let customer_id = customer_id.to_string();
        self.db
            .read(move |tx| db::of_customer(tx, &customer_id))
            .await
    }
}

pub fn app(h: OrderHistory) -> Router {
    let db = h.db.clone();
    let routes = Router::new()
        .route("/orders/{id}/history", get(order))
        .route("/customers/{id}/orders", get(customer))
        .with_state(h);
    let routes = with_resilience_admin(routes, Vec::new());
    with_health(routes, db).layer(axum::middleware::from_fn(
        crate::platform::telemetry::trace_request,
    ))
}

async fn order(
    State(h): State<OrderHistory>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<OrderHistoryView>, ApiError> {
    h.history(&id).await?.map(Json).ok_or_else(|| {
        ApiError::not_found(format!(
            "no order {id} in the history (yet: the read model follows the orders feed)"
        ))
    })
}

async fn customer(
    State(h): State<OrderHistory>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<Vec<OrderView>>, ApiError> {
    Ok(Json(h.of_customer(&id).await?))
}
