//! The notifications service: consumes the orders feed and records the notification it
//! would send for each outcome (confirmed, cancelled, rejected), and inventory's feed for
//! the alert it would send the stock team when a product runs low (`stock.low`: a
//! choreographed flow, no service asks it to). Idempotent through the outbox consumer: a
//! redelivered event records nothing new.

use std::path::{Path, PathBuf};

use axum::Router;
use rusqlite::Transaction;
use serde_json::value::RawValue;

use super::api::{
    LIST_NOTIFICATIONS, LIST_STOCK_ALERTS, Notification, NotificationQuery, StockAlert,
};
use super::db;
use crate::inventory::{STOCK_LOW, StockLow};
use crate::orders::{Order, OrderStatus};
use crate::platform::client::HttpClient;
use crate::platform::db::{Db, DbError};
use crate::platform::http::service_router;
use crate::platform::jsonrpc::{self, Methods, RpcError};
use crate::platform::outbox::{Apply, ConsumeOptions, Event, FeedConsumer, open_db};

/// The longest recipient (customer ID) the mailer takes.
pub const MAX_RECIPIENT: usize = 100;

#[derive(Clone, Debug)]
pub struct Notifications {
    db: Db,
    /// Where the mailer marks the customers it crashed on (see [`CRASHING_CUSTOMER`]).
    crash_marks: PathBuf,
}

/// The consumer-crash experiment's fault: the mailer crashes the process (an abort, in the
/// middle of the handler, its transaction not committed) on the first order event of each
/// customer whose ID starts with this. Once per customer: the mark it leaves first lets
/// the redelivery through, as a bug that struck once would. Only events that notify
/// someone crash it.
pub const CRASHING_CUSTOMER: &str = "crash-mailer-";

/// Aborts the process if `e` is the first order event of a crashing customer.
fn crash_once(marks: &Path, e: &Event) {
    // Only an event someone is told about: losing another would go unnoticed.
    if !matches!(notification(e), Ok(Some(_))) {
        return;
    }
    let Ok(order) = e.payload_as::<Order>() else {
        return;
    };
    let Some(rest) = order.customer_id.strip_prefix(CRASHING_CUSTOMER) else {
        return;
    };
    let name: String = rest
        .chars()
        .take(100)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mark = marks.join(format!("{CRASHING_CUSTOMER}{name}"));
    if mark.exists() {
        return;
    }
    // No mark, no crash: without one it would crash on every redelivery.
    if std::fs::create_dir_all(marks)
        .and_then(|()| std::fs::write(&mark, e.id.to_string()))
        .is_err()
    {
        return;
    }
    tracing::error!(order_id = %order.id, event_id = %e.id, "the mailer crashed (the consumer-crash fault)");
    std::process::abort();
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
    // The mailer takes shorter recipients than orders takes customer IDs: such an order is
    // a poison event here (valid where it came from, never deliverable here), which the
    // consumer parks as a dead letter rather than stall every notification after it.
    if order.customer_id.chars().count() > MAX_RECIPIENT {
        return Err(format!(
            "customer ID of {} characters: the mailer takes recipients of at most {MAX_RECIPIENT}",
            order.customer_id.chars().count()
        ));
    }
    Ok(Some(Notification {
        order_id: order.id.clone(),
        customer_id: order.customer_id.clone(),
        kind: kind.into(),
        message,
        event_id: e.id.to_string(),
    }))
}

/// The alert for a `stock.low` event.
fn stock_alert(e: &Event) -> Result<StockAlert, String> {
    let low: StockLow = e
        .payload_as()
        .map_err(|err| format!("{STOCK_LOW} payload: {err}"))?;
    Ok(StockAlert {
        message: format!(
            "Restock {} ({}): {} left on hand.",
            low.name, low.sku, low.on_hand
        ),
        sku: low.sku,
        on_hand: low.on_hand,
        reservation_id: low.reservation_id,
        event_id: e.id.to_string(),
    })
}

/// Reads the orders feed (each order outcome records one notification) and, through
/// [`Notifications::consume_inventory`], inventory's (each `stock.low` one alert). One
/// handler for both, so a parked event of either feed replays through it.
impl FeedConsumer for Notifications {
    const FEED: &'static str = "orders";

    fn db(&self) -> &Db {
        &self.db
    }

    fn handler(&self) -> impl Apply + use<> {
        let marks = self.crash_marks.clone();
        move |tx: &Transaction<'_>, e: &Event| {
            Self::apply(tx, e)?;
            crash_once(&marks, e);
            Ok(())
        }
    }
}

impl Notifications {
    /// Applies one event of either feed: an order outcome records a notification, a
    /// `stock.low` an alert.
    pub fn apply(tx: &Transaction<'_>, e: &Event) -> Result<(), String> {
        if e.kind == STOCK_LOW {
            let a = stock_alert(e)?;
            tracing::info!(sku = %a.sku, on_hand = a.on_hand, "stock alert recorded");
            return db::insert_alert(tx, &a).map_err(|err| err.to_string());
        }
        let Some(n) = notification(e)? else {
            return Ok(());
        };
        tracing::info!(order_id = %n.order_id, kind = %n.kind, "notification recorded");
        db::insert(tx, &n).map_err(|err| err.to_string())
    }

    pub fn open(db_path: &Path) -> Result<Self, DbError> {
        Ok(Self {
            db: open_db(db_path, db::SCHEMA)?,
            crash_marks: db_path.with_extension("crashes"),
        })
    }

    pub async fn list(&self, q: NotificationQuery) -> Result<Vec<Notification>, DbError> {
        self.db.read(move |tx| db::list(tx, &q)).await
    }

    pub async fn stock_alerts(&self) -> Result<Vec<StockAlert>, DbError> {
        self.db.read(db::alerts).await
    }

    /// Reads inventory's feed (through `client`, see
    /// [`crate::platform::outbox::feed_client`]) until `shutdown` resolves.
    pub fn consume_inventory<S: Future<Output = ()>>(
        &self,
        client: HttpClient,
        options: ConsumeOptions,
        shutdown: S,
    ) -> impl Future<Output = ()> + use<S> {
        self.consume_from(INVENTORY_FEED, client, options, shutdown)
    }
}

/// Inventory's feed, as notifications' cursor table names it.
pub const INVENTORY_FEED: &str = "inventory";

/// Its API: JSON-RPC 2.0 at `POST /rpc` (see [`super::api`] for the methods).
impl Methods for Notifications {
    async fn call(
        &self,
        method: &str,
        params: Option<&RawValue>,
    ) -> Result<Box<RawValue>, RpcError> {
        match method {
            LIST_NOTIFICATIONS => {
                let q: NotificationQuery = jsonrpc::params(params)?;
                jsonrpc::result(&self.list(q).await.map_err(jsonrpc::internal)?)
            }
            LIST_STOCK_ALERTS => {
                jsonrpc::no_params(params)?;
                jsonrpc::result(&self.stock_alerts().await.map_err(jsonrpc::internal)?)
            }
            other => Err(jsonrpc::method_not_found(other)),
        }
    }
}

pub fn app(n: Notifications) -> Router {
    let db = n.db.clone();
    service_router(jsonrpc::routes(n), db, Vec::new())
}
