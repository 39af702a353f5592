//! The orders service: order placement as an orchestrated saga over inventory and payments.
//!
//! Steps: reserve stock → authorize payment → confirm the reservation. A declined payment
//! compensates in reverse (refund if anything was authorized, release the stock). The saga
//! state is written to the orders database (with an outbox event) *before* each next call,
//! so a crashed or restarted instance resumes every unfinished order where it stopped
//! ([`Orders::resume_all`]); every call it makes is idempotent on the order ID, so resuming
//! a step that had in fact completed is harmless. `POST /orders` honours `Idempotency-Key`.

use std::path::Path;

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use rusqlite::{OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::inventory::Item;
use crate::outbox::{NewEvent, Outbox, OutboxError, feed_router};
use crate::resilience::{Call, CallError, Upstream};
use crate::service::{ApiError, now_unix_ms, with_health};

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS orders (
        id TEXT PRIMARY KEY,
        customer_id TEXT NOT NULL,
        items TEXT NOT NULL,
        total_cents INTEGER NOT NULL,
        -- pending → stock_reserved → payment_authorized → confirmed,
        -- or → compensating → cancelled, or rejected (no stock; nothing to undo).
        status TEXT NOT NULL,
        payment_id TEXT,
        reason TEXT,
        created_unix_ms INTEGER NOT NULL,
        updated_unix_ms INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS orders_by_customer ON orders (customer_id, created_unix_ms);
    CREATE TABLE IF NOT EXISTS idempotency_keys (
        key TEXT PRIMARY KEY,
        request TEXT NOT NULL,
        order_id TEXT NOT NULL
    );
";

/// The terminal states: a saga in any other state still has work to do.
const FINISHED: [&str; 3] = ["confirmed", "cancelled", "rejected"];

#[derive(Clone)]
pub struct Orders {
    db: Outbox,
    inventory: Upstream,
    payments: Upstream,
    inventory_url: String,
    payments_url: String,
}

impl std::fmt::Debug for Orders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Orders").finish()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Order {
    pub id: String,
    pub customer_id: String,
    pub items: Vec<Item>,
    pub total_cents: i64,
    pub status: String,
    pub payment_id: Option<String>,
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrder {
    pub customer_id: String,
    pub items: Vec<Item>,
}

fn load(tx: &Transaction<'_>, id: &str) -> Result<Option<Order>, OutboxError> {
    let row = tx
        .query_row(
            "SELECT id, customer_id, items, total_cents, status, payment_id, reason FROM orders WHERE id = ?1",
            [id],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, Option<String>>(5)?,
                    r.get::<_, Option<String>>(6)?,
                ))
            },
        )
        .optional()?;
    let Some((id, customer_id, items, total_cents, status, payment_id, reason)) = row else {
        return Ok(None);
    };
    Ok(Some(Order {
        id,
        customer_id,
        items: serde_json::from_str(&items)?,
        total_cents,
        status,
        payment_id,
        reason,
    }))
}

/// What one saga step decided.
enum Step {
    /// Move to this state (with an optional payment ID or reason) and go on.
    To(&'static str, Option<String>, Option<String>),
    /// A dependency is unavailable: leave the order where it is; resume later.
    Wait(CallError),
}

impl Orders {
    pub fn open(
        db_path: &Path,
        inventory_url: &str,
        inventory: Upstream,
        payments_url: &str,
        payments: Upstream,
    ) -> Result<Self, OutboxError> {
        let db = Outbox::open_with_schema(db_path, SCHEMA)?;
        Ok(Self {
            db,
            inventory,
            payments,
            inventory_url: inventory_url.trim_end_matches('/').to_string(),
            payments_url: payments_url.trim_end_matches('/').to_string(),
        })
    }

    pub fn outbox(&self) -> &Outbox {
        &self.db
    }

    pub fn order(&self, id: &str) -> Result<Option<Order>, OutboxError> {
        self.db.transaction(|tx| load(tx, id))
    }

    /// Records the move to `status` and its event in one transaction.
    fn transition(
        &self,
        id: &str,
        status: &str,
        payment_id: Option<String>,
        reason: Option<String>,
    ) -> Result<Order, OutboxError> {
        self.db.transaction(|tx| {
            tx.execute(
                "UPDATE orders SET status = ?2, payment_id = coalesce(?3, payment_id),
                    reason = coalesce(?4, reason), updated_unix_ms = ?5 WHERE id = ?1",
                params![id, status, payment_id, reason, now_unix_ms()],
            )?;
            let order = load(tx, id)?.ok_or_else(|| OutboxError::Handler {
                event_id: Uuid::nil(),
                reason: format!("order {id} vanished"),
            })?;
            Outbox::append(
                tx,
                &NewEvent {
                    kind: format!("order.{status}"),
                    aggregate_id: id.to_string(),
                    payload: serde_json::to_value(&order)?,
                    traceparent: None,
                    baggage: None,
                },
            )?;
            Ok(order)
        })
    }

    /// Runs the saga of `id` forward until it finishes or must wait for a dependency.
    pub async fn advance(&self, id: &str) -> Result<Order, OutboxError> {
        loop {
            let order = self.order(id)?.ok_or_else(|| OutboxError::Handler {
                event_id: Uuid::nil(),
                reason: format!("no order {id}"),
            })?;
            if FINISHED.contains(&order.status.as_str()) {
                return Ok(order);
            }
            match self.step(&order).await {
                Step::To(status, payment, reason) => {
                    tracing::info!(order_id = %id, from = %order.status, to = status, "saga step");
                    self.transition(id, status, payment, reason)?;
                }
                Step::Wait(e) => {
                    tracing::warn!(order_id = %id, status = %order.status, error = %e, "saga waits for a dependency");
                    return Ok(order);
                }
            }
        }
    }

    async fn step(&self, order: &Order) -> Step {
        let id = &order.id;
        match order.status.as_str() {
            "pending" => {
                let body = json!({"reservation_id": id, "items": order.items});
                let call = Call::post(
                    format!("{}/reservations", self.inventory_url),
                    body,
                    Some(id),
                );
                match self.inventory.call(call).await {
                    Ok(r) if r.status == 409 || r.status == 404 => {
                        Step::To("rejected", None, Some(error_text(&r.body)))
                    }
                    Ok(r) if r.status < 300 => Step::To("stock_reserved", None, None),
                    Ok(r) => Step::To(
                        "rejected",
                        None,
                        Some(format!(
                            "inventory answered {}: {}",
                            r.status,
                            error_text(&r.body)
                        )),
                    ),
                    Err(e) => Step::Wait(e),
                }
            }
            "stock_reserved" => {
                let body = json!({"order_id": id, "amount_cents": order.total_cents});
                let key = format!("order-{id}-authorize");
                let call = Call::post(
                    format!("{}/payments/authorizations", self.payments_url),
                    body,
                    Some(&key),
                );
                match self.payments.call(call).await {
                    Ok(r) if r.status == 402 => Step::To(
                        "compensating",
                        payment_id(&r.body),
                        Some(error_text(&r.body)),
                    ),
                    Ok(r) if r.status < 300 => {
                        Step::To("payment_authorized", payment_id(&r.body), None)
                    }
                    Ok(r) => Step::To(
                        "compensating",
                        None,
                        Some(format!(
                            "payments answered {}: {}",
                            r.status,
                            error_text(&r.body)
                        )),
                    ),
                    Err(e) => Step::Wait(e),
                }
            }
            "payment_authorized" => {
                let call = Call::post(
                    format!("{}/reservations/{id}/confirm", self.inventory_url),
                    json!({}),
                    Some(id),
                );
                match self.inventory.call(call).await {
                    Ok(r) if r.status < 300 => Step::To("confirmed", None, None),
                    // The reservation is gone: undo the payment too.
                    Ok(r) => Step::To(
                        "compensating",
                        None,
                        Some(format!("confirming stock failed: {}", error_text(&r.body))),
                    ),
                    Err(e) => Step::Wait(e),
                }
            }
            "compensating" => {
                if let Some(payment) = &order.payment_id {
                    let call = Call::post(
                        format!(
                            "{}/payments/authorizations/{payment}/refund",
                            self.payments_url
                        ),
                        json!({}),
                        Some(id),
                    );
                    match self.payments.call(call).await {
                        // 409: it was declined, nothing to refund.
                        Ok(r) if r.status < 300 || r.status == 409 => {}
                        Ok(r) => {
                            tracing::warn!(order_id = %id, status = r.status, "refund refused; releasing stock anyway")
                        }
                        Err(e) => return Step::Wait(e),
                    }
                }
                let call = Call::post(
                    format!("{}/reservations/{id}/release", self.inventory_url),
                    json!({}),
                    Some(id),
                );
                match self.inventory.call(call).await {
                    Ok(_) => Step::To("cancelled", None, None),
                    Err(e) => Step::Wait(e),
                }
            }
            other => Step::To(
                "cancelled",
                None,
                Some(format!("unknown saga state {other}")),
            ),
        }
    }

    /// Resumes every unfinished saga: run at start and periodically.
    pub async fn resume_all(&self) -> Result<usize, OutboxError> {
        let unfinished: Vec<String> = self.db.transaction(|tx| {
            let mut stmt = tx.prepare(
                "SELECT id FROM orders WHERE status NOT IN ('confirmed', 'cancelled', 'rejected') ORDER BY created_unix_ms",
            )?;
            let ids = stmt.query_map([], |r| r.get(0))?.collect::<Result<Vec<String>, _>>()?;
            Ok(ids)
        })?;
        for id in &unfinished {
            self.advance(id).await?;
        }
        Ok(unfinished.len())
    }

    /// Looks up prices, creates the order in `pending`, and runs its saga.
    async fn place(
        &self,
        req: PlaceOrder,
        key: Option<String>,
    ) -> Result<(StatusCode, Order), ApiError> {
        if req.customer_id.is_empty() || req.items.is_empty() {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "customer_id and at least one item are required",
            ));
        }
        if let Some(bad) = req.items.iter().find(|i| i.quantity <= 0) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("quantity of {} must be positive", bad.sku),
            ));
        }
        let request = serde_json::to_string(&req).unwrap_or_default();
        if let Some(key) = &key
            && let Some(existing) = self.db.transaction(|tx| known_key(tx, key, &request))?
        {
            let existing =
                existing.map_err(|msg| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, msg))?;
            let order = self.advance(&existing).await?;
            return Ok((StatusCode::OK, order));
        }
        let mut total = 0;
        for item in &req.items {
            let reply = self
                .inventory
                .call(Call::get(format!(
                    "{}/products/{}",
                    self.inventory_url, item.sku
                )))
                .await
                .map_err(|e| {
                    ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("cannot price the order: {e}"),
                    )
                })?;
            if reply.status == 404 {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("no product {}", item.sku),
                ));
            }
            let product: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
            let price = product["price_cents"].as_i64().ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    format!("inventory gave no price for {}", item.sku),
                )
            })?;
            total += price * item.quantity;
        }
        let id = Uuid::now_v7().to_string();
        let items = serde_json::to_string(&req.items).unwrap_or_default();
        let created = self.db.transaction(|tx| {
            // The same key may have been taken while we priced the order.
            if let Some(key) = &key
                && let Some(existing) = known_key(tx, key, &request)?
            {
                return Ok(existing);
            }
            tx.execute(
                "INSERT INTO orders (id, customer_id, items, total_cents, status, created_unix_ms, updated_unix_ms)
                 VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?5)",
                params![id, req.customer_id, items, total, now_unix_ms()],
            )?;
            if let Some(key) = &key {
                tx.execute(
                    "INSERT INTO idempotency_keys (key, request, order_id) VALUES (?1, ?2, ?3)",
                    params![key, request, id],
                )?;
            }
            let order = load(tx, &id)?;
            Outbox::append(
                tx,
                &NewEvent {
                    kind: "order.pending".into(),
                    aggregate_id: id.clone(),
                    payload: serde_json::to_value(&order)?,
                    traceparent: None,
                    baggage: None,
                },
            )?;
            Ok(Ok(id.clone()))
        })?;
        let order_id =
            created.map_err(|msg| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, msg))?;
        let order = self.advance(&order_id).await?;
        // 201 once the saga has finished either way; 202 while it waits for a dependency.
        let status = if FINISHED.contains(&order.status.as_str()) {
            StatusCode::CREATED
        } else {
            StatusCode::ACCEPTED
        };
        Ok((status, order))
    }
}

/// The order an idempotency key already made, or why the key cannot be used again.
fn known_key(
    tx: &Transaction<'_>,
    key: &str,
    request: &str,
) -> Result<Option<Result<String, String>>, OutboxError> {
    let row: Option<(String, String)> = tx
        .query_row(
            "SELECT request, order_id FROM idempotency_keys WHERE key = ?1",
            [key],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    Ok(row.map(|(req, order_id)| {
        if req == request {
            Ok(order_id)
        } else {
            Err(format!(
                "Idempotency-Key {key:?} was already used for a different order"
            ))
        }
    }))
}

fn error_text(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            v["error"]
                .as_str()
                .or(v["reason"].as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(200).collect())
}

fn payment_id(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<Value>(body).ok()?["id"]
        .as_str()
        .map(str::to_string)
}

pub fn app(orders: Orders) -> Router {
    let db = orders.db.clone();
    let upstreams = vec![orders.inventory.clone(), orders.payments.clone()];
    let routes = Router::new()
        .route("/orders", post(place))
        .route("/orders/{id}", get(get_order))
        .with_state(orders)
        .merge(feed_router(db.clone()));
    let routes = crate::service::with_resilience_admin(routes, upstreams);
    with_health(routes, db).layer(axum::middleware::from_fn(crate::telemetry::trace_request))
}

async fn place(
    State(o): State<Orders>,
    headers: HeaderMap,
    body: Result<Json<PlaceOrder>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Order>), ApiError> {
    let Json(req) = body.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let key = headers
        .get("idempotency-key")
        .map(|v| {
            v.to_str()
                .ok()
                .filter(|k| !k.is_empty() && k.len() <= 200)
                .map(str::to_string)
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "Idempotency-Key must be 1-200 visible ASCII characters",
                    )
                })
        })
        .transpose()?;
    let (status, order) = o.place(req, key).await?;
    Ok((status, Json(order)))
}

async fn get_order(
    State(o): State<Orders>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<Order>, ApiError> {
    o.order(&id)?
        .map(Json)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no order {id}")))
}
