//! The order saga: reserve stock → authorize payment → confirm the reservation; a declined
//! payment compensates in reverse (refund if anything was authorized, release the stock).
//! The saga state is written to the orders database (with an outbox event) *before* each
//! next call, so a crashed or restarted instance resumes every unfinished order where it
//! stopped ([`Orders::resume_all`]); every call it makes is idempotent on the order ID, so
//! resuming a step that had in fact completed is harmless.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use tracing::Instrument;
use uuid::Uuid;

use super::api::{Order, OrderStatus, PlaceOrder};
use super::db;
use crate::inventory::api::check_items;
use crate::inventory::{InventoryClient, ReserveRequest};
use crate::payments::{AuthorizationStatus, AuthorizeRequest, PaymentsClient};
use crate::platform::client::ClientError;
use crate::platform::db::DbError;
use crate::platform::http::ApiError;
use crate::platform::outbox::{NewEvent, Outbox, open_db};
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
    /// Move to this state (with a payment ID or a reason, if any) and go on.
    To(OrderStatus, Option<String>, Option<String>),
    /// A dependency is unavailable: leave the order where it is; resume later.
    Wait(ClientError),
}

impl Orders {
    pub fn open(
        db_path: &Path,
        inventory: InventoryClient,
        payments: PaymentsClient,
    ) -> Result<Self, DbError> {
        Ok(Self {
            outbox: Outbox::new(open_db(db_path, db::SCHEMA)?),
            inventory,
            payments,
            compensate: true,
            in_flight: Arc::default(),
        })
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

    /// Records the move from `from` to `status` and its event in one transaction. Two runs
    /// of one saga can overlap (a retried request, the periodic resume): only the first
    /// makes each move, so each state is published once; the other gets the order as the
    /// first left it and goes on from there.
    async fn transition(
        &self,
        id: &str,
        from: OrderStatus,
        status: OrderStatus,
        payment_id: Option<String>,
        reason: Option<String>,
    ) -> Result<Order, DbError> {
        let id = id.to_string();
        self.outbox
            .transaction(move |tx| {
                let moved = db::update(
                    tx,
                    &id,
                    from,
                    status,
                    payment_id.as_deref(),
                    reason.as_deref(),
                )?;
                let order = db::load(tx, &id)?
                    .ok_or_else(|| DbError::Aborted(format!("order {id} vanished")))?;
                if moved {
                    Outbox::append(tx, &NewEvent::new(status.event_kind(), &id, &order)?)?;
                }
                Ok(order)
            })
            .await
    }

    /// Stores `order` (pending) as placing it does, then moves it to `status` as a saga step
    /// does, each with its event: what contract verification starts from. An order with the
    /// same ID is replaced.
    pub(super) async fn stage(
        &self,
        order: Order,
        status: OrderStatus,
        payment_id: Option<String>,
        reason: Option<String>,
    ) -> Result<Order, DbError> {
        let id = order.id.clone();
        self.outbox
            .transaction(move |tx| {
                tx.execute("DELETE FROM orders WHERE id = ?1", [&order.id])?;
                db::insert(tx, &order)?;
                Outbox::append(
                    tx,
                    &NewEvent::new(order.status.event_kind(), &order.id, &order)?,
                )?;
                Ok(())
            })
            .await?;
        if status == OrderStatus::Pending {
            return self
                .order(&id)
                .await?
                .ok_or_else(|| DbError::Aborted(format!("order {id} vanished")));
        }
        self.transition(&id, OrderStatus::Pending, status, payment_id, reason)
            .await
    }

    /// Runs the saga of `id` forward until it finishes or must wait for a dependency.
    pub async fn advance(&self, id: &str) -> Result<Order, DbError> {
        let _running = Running::start(&self.in_flight, id);
        let mut order = self
            .order(id)
            .await?
            .ok_or_else(|| DbError::Aborted(format!("no order {id}")))?;
        while !order.status.is_finished() {
            match self.step(&order).await {
                Step::To(status, payment, reason) => {
                    tracing::info!(order_id = %id, from = order.status.as_str(), to = status.as_str(), "saga step");
                    order = self
                        .transition(id, order.status, status, payment, reason)
                        .await?;
                }
                Step::Wait(e) => {
                    tracing::warn!(order_id = %id, status = order.status.as_str(), error = %e, "saga waits for a dependency");
                    break;
                }
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
                    Ok(_) => Step::To(OrderStatus::StockReserved, None, None),
                    // No such product, not enough stock: nothing was reserved.
                    Err(ClientError::Refused { message, .. }) => {
                        Step::To(OrderStatus::Rejected, None, Some(message))
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
                        Step::To(OrderStatus::Compensating, Some(a.id), a.reason)
                    }
                    Ok(a) => Step::To(OrderStatus::PaymentAuthorized, Some(a.id), None),
                    Err(ClientError::Refused { message, .. }) => Step::To(
                        OrderStatus::Compensating,
                        None,
                        Some(format!("payments refused: {message}")),
                    ),
                    Err(e) => Step::Wait(e),
                }
            }
            OrderStatus::PaymentAuthorized => match self.inventory.confirm(id).await {
                Ok(_) => Step::To(OrderStatus::Confirmed, None, None),
                // The reservation is gone: undo the payment too.
                Err(ClientError::Refused { message, .. }) => Step::To(
                    OrderStatus::Compensating,
                    None,
                    Some(format!("confirming stock failed: {message}")),
                ),
                Err(e) => Step::Wait(e),
            },
            OrderStatus::Compensating if !self.compensate => {
                Step::To(OrderStatus::Cancelled, None, None)
            }
            OrderStatus::Compensating => {
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
                    Ok(_) | Err(ClientError::Refused { .. }) => {
                        Step::To(OrderStatus::Cancelled, None, None)
                    }
                    Err(e) => Step::Wait(e),
                }
            }
            OrderStatus::Confirmed | OrderStatus::Cancelled | OrderStatus::Rejected => {
                Step::To(order.status, None, None)
            }
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

    /// Resumes every unfinished saga: run at start and periodically. Each resumption is a
    /// trace of its own (`saga resume`), so what it does is seen as a request's saga is: its
    /// calls, and the breaker state changes they cause. It carries on the order's story:
    /// linked to the request that placed it, under that request's correlation ID (read
    /// from the order's `order.pending` event, which keeps the request's trace context).
    pub async fn resume_all(&self) -> Result<usize, DbError> {
        let unfinished = self.outbox.db().read(db::unfinished).await?;
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
                    correlation_id = tracing::field::Empty,
                ),
                placed.as_ref().and_then(|e| e.traceparent.as_deref()),
                placed.as_ref().and_then(|e| e.baggage.as_deref()),
            );
            self.advance(id).instrument(span).await?;
        }
        Ok(unfinished.len())
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
                db::insert(tx, &order)?;
                Outbox::append(
                    tx,
                    &NewEvent::new(order.status.event_kind(), &order.id, &order)?,
                )?;
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
