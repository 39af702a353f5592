//! The payments service: authorizations and refunds in its own SQLite database, with a
//! configurable processing delay and a deterministic decline rule (amounts ending in 13
//! cents are declined) so that failures can be provoked on purpose. POSTs honour an
//! `Idempotency-Key`: the same key and body replay the first answer; the same key with
//! another body is refused. Every outcome is published through the outbox
//! (`payment.authorized`, `payment.declined`, `payment.refunded`).

use std::path::Path;
use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use rusqlite::{OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::outbox::{NewEvent, Outbox, OutboxError, feed_router};
use crate::service::{ApiError, now_unix_ms, with_health};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PaymentsConfig {
    /// Time every authorization takes, in milliseconds: a slow dependency on demand.
    pub processing_delay_ms: u64,
    /// Amounts whose cents end in this two-digit number are declined.
    pub decline_cents: u8,
}

impl Default for PaymentsConfig {
    fn default() -> Self {
        Self {
            processing_delay_ms: 20,
            decline_cents: 13,
        }
    }
}

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS authorizations (
        id TEXT PRIMARY KEY,
        order_id TEXT NOT NULL,
        amount_cents INTEGER NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('authorized', 'declined', 'refunded')),
        reason TEXT,
        created_unix_ms INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS idempotency_keys (
        key TEXT PRIMARY KEY,
        request TEXT NOT NULL,
        status INTEGER NOT NULL,
        response TEXT NOT NULL
    );
";

#[derive(Clone)]
pub struct Payments {
    db: Outbox,
    config: PaymentsConfig,
}

impl std::fmt::Debug for Payments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Payments")
            .field("config", &self.config)
            .finish()
    }
}

impl Payments {
    pub fn open(db_path: &Path, config: PaymentsConfig) -> Result<Self, OutboxError> {
        let db = Outbox::open_with_schema(db_path, SCHEMA)?;
        Ok(Self { db, config })
    }

    pub fn outbox(&self) -> &Outbox {
        &self.db
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizeRequest {
    pub order_id: String,
    pub amount_cents: i64,
}

pub fn app(payments: Payments) -> Router {
    let db = payments.db.clone();
    let routes = Router::new()
        .route("/payments/authorizations", post(authorize))
        .route("/payments/authorizations/{id}", get(get_authorization))
        .route("/payments/authorizations/{id}/refund", post(refund))
        .with_state(payments)
        .merge(feed_router(db.clone()));
    let routes = crate::service::with_resilience_admin(routes, Vec::new());
    with_health(routes, db).layer(axum::middleware::from_fn(crate::telemetry::trace_request))
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(v) => match v.to_str() {
            Ok(k) if !k.is_empty() && k.len() <= 200 => Ok(Some(k.to_string())),
            _ => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "Idempotency-Key must be 1-200 visible ASCII characters",
            )),
        },
    }
}

/// Answers a repeated request from the stored first answer, or refuses a reused key.
fn replay(
    tx: &Transaction<'_>,
    key: &str,
    request: &str,
) -> Result<Option<(StatusCode, Value)>, ApiError> {
    let stored: Option<(String, u16, String)> = tx
        .query_row(
            "SELECT request, status, response FROM idempotency_keys WHERE key = ?1",
            [key],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .map_err(OutboxError::from)?;
    match stored {
        None => Ok(None),
        Some((req, _, _)) if req != request => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("Idempotency-Key {key:?} was already used for a different request"),
        )),
        Some((_, status, response)) => Ok(Some((
            StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
            serde_json::from_str(&response).unwrap_or(Value::Null),
        ))),
    }
}

fn remember(
    tx: &Transaction<'_>,
    key: Option<&str>,
    request: &str,
    status: StatusCode,
    body: &Value,
) -> Result<(), OutboxError> {
    if let Some(key) = key {
        tx.execute(
            "INSERT INTO idempotency_keys (key, request, status, response) VALUES (?1, ?2, ?3, ?4)",
            params![key, request, status.as_u16(), body.to_string()],
        )?;
    }
    Ok(())
}

async fn authorize(
    State(p): State<Payments>,
    headers: HeaderMap,
    body: Result<Json<AuthorizeRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(req) = body.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    if req.amount_cents <= 0 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "amount_cents must be positive",
        ));
    }
    if req.order_id.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "order_id must not be empty",
        ));
    }
    let key = idempotency_key(&headers)?;
    let request = serde_json::to_string(&req).unwrap_or_default();
    if let Some(key) = &key
        && let Some((status, body)) = p.db.transaction(|tx| Ok(replay(tx, key, &request)))??
    {
        return Ok((status, Json(body)));
    }
    tokio::time::sleep(Duration::from_millis(p.config.processing_delay_ms)).await;
    let declined = req.amount_cents % 100 == i64::from(p.config.decline_cents);
    if declined {
        tracing::warn!(order_id = %req.order_id, amount_cents = req.amount_cents, "payment declined");
    } else {
        tracing::info!(order_id = %req.order_id, amount_cents = req.amount_cents, "payment authorized");
    }
    let id = Uuid::now_v7();
    let (status, state, reason) = if declined {
        (
            StatusCode::PAYMENT_REQUIRED,
            "declined",
            Some(format!(
                "amounts ending in {:02} cents are declined",
                p.config.decline_cents
            )),
        )
    } else {
        (StatusCode::CREATED, "authorized", None)
    };
    let body = json!({
        "id": id, "order_id": req.order_id, "amount_cents": req.amount_cents,
        "status": state, "reason": reason,
    });
    let answer = p.db.transaction(|tx| {
        // A concurrent request with the same key may have won while we were processing.
        if let Some(key) = &key {
            match replay(tx, key, &request) {
                Ok(None) => {}
                Ok(Some(replayed)) => return Ok(Ok(replayed)),
                Err(refused) => return Ok(Err(refused)),
            }
        }
        tx.execute(
            "INSERT INTO authorizations (id, order_id, amount_cents, status, reason, created_unix_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![id.to_string(), req.order_id, req.amount_cents, state, reason, now_unix_ms()],
        )?;
        Outbox::append(
            tx,
            &NewEvent {
                kind: format!("payment.{state}"),
                aggregate_id: req.order_id.clone(),
                payload: body.clone(),
                traceparent: None,
                baggage: None,
            },
        )?;
        remember(tx, key.as_deref(), &request, status, &body)?;
        Ok(Ok((status, body.clone())))
    })??;
    Ok((answer.0, Json(answer.1)))
}

fn load(tx: &Transaction<'_>, id: &str) -> Result<Option<Value>, OutboxError> {
    Ok(tx
        .query_row(
            "SELECT id, order_id, amount_cents, status, reason FROM authorizations WHERE id = ?1",
            [id],
            |r| {
                Ok(json!({
                    "id": r.get::<_, String>(0)?, "order_id": r.get::<_, String>(1)?,
                    "amount_cents": r.get::<_, i64>(2)?, "status": r.get::<_, String>(3)?,
                    "reason": r.get::<_, Option<String>>(4)?,
                }))
            },
        )
        .optional()?)
}

async fn get_authorization(
    State(p): State<Payments>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<Value>, ApiError> {
    p.db.transaction(|tx| load(tx, &id))?
        .map(Json)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no authorization {id}")))
}

/// Refunds an authorization. Refunding twice is the same as once (the saga may repeat it).
async fn refund(
    State(p): State<Payments>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<Value>, ApiError> {
    enum Outcome {
        Missing,
        Declined,
        Done(Value),
    }
    let outcome = p.db.transaction(|tx| {
        let Some(auth) = load(tx, &id)? else {
            return Ok(Outcome::Missing);
        };
        match auth["status"].as_str() {
            Some("declined") => Ok(Outcome::Declined),
            Some("refunded") => Ok(Outcome::Done(auth)),
            _ => {
                tx.execute(
                    "UPDATE authorizations SET status = 'refunded' WHERE id = ?1",
                    [&id],
                )?;
                let mut refunded = auth;
                refunded["status"] = "refunded".into();
                Outbox::append(
                    tx,
                    &NewEvent {
                        kind: "payment.refunded".into(),
                        aggregate_id: refunded["order_id"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                        payload: refunded.clone(),
                        traceparent: None,
                        baggage: None,
                    },
                )?;
                Ok(Outcome::Done(refunded))
            }
        }
    })?;
    match outcome {
        Outcome::Done(v) => Ok(Json(v)),
        Outcome::Missing => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no authorization {id}"),
        )),
        Outcome::Declined => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("authorization {id} was declined: there is nothing to refund"),
        )),
    }
}
