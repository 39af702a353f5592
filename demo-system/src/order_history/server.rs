//! The order-history service, the CQRS query side: it builds its own read model from the
//! orders feed and answers `GET /orders/{id}/history` and `GET /customers/{id}/orders`
//! without ever asking the orders service.

use std::path::Path;

use axum::extract::{Path as UrlPath, State};
use axum::routing::get;
use axum::{Json, Router};
use rusqlite::Transaction;

use super::api::{OrderHistoryView, OrderView};
use super::db;
use crate::orders::{Order, OrderStatus};
use crate::platform::db::{Db, DbError};
use crate::platform::http::{ApiError, found, service_router};
use crate::platform::outbox::{Event, FeedConsumer, open_db};

#[derive(Clone, Debug)]
pub struct OrderHistory {
    db: Db,
}

/// Reads the orders feed: each order event updates the read model.
impl FeedConsumer for OrderHistory {
    const FEED: &'static str = "orders";

    fn db(&self) -> &Db {
        &self.db
    }

    fn apply(tx: &Transaction<'_>, e: &Event) -> Result<(), String> {
        if OrderStatus::of_event(&e.kind).is_none() {
            return Ok(());
        }
        let order: Order = e
            .payload_as()
            .map_err(|err| format!("{} is not an order event: {err}", e.kind))?;
        tracing::info!(order_id = %order.id, status = order.status.as_str(), "order history updated");
        db::apply(tx, &order, e.seq, e.created_unix_ms).map_err(|err| err.to_string())
    }
}

impl OrderHistory {
    pub fn open(db_path: &Path) -> Result<Self, DbError> {
        Ok(Self {
            db: open_db(db_path, db::SCHEMA)?,
        })
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
    service_router(routes, db, Vec::new())
}

async fn order(
    State(h): State<OrderHistory>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<OrderHistoryView>, ApiError> {
    found(h.history(&id).await?, || {
        format!("no order {id} in the history (yet: the read model follows the orders feed)")
    })
}

async fn customer(
    State(h): State<OrderHistory>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<Vec<OrderView>>, ApiError> {
    Ok(Json(h.of_customer(&id).await?))
}
