//! The order saga: reserve stock → authorize payment → confirm the reservation; a declined
//! payment compensates in reverse (refund if anything was authorized, release the stock).
//! Each step's outcome is an event appended to the order's stream (see [`super::events`])
//! *before* the next call, so a crashed or restarted instance resumes every unfinished order
//! where it stopped ([`Orders::resume_all`]); every call it makes is idempotent on the order
//! ID, so resuming a step that had in fact completed is harmless, and an append that
//! follows a version another run already moved past is refused, so each step is recorded
//! once.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use tracing::Instrument;
use uuid::Uuid;

use super::api::{Order, OrderChange, OrderStatus, OrderStream, PlaceOrder};
use super::db;
use super::events::{self, Appended};
use super::settlement::{self, Recorded, Settlement};
use crate::inventory::api::check_items;
use crate::inventory::{InventoryClient, ReserveRequest};
use crate::payments::{AuthorizationStatus, AuthorizeRequest, PaymentsClient};
use crate::platform::client::ClientError;
use crate::platform::db::DbError;
use crate::platform::http::ApiError;
use crate::platform::leadership::Leadership;
use crate::platform::outbox::{Outbox, open_db};
use crate::platform::resilience::Upstream;

#[derive(Clone, Debug)]
pub struct Orders {
    outbox: Outbox,
    inventory: InventoryClient,
    payments: PaymentsClient,
    /// Undo the earlier steps of an order that cannot complete; `false` (`--disable
    /// compensation`): it is cancelled and whatever it holds stays held.
    compensate: bool,
    /// Orders whose saga this process is running now: the resumer leaves them to it,
    /// rather than running the same steps beside it (harmless, every step is idempotent,
    /// but every call twice).
    in_flight: Arc<Mutex<HashSet<String>>>,
    /// Whether this instance leads, for the singleton work: resuming parked sagas and
    /// settling each period (everyone leads until [`Orders::led_by`] says otherwise).
    leadership: Leadership,
    /// This instance's name (`orders-1`), recorded with what it settles.
    instance: String,
}

/// Marks an order's saga as running here while it lives.
struct Running {
    id: String,
    in_flight: Arc<Mutex<HashSet<String>>>,
}

impl Running {
    /// `None` when this process already runs the saga of `id`.
    fn start(in_flight: &Arc<Mutex<HashSet<String>>>, id: &str) -> Option<Self> {
        crate::platform::lock(in_flight)
            .insert(id.to_string())
            .then(|| Self {
                id: id.to_string(),
                in_flight: in_flight.clone(),
            })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        crate::platform::lock(&self.in_flight).remove(&self.id);
    }
}

/// What one saga step decided.
enum Step {
    /// Record this and go on.
    Record(OrderChange),
    /// A dependency is unavailable: leave the order where it is; resume later.
    Wait(ClientError),
    /// The saga has finished.
    Done,
}

fn vanished(id: &str) -> DbError {
    DbError::Aborted(format!("order {id} has no stream"))
}

impl Orders {
    pub fn open(
        db_path: &Path,
        inventory: InventoryClient,
        payments: PaymentsClient,
    ) -> Result<Self, DbError> {
        let schema = format!("{}\n{}\n{}", db::SCHEMA, events::SCHEMA, settlement::SCHEMA);
        let db = open_db(db_path, &schema)?;
        db.blocking(rusqlite::TransactionBehavior::Immediate, |tx| {
            db::migrate(tx)?;
            let imported = events::import_outbox(tx)?;
            if imported > 0 {
                tracing::warn!(
                    events = imported,
                    "order events moved from the outbox into streams"
                );
            }
            if !events::projection_is_current(tx)? {
                let orders = events::rebuild_projection(tx)?;
                tracing::warn!(
                    orders,
                    "the orders projection did not match the event store: rebuilt from the streams"
                );
            }
            Ok(())
        })?;
        Ok(Self {
            // The other orders instance appends to the same file.
            outbox: Outbox::from_source(db, events::FEED).shared(),
            inventory,
            payments,
            compensate: true,
            in_flight: Arc::default(),
            leadership: Leadership::everyone(),
            instance: "orders".into(),
        })
    }

    /// Runs the singleton work only while `leadership` leads; `instance` names this one.
    pub fn led_by(mut self, leadership: Leadership, instance: &str) -> Self {
        self.leadership = leadership;
        self.instance = instance.to_string();
        self
    }

    /// `--disable compensation`: a failed order is cancelled without refunding its payment
    /// or releasing its stock, so an experiment can show what compensation is worth.
    pub fn without_compensation(mut self) -> Self {
        tracing::warn!("compensation disabled: failed orders keep their stock reserved");
        self.compensate = false;
        self
    }

    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// The upstreams whose resilience `/admin/resilience` reports.
    pub fn upstreams(&self) -> Vec<Upstream> {
        vec![
            self.inventory.http().upstream().clone(),
            self.payments.http().upstream().clone(),
        ]
    }

    pub async fn of_customer(&self, customer_id: &str) -> Result<Vec<Order>, DbError> {
        let customer_id = customer_id.to_string();
        self.outbox
            .db()
            .read(move |tx| db::of_customer(tx, &customer_id))
            .await
    }

    pub async fn order(&self, id: &str) -> Result<Option<Order>, DbError> {
        let id = id.to_string();
        self.outbox.db().read(move |tx| db::load(tx, &id)).await
    }

    /// The order's stream and the order it makes; `None` for an unknown order.
    pub async fn stream(&self, id: &str) -> Result<Option<OrderStream>, DbError> {
        let id = id.to_string();
        self.outbox
            .db()
            .read(move |tx| {
                let events = events::stream(tx, &id)?;
                let Some(last) = events.last() else {
                    return Ok(None);
                };
                let version = last.version;
                let order = Order::replay(&id, events.iter().map(|e| &e.change))
                    .ok_or_else(|| vanished(&id))?;
                Ok(Some(OrderStream {
                    order,
                    version,
                    events,
                }))
            })
            .await
    }

    async fn current(&self, id: &str) -> Result<(Order, i64), DbError> {
        let id = id.to_string();
        self.outbox
            .db()
            .read(move |tx| db::load_versioned(tx, &id)?.ok_or_else(|| vanished(&id)))
            .await
    }

    /// Appends `change` to the order's stream if it is still at `expected`, and projects
    /// it, in one transaction. Two runs of one saga can overlap (a retried request, the
    /// periodic resume, another instance): only the first records each step, so each is
    /// published once; the other gets the order as the first left it and goes on from there.
    async fn record(
        &self,
        id: &str,
        expected: i64,
        change: OrderChange,
    ) -> Result<(Order, i64), DbError> {
        let id = id.to_string();
        self.outbox
            .transaction(move |tx| match events::append(tx, &id, expected, &change)? {
                Appended::At(version) => {
                    let (mut order, _) = db::load_versioned(tx, &id)?.ok_or_else(|| vanished(&id))?;
                    order.apply(&change);
                    db::project(tx, &order, version, crate::platform::http::now_unix_ms())?;
                    Ok((order, version))
                }
                Appended::Conflict { current } => {
                    tracing::info!(order_id = %id, expected, current, "saga step not recorded: another run moved the order first");
                    db::load_versioned(tx, &id)?.ok_or_else(|| vanished(&id))
                }
            })
            .await
    }

    /// Replaces any order with `placed`'s ID by a new stream: `placed` (pending) then
    /// `changes`, each an event as the saga would append it; what contract verification
    /// starts from.
    pub(super) async fn stage(
        &self,
        placed: Order,
        changes: Vec<OrderChange>,
    ) -> Result<Order, DbError> {
        self.outbox
            .transaction(move |tx| {
                let id = placed.id.clone();
                tx.execute("DELETE FROM order_events WHERE order_id = ?1", [&id])?;
                tx.execute("DELETE FROM orders WHERE id = ?1", [&id])?;
                let mut order = placed;
                let mut version = 0;
                for change in std::iter::once(placed_change(&order)).chain(changes) {
                    match events::append(tx, &id, version, &change)? {
                        Appended::At(v) => version = v,
                        Appended::Conflict { current } => {
                            return Err(DbError::Aborted(format!(
                                "order {id}'s stream moved to {current} while staged"
                            )));
                        }
                    }
                    order.apply(&change);
                }
                db::project(tx, &order, version, crate::platform::http::now_unix_ms())?;
                Ok(order)
            })
            .await
    }

    /// Runs the saga of `id` forward until it finishes or must wait for a dependency.
    pub async fn advance(&self, id: &str) -> Result<Order, DbError> {
        let _running = Running::start(&self.in_flight, id);
        let (mut order, mut version) = self.current(id).await?;
        loop {
            match self.step(&order).await {
                Step::Record(change) => {
                    tracing::info!(order_id = %id, from = order.status.as_str(), to = change.status().as_str(), "saga step");
                    (order, version) = self.record(id, version, change).await?;
                }
                Step::Wait(e) => {
                    tracing::warn!(order_id = %id, status = order.status.as_str(), error = %e, "saga waits for a dependency");
                    break;
                }
                Step::Done => break,
            }
        }
        Ok(order)
    }

    async fn step(&self, order: &Order) -> Step {
        let id = &order.id;
        match order.status {
            OrderStatus::Pending => {
                let req = ReserveRequest {
                    reservation_id: id.clone(),
                    items: order.items.clone(),
                };
                match self.inventory.reserve(&req).await {
                    Ok(_) => Step::Record(OrderChange::StockReserved),
                    // No such product, not enough stock: nothing was reserved.
                    Err(ClientError::Refused { message, .. }) => {
                        Step::Record(OrderChange::Rejected {
                            reason: Some(message),
                        })
                    }
                    Err(e) => Step::Wait(e),
                }
            }
            OrderStatus::StockReserved => {
                let req = AuthorizeRequest {
                    order_id: id.clone(),
                    amount_cents: order.total_cents,
                };
                let key = format!("order-{id}-authorize");
                match self.payments.authorize(&req, Some(&key)).await {
                    Ok(a) if a.status == AuthorizationStatus::Declined => {
                        Step::Record(OrderChange::Compensating {
                            payment_id: Some(a.id),
                            reason: a.reason,
                        })
                    }
                    Ok(a) => Step::Record(OrderChange::PaymentAuthorized { payment_id: a.id }),
                    Err(ClientError::Refused { message, .. }) => {
                        Step::Record(OrderChange::Compensating {
                            payment_id: None,
                            reason: Some(format!("payments refused: {message}")),
                        })
                    }
                    Err(e) => Step::Wait(e),
                }
            }
            OrderStatus::PaymentAuthorized => match self.inventory.confirm(id).await {
                Ok(_) => Step::Record(OrderChange::Confirmed),
                // The reservation is gone: undo the payment too.
                Err(ClientError::Refused { message, .. }) => {
                    Step::Record(OrderChange::Compensating {
                        payment_id: None,
                        reason: Some(format!("confirming stock failed: {message}")),
                    })
                }
                Err(e) => Step::Wait(e),
            },
            OrderStatus::Compensating if !self.compensate => Step::Record(OrderChange::Cancelled),
            OrderStatus::Compensating => self.undo(order).await,
            OrderStatus::Confirmed | OrderStatus::Cancelled | OrderStatus::Rejected => Step::Done,
        }
    }

    /// Refunds the payment if there is one, then releases the stock.
    async fn undo(&self, order: &Order) -> Step {
        let id = &order.id;
        if let Some(payment) = &order.payment_id {
            match self.payments.refund(payment, Some(id)).await {
                Ok(_) => {}
                // 409: it was declined, nothing to refund.
                Err(ClientError::Refused { status: 409, .. }) => {}
                Err(ClientError::Refused { status, .. }) => {
                    tracing::warn!(order_id = %id, status, "refund refused; releasing stock anyway")
                }
                Err(e) => return Step::Wait(e),
            }
        }
        match self.inventory.release(id).await {
            Ok(_) | Err(ClientError::Refused { .. }) => Step::Record(OrderChange::Cancelled),
            Err(e) => Step::Wait(e),
        }
    }

    /// Runs the saga in a task of its own and waits for it: a caller that gives up (the
    /// gateway timing out) does not cancel it halfway, so every call it started ends and is
    /// counted, by the circuit breaker too. (Cancelled, a call that would have timed out is
    /// never recorded as a failure, and a breaker behind a shorter caller timeout never
    /// opens.)
    async fn advance_detached(&self, id: String) -> Result<Order, ApiError> {
        let saga = self.clone();
        tokio::spawn(async move { saga.advance(&id).await }.in_current_span())
            .await
            .map_err(|e| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("the saga task failed: {e}"),
                )
            })?
            .map_err(ApiError::from)
    }

    /// Resumes every saga parked for `parked_for` or longer, if this instance leads: run
    /// at start and periodically. Each resumption is a trace of its own (`saga resume`,
    /// with the leader's `leader.token`), so what it does is seen as a request's saga is:
    /// its calls, and the breaker state changes they cause. It carries on the order's
    /// story: linked to the request that placed it, under that request's correlation ID
    /// (read from the order's `order.pending` event, which keeps the request's trace
    /// context).
    pub async fn resume_all(&self, parked_for: Duration) -> Result<usize, DbError> {
        let Some(token) = self.leadership.token() else {
            return Ok(0);
        };
        let before = crate::platform::http::now_unix_ms() - parked_for.as_millis() as i64;
        let unfinished = self
            .outbox
            .db()
            .read(move |tx| db::unfinished(tx, before))
            .await?;
        let placed_kind = OrderStatus::Pending.event_kind();
        for id in &unfinished {
            if crate::platform::lock(&self.in_flight).contains(id) {
                continue;
            }
            let placed = self.outbox.latest(id, &placed_kind).await?;
            let span = crate::platform::telemetry::linked_root(
                tracing::info_span!(
                    "resume",
                    otel.name = "saga resume",
                    otel.kind = "internal",
                    order.id = %id,
                    leader.token = token,
                    correlation_id = tracing::field::Empty,
                ),
                placed.as_ref().and_then(|e| e.traceparent.as_deref()),
                placed.as_ref().and_then(|e| e.baggage.as_deref()),
            );
            self.advance(id).instrument(span).await?;
        }
        Ok(unfinished.len())
    }

    /// Settles the period of `period_ms` starting at `start`, if this instance leads: a
    /// trace of its own (`settlement run`), its write behind the leader's fencing token.
    pub async fn settle(&self, start: i64, period_ms: i64) -> Result<Option<Recorded>, DbError> {
        let Some(token) = self.leadership.token() else {
            return Ok(None);
        };
        let span = tracing::info_span!(
            "settlement",
            otel.name = "settlement run",
            otel.kind = "internal",
            settlement.period = start,
            leader.token = token,
        );
        let (holder, token) = (self.instance.clone(), token as i64);
        let recorded = self
            .outbox
            .db()
            .write(move |tx| settlement::record(tx, start, period_ms, token, &holder))
            .instrument(span.clone())
            .await?;
        let _entered = span.enter();
        match &recorded {
            Recorded::Settled(s) => {
                tracing::info!(
                    period = start,
                    orders = s.orders,
                    total_cents = s.total_cents,
                    "settlement.recorded"
                )
            }
            Recorded::AlreadySettled => {
                tracing::info!(period = start, "settlement: the period was settled already")
            }
            Recorded::Fenced { token, newest } => tracing::warn!(
                period = start,
                token,
                newest,
                "leader.fenced: a newer leader wrote already; this instance's write is refused"
            ),
        }
        Ok(Some(recorded))
    }

    /// The settlements, newest first.
    pub async fn settlements(&self, limit: usize) -> Result<Vec<Settlement>, DbError> {
        self.outbox
            .db()
            .read(move |tx| settlement::list(tx, limit))
            .await
    }

    /// Looks up prices, creates the order in `pending`, and runs its saga. `201` once the
    /// saga has finished either way, `202` while it waits for a dependency, `200` for a
    /// repeated idempotency key.
    pub async fn place(
        &self,
        req: PlaceOrder,
        key: Option<String>,
    ) -> Result<(StatusCode, Order), ApiError> {
        if req.customer_id.is_empty() {
            return Err(ApiError::bad_request("customer_id is required"));
        }
        check_items(&req.items).map_err(ApiError::bad_request)?;
        let request =
            serde_json::to_string(&req).map_err(|e| ApiError::bad_request(e.to_string()))?;
        if let Some(key) = key.clone() {
            let request = request.clone();
            if let Some(existing) = self
                .outbox
                .db()
                .read(move |tx| db::known_key(tx, &key, &request))
                .await?
            {
                let existing =
                    existing.map_err(|msg| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, msg))?;
                return Ok((StatusCode::OK, self.advance_detached(existing).await?));
            }
        }
        let mut total = 0;
        for item in &req.items {
            let product = self
                .inventory
                .product(&item.sku)
                .await
                .map_err(|e| match e {
                    ClientError::Refused { status: 404, .. } => ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        format!("no product {}", item.sku),
                    ),
                    other => ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("cannot price the order: {other}"),
                    ),
                })?;
            total += product.price_cents * item.quantity;
        }
        let order = Order {
            id: Uuid::now_v7().to_string(),
            customer_id: req.customer_id,
            items: req.items,
            total_cents: total,
            status: OrderStatus::Pending,
            payment_id: None,
            reason: None,
        };
        // Running from before it is stored, so the resumer never sees it unclaimed.
        let _running = Running::start(&self.in_flight, &order.id);
        let created = self
            .outbox
            .transaction(move |tx| {
                // The same key may have been taken while we priced the order.
                if let Some(key) = &key {
                    if let Some(existing) = db::known_key(tx, key, &request)? {
                        return Ok(existing);
                    }
                    db::remember_key(tx, key, &request, &order.id)?;
                }
                let placed = placed_change(&order);
                if events::append(tx, &order.id, 0, &placed)? != Appended::At(1) {
                    return Err(DbError::Aborted(format!("order {} exists", order.id)));
                }
                db::project(tx, &order, 1, crate::platform::http::now_unix_ms())?;
                Ok(Ok(order.id))
            })
            .await?;
        let order_id =
            created.map_err(|msg| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, msg))?;
        let order = self.advance_detached(order_id).await?;
        let status = if order.status.is_finished() {
            StatusCode::CREATED
        } else {
            StatusCode::ACCEPTED
        };
        Ok((status, order))
    }
}

/// The first event of `order`'s stream.
fn placed_change(order: &Order) -> OrderChange {
    OrderChange::Placed {
        customer_id: order.customer_id.clone(),
        items: order.items.clone(),
        total_cents: order.total_cents,
    }
}
