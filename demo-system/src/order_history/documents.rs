//! Order-history's read model as documents in `redb`, an embedded key/value store: the
//! demo's polyglot persistence. Every other service keeps rows in SQLite; this one keeps
//! one document per order (the order as callers see it and every state it went through)
//! and a multimap from customer to orders, because that is all it is ever asked: one
//! order's whole history by ID, or a customer's orders. Each read is one key lookup and
//! each event one read-modify-write of one document, with no joins, no query planning and
//! no schema to migrate when the view gains a field.
//!
//! The same guarantees as the SQLite services: each write transaction is committed with
//! `Durability::Immediate` (on disk when `commit` returns, so `kill -9` after it loses
//! nothing), and every call is blocking, made from the consumer's blocking thread or a
//! `spawn_blocking` of [`super::server::OrderHistory`], never on the async workers.
//!
//! The feed consumer keeps its bookkeeping (cursor, processed event IDs, dead letters) in
//! the platform's SQLite file, in the transaction that calls [`Documents::apply`]; the
//! document commits first. A crash between the two commits delivers the event again, and
//! [`Documents::apply`] is idempotent on the event's feed position (a step is stored once
//! per position, the view moves only forward), so the replay changes nothing.

use std::path::Path;
use std::sync::Arc;

use redb::{
    Database, Durability, MultimapTableDefinition, ReadableDatabase, ReadableMultimapTable,
    ReadableTable, TableDefinition,
};
use serde::{Deserialize, Serialize};

use super::api::{HistoryStep, OrderHistoryView, OrderView};
use crate::orders::api::Order;

/// Order ID → its [`OrderDocument`] as JSON.
const ORDERS: TableDefinition<&str, &[u8]> = TableDefinition::new("orders");
/// Customer ID → the IDs of their orders.
const BY_CUSTOMER: MultimapTableDefinition<&str, &str> =
    MultimapTableDefinition::new("orders_by_customer");
/// `replayed`: the consumer's bookkeeping was reset for this file (see
/// [`Documents::needs_replay`]).
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The most memory redb may cache pages in.
const CACHE_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum DocumentsError {
    #[error("document store: {0}")]
    Store(#[from] redb::Error),
    #[error("a stored document is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the document store's task failed: {0}")]
    Task(String),
}

/// Everything redb's operations fail with becomes a [`DocumentsError::Store`].
fn store<E: Into<redb::Error>>(e: E) -> DocumentsError {
    DocumentsError::Store(e.into())
}

/// One order's document: its view, the feed position the view is as of, and each state it
/// went through by feed position.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct OrderDocument {
    view: OrderView,
    last_seq: i64,
    steps: Vec<Step>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Step {
    seq: i64,
    #[serde(flatten)]
    step: HistoryStep,
}

impl OrderDocument {
    fn new(order: &Order, seq: i64) -> Self {
        Self {
            view: OrderView {
                order_id: order.id.clone(),
                customer_id: order.customer_id.clone(),
                status: order.status,
                total_cents: order.total_cents,
                items: order.items.clone(),
            },
            last_seq: seq,
            steps: Vec::new(),
        }
    }

    /// Takes `order` as of feed position `seq`, once: the step is kept in feed order, and
    /// the view's status moves only to a later position.
    fn take(&mut self, order: &Order, seq: i64, at_unix_ms: i64) {
        if let Err(at) = self.steps.binary_search_by_key(&seq, |s| s.seq) {
            let step = HistoryStep {
                status: order.status,
                reason: order.reason.clone(),
                at_unix_ms,
            };
            self.steps.insert(at, Step { seq, step });
        }
        if seq >= self.last_seq {
            self.view.status = order.status;
            self.last_seq = seq;
        }
    }

    fn history(self) -> OrderHistoryView {
        OrderHistoryView {
            order: self.view,
            history: self.steps.into_iter().map(|s| s.step).collect(),
        }
    }
}

/// The store; cheap to clone. Every method blocks: call it off the async workers.
#[derive(Clone)]
pub struct Documents {
    db: Arc<Database>,
}

impl std::fmt::Debug for Documents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Documents")
    }
}

impl Documents {
    /// Opens (creating) the store at `path`, its tables created so reads never miss one.
    pub fn open(path: &Path) -> Result<Self, DocumentsError> {
        // redb caches up to 1 GiB by default; the demo runs 15 processes on a small machine.
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(store)?;
        let tx = db.begin_write().map_err(store)?;
        tx.open_table(ORDERS).map_err(store)?;
        tx.open_multimap_table(BY_CUSTOMER).map_err(store)?;
        tx.open_table(META).map_err(store)?;
        tx.commit().map_err(store)?;
        Ok(Self { db: Arc::new(db) })
    }

    /// Whether this file has not been built from the start of the feed yet: new, or
    /// replacing a lost one. The consumer's bookkeeping must then be reset so the feed is
    /// replayed into it, and [`Documents::replayed`] called.
    pub fn needs_replay(&self) -> Result<bool, DocumentsError> {
        let tx = self.db.begin_read().map_err(store)?;
        let meta = tx.open_table(META).map_err(store)?;
        Ok(meta.get("replayed").map_err(store)?.is_none())
    }

    /// Records that the consumer's bookkeeping was reset for this file.
    pub fn replayed(&self) -> Result<(), DocumentsError> {
        let tx = self.db.begin_write().map_err(store)?;
        tx.open_table(META)
            .map_err(store)?
            .insert("replayed", 1)
            .map_err(store)?;
        tx.commit().map_err(store)
    }

    /// Takes `order` as of feed position `seq` (idempotent), on disk when it returns.
    pub fn apply(&self, order: &Order, seq: i64, at_unix_ms: i64) -> Result<(), DocumentsError> {
        self.write(order, seq, at_unix_ms, Durability::Immediate)
    }

    /// As [`Documents::apply`], visible at once but on disk only after the next
    /// [`Documents::sync`]: what a page of events costs one disk sync instead of one each.
    /// A crash before the sync takes the store back to the last synced commit, whole.
    pub fn apply_unsynced(
        &self,
        order: &Order,
        seq: i64,
        at_unix_ms: i64,
    ) -> Result<(), DocumentsError> {
        self.write(order, seq, at_unix_ms, Durability::None)
    }

    /// Puts every commit so far on disk (an empty durable commit persists the ones before it).
    pub fn sync(&self) -> Result<(), DocumentsError> {
        let tx = self.db.begin_write().map_err(store)?;
        tx.commit().map_err(store)
    }

    fn write(
        &self,
        order: &Order,
        seq: i64,
        at_unix_ms: i64,
        durability: Durability,
    ) -> Result<(), DocumentsError> {
        let mut tx = self.db.begin_write().map_err(store)?;
        tx.set_durability(durability).map_err(store)?;
        {
            let mut orders = tx.open_table(ORDERS).map_err(store)?;
            let stored = orders
                .get(order.id.as_str())
                .map_err(store)?
                .map(|g| g.value().to_vec());
            let mut doc = match stored {
                Some(bytes) => serde_json::from_slice(&bytes)?,
                None => OrderDocument::new(order, seq),
            };
            doc.take(order, seq, at_unix_ms);
            orders
                .insert(order.id.as_str(), serde_json::to_vec(&doc)?.as_slice())
                .map_err(store)?;
            tx.open_multimap_table(BY_CUSTOMER)
                .map_err(store)?
                .insert(order.customer_id.as_str(), order.id.as_str())
                .map_err(store)?;
        }
        tx.commit().map_err(store)
    }

    /// Forgets the order `order_id` (Pact's provider states start from a known one).
    pub fn remove(&self, order_id: &str) -> Result<(), DocumentsError> {
        let tx = self.db.begin_write().map_err(store)?;
        {
            let mut orders = tx.open_table(ORDERS).map_err(store)?;
            let gone = orders
                .remove(order_id)
                .map_err(store)?
                .map(|g| g.value().to_vec());
            if let Some(bytes) = gone {
                let doc: OrderDocument = serde_json::from_slice(&bytes)?;
                tx.open_multimap_table(BY_CUSTOMER)
                    .map_err(store)?
                    .remove(doc.view.customer_id.as_str(), order_id)
                    .map_err(store)?;
            }
        }
        tx.commit().map_err(store)
    }

    fn document(
        orders: &impl ReadableTable<&'static str, &'static [u8]>,
        order_id: &str,
    ) -> Result<Option<OrderDocument>, DocumentsError> {
        match orders.get(order_id).map_err(store)? {
            Some(g) => Ok(Some(serde_json::from_slice(g.value())?)),
            None => Ok(None),
        }
    }

    /// The order `order_id` and every state it went through, in feed order.
    pub fn history(&self, order_id: &str) -> Result<Option<OrderHistoryView>, DocumentsError> {
        let tx = self.db.begin_read().map_err(store)?;
        let orders = tx.open_table(ORDERS).map_err(store)?;
        Ok(Self::document(&orders, order_id)?.map(OrderDocument::history))
    }

    /// The orders of `customer_id`, the least recently changed first.
    pub fn of_customer(&self, customer_id: &str) -> Result<Vec<OrderView>, DocumentsError> {
        let tx = self.db.begin_read().map_err(store)?;
        let orders = tx.open_table(ORDERS).map_err(store)?;
        let ids = tx.open_multimap_table(BY_CUSTOMER).map_err(store)?;
        let mut docs = Vec::new();
        for id in ids.get(customer_id).map_err(store)? {
            let id = id.map_err(store)?;
            docs.extend(Self::document(&orders, id.value())?);
        }
        docs.sort_by_key(|d| d.last_seq);
        Ok(docs.into_iter().map(|d| d.view).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orders::api::{Item, OrderStatus};

    fn order(id: &str, status: OrderStatus) -> Order {
        Order {
            id: id.into(),
            customer_id: "c-1".into(),
            items: vec![Item {
                sku: "SKU-LAMP".into(),
                quantity: 1,
            }],
            total_cents: 3413,
            status,
            payment_id: None,
            reason: None,
        }
    }

    #[test]
    fn a_replayed_event_changes_nothing_and_the_view_only_moves_forward() {
        let dir = tempfile::tempdir().expect("tempdir");
        let docs = Documents::open(&dir.path().join("h.redb")).expect("opens");
        assert!(docs.needs_replay().expect("meta"));
        docs.replayed().expect("meta");
        assert!(!docs.needs_replay().expect("meta"));
        docs.apply(&order("o-1", OrderStatus::Pending), 1, 10)
            .expect("apply");
        docs.apply(&order("o-2", OrderStatus::Pending), 2, 20)
            .expect("apply");
        docs.apply(&order("o-1", OrderStatus::Confirmed), 3, 30)
            .expect("apply");
        let before = docs.history("o-1").expect("read").expect("known");
        // Delivered again after a crash, and an older event late: no new step, no going back.
        docs.apply(&order("o-1", OrderStatus::Confirmed), 3, 31)
            .expect("again");
        docs.apply(&order("o-1", OrderStatus::Pending), 1, 11)
            .expect("again");
        let after = docs.history("o-1").expect("read").expect("known");
        assert_eq!(after, before);
        assert_eq!(after.order.status, OrderStatus::Confirmed);
        let steps: Vec<_> = after.history.iter().map(|s| s.status).collect();
        assert_eq!(steps, [OrderStatus::Pending, OrderStatus::Confirmed]);
        let ids: Vec<String> = docs
            .of_customer("c-1")
            .expect("read")
            .into_iter()
            .map(|v| v.order_id)
            .collect();
        assert_eq!(ids, ["o-2", "o-1"], "least recently changed first");
        docs.remove("o-1").expect("remove");
        assert!(docs.history("o-1").expect("read").is_none());
        assert_eq!(docs.of_customer("c-1").expect("read").len(), 1);
        drop(docs);
        let again = Documents::open(&dir.path().join("h.redb")).expect("reopens");
        assert!(again.history("o-2").expect("read").is_some(), "on disk");
        assert!(!again.needs_replay().expect("meta"));
    }
}
