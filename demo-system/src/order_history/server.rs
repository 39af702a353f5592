//! The order-history service, the CQRS query side: it builds its own read model from the
//! orders feed and answers `GET /orders/{id}/history` and `GET /customers/{id}/orders`
//! without ever asking the orders service. The read model lives in [`super::documents`]
//! (redb); the feed's bookkeeping in the platform's SQLite file. A shard
//! ([`OrderHistory::holding`]) reads the whole feed and keeps only its customers' orders.

use std::path::Path;

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use rusqlite::TransactionBehavior;

use super::api::{OrderHistoryView, OrderView};
use super::documents::{Documents, DocumentsError};
use crate::orders::{Order, OrderStatus};
use crate::platform::db::{Db, DbError};
use crate::platform::http::{ApiError, found, service_router};
use crate::platform::outbox::{Apply, ConsumeOptions, Event, FeedConsumer, Flush, open_db};
use crate::platform::sharding::Shard;

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Documents(#[from] DocumentsError),
}

impl From<DocumentsError> for ApiError {
    fn from(e: DocumentsError) -> Self {
        tracing::error!(error = %e, "order-history's document store failed");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the order history cannot read its document store; try again",
        )
    }
}

#[derive(Clone, Debug)]
pub struct OrderHistory {
    /// The consumer's cursor, processed event IDs and dead letters.
    db: Db,
    /// The read model.
    docs: Documents,
    /// The read model was new when opened (first start, or its file was lost): it is
    /// rebuilt by replaying the feed from its first event.
    rebuilding: bool,
    /// The customers it keeps: a shard's, or every one (`None`).
    shard: Option<Shard>,
}

/// Reads the orders feed: each order event updates the read model.
impl FeedConsumer for OrderHistory {
    const FEED: &'static str = "orders";

    fn db(&self) -> &Db {
        &self.db
    }

    /// Each event's document is committed unsynced; the consumer syncs them once per page
    /// ([`FeedConsumer::flush`]) before its bookkeeping commits.
    fn handler(&self) -> impl Apply + use<> {
        let (docs, shard) = (self.docs.clone(), self.shard);
        move |_: &rusqlite::Transaction<'_>, e: &Event| {
            apply(&docs, shard, e, Documents::apply_unsynced)
        }
    }

    fn flush(&self) -> Flush {
        let docs = self.docs.clone();
        Flush::new(move || docs.sync().map_err(|e| e.to_string()))
    }
}

/// Takes one order event into the documents with `write` (committed before the consumer's
/// transaction, idempotent: see [`super::documents`]), if `shard` keeps its customer; the
/// other shards' events are passed over (the cursor moves past them all the same).
fn apply(docs: &Documents, shard: Option<Shard>, e: &Event, write: Write) -> Result<(), String> {
    if OrderStatus::of_event(&e.kind).is_none() {
        return Ok(());
    }
    let order: Order = e
        .payload_as()
        .map_err(|err| format!("{} is not an order event: {err}", e.kind))?;
    if let Some(shard) = shard
        && !shard.holds(&order.customer_id)
    {
        tracing::debug!(order_id = %order.id, %shard, "another shard's customer");
        return Ok(());
    }
    let shard = shard.map(|s| i64::from(s.index));
    tracing::info!(order_id = %order.id, status = order.status.as_str(), shard, "order history updated");
    write(docs, &order, e.seq, e.created_unix_ms).map_err(|err| err.to_string())
}

/// How an event's document is committed: synced or not.
type Write = fn(&Documents, &Order, i64, i64) -> Result<(), DocumentsError>;

impl OrderHistory {
    /// Opens the feed's bookkeeping at `db_path` (SQLite) and the read model beside it
    /// (the same name, `.redb`). A read model file that was never built from the feed's
    /// start (new, or replacing a lost one) has the bookkeeping reset first, so the feed
    /// is replayed into it: the projection is rebuilt from the events.
    pub fn open(db_path: &Path) -> Result<Self, OpenError> {
        let db = open_db(db_path, "")?;
        let docs = Documents::open(&db_path.with_extension("redb"))?;
        let rebuilding = docs.needs_replay()?;
        if rebuilding {
            let feed = <Self as FeedConsumer>::FEED;
            db.blocking(TransactionBehavior::Immediate, |tx| {
                tx.execute("DELETE FROM consumer_cursors WHERE feed = ?1", [feed])?;
                tx.execute("DELETE FROM processed_events", [])?;
                Ok(())
            })?;
            docs.replayed()?;
        }
        Ok(Self {
            db,
            docs,
            rebuilding,
            shard: None,
        })
    }

    /// The same read model keeping only the customers of `shard`.
    pub fn holding(self, shard: Shard) -> Self {
        Self {
            shard: Some(shard),
            ..self
        }
    }

    /// How to read the feed: as `options` say, except that a read model being rebuilt
    /// without `replay` (`--disable event-replay`) starts from the newest event, so the
    /// orders placed before it are missing from it for good.
    pub fn consume_options(&self, options: ConsumeOptions, replay: bool) -> ConsumeOptions {
        if self.rebuilding && !replay {
            tracing::warn!(
                "event replay disabled: the new read model starts from the newest event"
            );
            return ConsumeOptions {
                catch_up: false,
                ..options
            };
        }
        if self.rebuilding {
            tracing::info!(
                "read model new or lost: replaying the orders feed from its first event"
            );
        }
        options
    }

    /// Applies one event with its document on disk when it returns: for replaying a dead
    /// letter, which no consumer's page flush follows.
    pub fn durable_handler(&self) -> impl Apply + use<> {
        let (docs, shard) = (self.docs.clone(), self.shard);
        move |_: &rusqlite::Transaction<'_>, e: &Event| apply(&docs, shard, e, Documents::apply)
    }

    /// Runs `f` on the documents on a blocking thread.
    async fn read<T, F>(&self, f: F) -> Result<T, DocumentsError>
    where
        T: Send + 'static,
        F: FnOnce(&Documents) -> Result<T, DocumentsError> + Send + 'static,
    {
        let docs = self.docs.clone();
        tokio::task::spawn_blocking(move || f(&docs))
            .await
            .map_err(|e| DocumentsError::Task(e.to_string()))?
    }

    pub async fn history(
        &self,
        order_id: &str,
    ) -> Result<Option<OrderHistoryView>, DocumentsError> {
        let order_id = order_id.to_string();
        self.read(move |d| d.history(&order_id)).await
    }

    pub async fn of_customer(&self, customer_id: &str) -> Result<Vec<OrderView>, DocumentsError> {
        let customer_id = customer_id.to_string();
        self.read(move |d| d.of_customer(&customer_id)).await
    }

    /// Replaces whatever the read model holds of `order` with it, as of feed position 1
    /// (Pact's provider states).
    pub async fn replace(&self, order: Order, at_unix_ms: i64) -> Result<(), DocumentsError> {
        self.read(move |d| {
            d.remove(&order.id)?;
            d.apply(&order, 1, at_unix_ms)
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orders::Item;

    fn event(seq: i64, customer: &str) -> Event {
        let order = Order {
            id: format!("order-{seq}"),
            customer_id: customer.into(),
            items: vec![Item {
                sku: "SKU-MOUSE".into(),
                quantity: 1,
            }],
            total_cents: 2500,
            status: OrderStatus::Confirmed,
            payment_id: None,
            reason: None,
        };
        Event {
            seq,
            id: uuid::Uuid::now_v7(),
            kind: "order.confirmed".into(),
            aggregate_id: order.id.clone(),
            payload: serde_json::to_value(&order).expect("an order"),
            traceparent: None,
            baggage: None,
            created_unix_ms: 1,
        }
    }

    /// A shard keeps its own customers' orders and passes over the others' (the handler
    /// succeeds, so the cursor moves on); an unsharded read model keeps every one.
    #[tokio::test]
    async fn a_shard_keeps_only_its_customers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mine, theirs) = ("cust-g", "cust-h");
        assert_eq!(Shard::index_of(mine, 2), 1);
        assert_eq!(Shard::index_of(theirs, 2), 2);
        let shard = OrderHistory::open(&dir.path().join("h1.sqlite"))
            .expect("open")
            .holding(Shard { index: 1, of: 2 });
        let all = OrderHistory::open(&dir.path().join("all.sqlite")).expect("open");
        for (seq, customer) in [(1, mine), (2, theirs)] {
            let e = event(seq, customer);
            apply(&shard.docs, shard.shard, &e, Documents::apply).expect("applied");
            apply(&all.docs, all.shard, &e, Documents::apply).expect("applied");
        }
        assert_eq!(shard.of_customer(mine).await.expect("read").len(), 1);
        assert!(shard.of_customer(theirs).await.expect("read").is_empty());
        assert!(shard.history("order-2").await.expect("read").is_none());
        assert_eq!(all.of_customer(theirs).await.expect("read").len(), 1);
    }
}
