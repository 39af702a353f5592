//! The payments service's routes: authorizations with a configurable processing delay and a
//! deterministic decline rule (amounts ending in 13 cents), idempotent refunds. POSTs
//! honour an `Idempotency-Key`: the same key and body replay the first answer; the same
//! key with another body is refused. Every outcome is published through the outbox.

use std::path::Path;
use std::time::Duration;

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::api::{Authorization, AuthorizationQuery, AuthorizationStatus, AuthorizeRequest};
use super::db;
use crate::platform::db::DbError;
use crate::platform::http::{ApiError, Body, body, found, idempotency_key, service_router};
use crate::platform::outbox::{NewEvent, Outbox, feed_router, open_db};

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

#[derive(Clone, Debug)]
pub struct Payments {
    outbox: Outbox,
    config: PaymentsConfig,
}

impl Payments {
    pub fn open(db_path: &Path, config: PaymentsConfig) -> Result<Self, DbError> {
        Ok(Self {
            outbox: Outbox::new(open_db(db_path, db::SCHEMA)?),
            config,
        })
    }

    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    pub fn config(&self) -> &PaymentsConfig {
        &self.config
    }
}

pub fn app(payments: Payments) -> Router {
    let outbox = payments.outbox.clone();
    let routes = Router::new()
        .route(
            "/payments/authorizations",
            post(authorize).get(authorizations_of_order),
        )
        .route("/payments/authorizations/{id}", get(get_authorization))
        .route("/payments/authorizations/{id}/refund", post(refund))
        .with_state(payments)
        .merge(feed_router(outbox.clone()));
    service_router(routes, outbox.db().clone(), Vec::new())
}

/// The first answer to a key, replayed; or why the key cannot be used again.
type Replay = Result<(StatusCode, Authorization), ApiError>;

/// The stored first answer to `key`, or a refusal when the key was used for another request.
fn replay(
    tx: &rusqlite::Transaction<'_>,
    key: &str,
    request: &str,
) -> Result<Option<Replay>, DbError> {
    Ok(db::stored_answer(tx, key)?.map(|(req, status, body)| {
        if req != request {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("Idempotency-Key {key:?} was already used for a different request"),
            ));
        }
        Ok((StatusCode::from_u16(status).unwrap_or(StatusCode::OK), body))
    }))
}

fn publish(tx: &rusqlite::Transaction<'_>, a: &Authorization) -> Result<(), DbError> {
    Outbox::append(tx, &NewEvent::new(a.status.event_kind(), &a.order_id, a)?)?;
    Ok(())
}

async fn authorize(
    State(p): State<Payments>,
    headers: HeaderMap,
    req: Body<AuthorizeRequest>,
) -> Result<(StatusCode, Json<Authorization>), ApiError> {
    let req = body(req)?;
    if req.amount_cents <= 0 {
        return Err(ApiError::bad_request("amount_cents must be positive"));
    }
    if req.order_id.is_empty() {
        return Err(ApiError::bad_request("order_id must not be empty"));
    }
    let key = idempotency_key(&headers)?;
    let request = serde_json::to_string(&req).map_err(|e| ApiError::bad_request(e.to_string()))?;
    if let Some(key) = key.clone() {
        let request = request.clone();
        if let Some(answer) = p
            .outbox
            .db()
            .read(move |tx| replay(tx, &key, &request))
            .await?
        {
            let (status, body) = answer?;
            return Ok((status, Json(body)));
        }
    }
    tokio::time::sleep(Duration::from_millis(p.config.processing_delay_ms)).await;
    let declined = req.amount_cents % 100 == i64::from(p.config.decline_cents);
    let (status, auth) = if declined {
        (
            StatusCode::PAYMENT_REQUIRED,
            Authorization {
                id: Uuid::now_v7().to_string(),
                order_id: req.order_id,
                amount_cents: req.amount_cents,
                status: AuthorizationStatus::Declined,
                reason: Some(format!(
                    "amounts ending in {:02} cents are declined",
                    p.config.decline_cents
                )),
            },
        )
    } else {
        (
            StatusCode::CREATED,
            Authorization {
                id: Uuid::now_v7().to_string(),
                order_id: req.order_id,
                amount_cents: req.amount_cents,
                status: AuthorizationStatus::Authorized,
                reason: None,
            },
        )
    };
    let answer = p
        .outbox
        .transaction(move |tx| {
            // A concurrent request with the same key may have won while we were processing.
            if let Some(key) = &key {
                if let Some(replayed) = replay(tx, key, &request)? {
                    return Ok(replayed.map(|r| (r, false)));
                }
                db::remember(tx, key, &request, status.as_u16(), &auth)?;
            }
            db::insert(tx, &auth)?;
            publish(tx, &auth)?;
            Ok(Ok(((status, auth), true)))
        })
        .await??;
    let ((status, auth), made_here) = answer;
    // Said once the decision is committed, and only by the request that made it: a
    // concurrent one with the same key answered with the winner's says nothing.
    if made_here {
        if declined {
            tracing::warn!(order_id = %auth.order_id, amount_cents = auth.amount_cents, "payment declined");
        } else {
            tracing::info!(order_id = %auth.order_id, amount_cents = auth.amount_cents, "payment authorized");
        }
    }
    Ok((status, Json(auth)))
}

async fn get_authorization(
    State(p): State<Payments>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<Authorization>, ApiError> {
    let key = id.clone();
    let a = p.outbox.db().read(move |tx| db::load(tx, &key)).await?;
    found(a, || format!("no authorization {id}"))
}

/// An order's authorizations (none is an empty list: the order may not have reached
/// payment, and payments does not know which orders exist).
async fn authorizations_of_order(
    State(p): State<Payments>,
    q: Result<Query<AuthorizationQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<Authorization>>, ApiError> {
    let Query(q) = q?;
    if q.order_id.is_empty() {
        return Err(ApiError::bad_request("order_id must not be empty"));
    }
    let list = p
        .outbox
        .db()
        .read(move |tx| db::of_order(tx, &q.order_id))
        .await?;
    Ok(Json(list))
}

/// Refunds an authorization. Refunding twice is the same as once (the saga may repeat it).
async fn refund(
    State(p): State<Payments>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<Authorization>, ApiError> {
    let refunded = p
        .outbox
        .transaction(move |tx| {
            let Some(auth) = db::load(tx, &id)? else {
                return Ok(Err(ApiError::not_found(format!("no authorization {id}"))));
            };
            match auth.status {
                AuthorizationStatus::Declined => Ok(Err(ApiError::new(
                    StatusCode::CONFLICT,
                    format!("authorization {id} was declined: there is nothing to refund"),
                ))),
                AuthorizationStatus::Refunded => Ok(Ok(auth)),
                AuthorizationStatus::Authorized => {
                    db::mark_refunded(tx, &id)?;
                    let refunded = Authorization {
                        status: AuthorizationStatus::Refunded,
                        ..auth
                    };
                    publish(tx, &refunded)?;
                    Ok(Ok(refunded))
                }
            }
        })
        .await??;
    Ok(Json(refunded))
}
