//! The inventory service's routes. Each reservation step is idempotent on the reservation
//! ID, so a retried or resumed saga step does no harm; every state change publishes its
//! `stock.*` event through the outbox in the same transaction, and a confirmation that
//! takes a product low adds `stock.low`.

use std::path::Path;

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};

use super::api::{Product, Reservation, ReservationStatus, ReserveRequest, STOCK_LOW, check_items};
use super::db;
use crate::platform::db::DbError;
use crate::platform::http::{ApiError, Body, body, found, service_router};
use crate::platform::outbox::{NewEvent, Outbox, feed_router, open_db};

#[derive(Clone, Debug)]
pub struct Inventory {
    outbox: Outbox,
    /// Added to every price it shows: how a candidate version that prices differently
    /// (`[shadow] candidate_price_offset_cents`) is made; 0 for the real instances.
    price_offset_cents: i64,
}

impl Inventory {
    /// Opens the shared inventory database, creating and stocking it the first time.
    pub fn open(db_path: &Path) -> Result<Self, DbError> {
        let db = open_db(db_path, db::SCHEMA)?;
        db::stock_catalog(&db)?;
        Ok(Self {
            // Its instances share the file: each one's feed must see the others' events.
            outbox: Outbox::new(db).shared(),
            price_offset_cents: 0,
        })
    }

    /// The same inventory, showing every price `cents` higher (a candidate version).
    pub fn with_price_offset(mut self, cents: i64) -> Self {
        self.price_offset_cents = cents;
        self
    }

    fn priced(&self, mut p: Product) -> Product {
        p.price_cents += self.price_offset_cents;
        p
    }

    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// Every product, priced as this instance shows it.
    pub async fn products(&self) -> Result<Vec<Product>, DbError> {
        let list = self.outbox.db().read(db::products).await?;
        Ok(list.into_iter().map(|p| self.priced(p)).collect())
    }

    /// One product, priced as this instance shows it.
    pub async fn product(&self, sku: &str) -> Result<Option<Product>, DbError> {
        let key = sku.to_string();
        let p = self
            .outbox
            .db()
            .read(move |tx| db::product(tx, &key))
            .await?;
        Ok(p.map(|p| self.priced(p)))
    }
}

pub fn app(inventory: Inventory) -> Router {
    let outbox = inventory.outbox.clone();
    let routes = own_routes(inventory).merge(feed_router(outbox.clone()));
    service_router(routes, outbox.db().clone(), Vec::new())
}

/// Products and reservations: what callers ask inventory (its feed aside), over HTTP and,
/// for the catalogue, gRPC ([`super::grpc`]).
pub(super) fn own_routes(inventory: Inventory) -> Router {
    let catalogue = super::grpc::routes(inventory.clone());
    Router::new()
        .route("/products", get(products))
        .route("/products/{sku}", get(product))
        .route("/reservations", post(reserve))
        .route("/reservations/{id}", get(get_reservation))
        .route("/reservations/{id}/confirm", post(confirm))
        .route("/reservations/{id}/release", post(release))
        .with_state(inventory)
        .merge(catalogue)
}

/// A shadow (candidate) instance: the reads only. It gets copies of requests the gateway
/// has already answered, so it must change nothing; writes are not routes here.
pub fn shadow_app(inventory: Inventory) -> Router {
    let db = inventory.outbox.db().clone();
    let routes = Router::new()
        .route("/products", get(products))
        .route("/products/{sku}", get(product))
        .with_state(inventory);
    service_router(routes, db, Vec::new())
}

async fn products(State(inv): State<Inventory>) -> Result<Json<Vec<Product>>, ApiError> {
    Ok(Json(inv.products().await?))
}

async fn product(
    State(inv): State<Inventory>,
    UrlPath(sku): UrlPath<String>,
) -> Result<Json<Product>, ApiError> {
    found(inv.product(&sku).await?, || format!("no product {sku}"))
}

async fn get_reservation(
    State(inv): State<Inventory>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<Reservation>, ApiError> {
    let key = id.clone();
    let r = inv
        .outbox
        .db()
        .read(move |tx| db::reservation(tx, &key))
        .await?;
    found(r, || format!("no reservation {id}"))
}

fn publish(tx: &rusqlite::Transaction<'_>, r: &Reservation) -> Result<(), DbError> {
    Outbox::append(
        tx,
        &NewEvent::new(r.status.event_kind(), &r.reservation_id, r)?,
    )?;
    Ok(())
}

async fn reserve(
    State(inv): State<Inventory>,
    req: Body<ReserveRequest>,
) -> Result<(StatusCode, Json<Reservation>), ApiError> {
    let req = body(req)?;
    if req.reservation_id.is_empty() {
        return Err(ApiError::bad_request("reservation_id is required"));
    }
    check_items(&req.items).map_err(ApiError::bad_request)?;
    let outcome = inv
        .outbox
        .transaction(move |tx| {
            // The same reservation again (a retried or resumed saga step): answer as before.
            if let Some(existing) = db::reservation(tx, &req.reservation_id)? {
                return Ok(Ok((StatusCode::OK, existing)));
            }
            for item in &req.items {
                match db::product(tx, &item.sku)? {
                    None => {
                        return Ok(Err(ApiError::not_found(format!(
                            "no product {}",
                            item.sku
                        ))));
                    }
                    Some(p) if p.stock < item.quantity => {
                        return Ok(Err(ApiError::new(
                            StatusCode::CONFLICT,
                            format!(
                                "not enough {}: {} asked, {} available",
                                item.sku, item.quantity, p.stock
                            ),
                        )));
                    }
                    Some(_) => {}
                }
            }
            db::insert_reservation(tx, &req.reservation_id, &req.items)?;
            tracing::info!(reservation_id = %req.reservation_id, items = req.items.len(), "stock reserved");
            let created = db::reservation(tx, &req.reservation_id)?
                .ok_or_else(|| DbError::Aborted("the new reservation vanished".into()))?;
            publish(tx, &created)?;
            Ok(Ok((StatusCode::CREATED, created)))
        })
        .await??;
    Ok((outcome.0, Json(outcome.1)))
}

/// Moves an open reservation to `to`; repeating a finished move is a no-op.
pub(super) async fn settle(
    inv: &Inventory,
    id: String,
    to: ReservationStatus,
) -> Result<Json<Reservation>, ApiError> {
    let settled = inv
        .outbox
        .transaction(move |tx| {
            let Some(current) = db::reservation(tx, &id)? else {
                return Ok(Err(ApiError::not_found(format!("no reservation {id}"))));
            };
            if current.status == to {
                return Ok(Ok(current));
            }
            if current.status != ReservationStatus::Reserved {
                return Ok(Err(ApiError::new(
                    StatusCode::CONFLICT,
                    format!(
                        "reservation {id} is already {}; it cannot become {}",
                        current.status.as_str(),
                        to.as_str()
                    ),
                )));
            }
            db::set_status(tx, &id, to)?;
            tracing::info!(reservation_id = %id, to = to.as_str(), "reservation settled");
            let settled = Reservation {
                status: to,
                ..current
            };
            publish(tx, &settled)?;
            if to == ReservationStatus::Confirmed {
                // Choreography: inventory says a product ran low and nothing more; who
                // acts on it is up to whoever reads the feed.
                for low in db::taken_low(tx, &settled)? {
                    tracing::info!(sku = %low.sku, on_hand = low.on_hand, "stock.low: a product ran low");
                    Outbox::append(tx, &NewEvent::new(STOCK_LOW, &low.sku, &low)?)?;
                }
            }
            Ok(Ok(settled))
        })
        .await??;
    Ok(Json(settled))
}

async fn confirm(
    State(inv): State<Inventory>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<Reservation>, ApiError> {
    settle(&inv, id, ReservationStatus::Confirmed).await
}

async fn release(
    State(inv): State<Inventory>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<Reservation>, ApiError> {
    settle(&inv, id, ReservationStatus::Released).await
}
