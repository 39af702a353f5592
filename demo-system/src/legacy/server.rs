//! The legacy shop's routes, as plain as the monolith they stand for: no request spans, no
//! health routes, no resilience admin. Its sidecar adds those from outside.

use std::path::Path;

use axum::extract::{Path as UrlPath, State};
use axum::routing::get;
use axum::{Json, Router};

use super::api::{ShopCatalogue, ShopOrder};
use super::db;
use crate::platform::db::{Db, DbError};
use crate::platform::http::{ApiError, found};

/// The routes the monolith serves (its sidecar names its spans after them).
pub const ROUTES: [&str; 2] = ["/shop/products", "/shop/orders/{order_number}"];

#[derive(Clone, Debug)]
pub struct Legacy {
    db: Db,
}

impl Legacy {
    /// Opens (and on first start seeds) the shop's database.
    pub fn open(db_path: &Path) -> Result<Self, DbError> {
        let db = Db::open(db_path, db::SCHEMA)?;
        Ok(Self { db })
    }

    /// Seeds an empty database; call once after [`Legacy::open`].
    pub async fn seed(&self) -> Result<(), DbError> {
        self.db.write(db::seed).await
    }

    pub fn db(&self) -> &Db {
        &self.db
    }
}

pub fn app(legacy: Legacy) -> Router {
    Router::new()
        .route(ROUTES[0], get(catalogue))
        .route(ROUTES[1], get(order))
        .with_state(legacy)
}

async fn catalogue(State(l): State<Legacy>) -> Result<Json<ShopCatalogue>, ApiError> {
    let products = l.db.read(db::products).await?;
    Ok(Json(ShopCatalogue { products }))
}

async fn order(
    State(l): State<Legacy>,
    UrlPath(number): UrlPath<String>,
) -> Result<Json<ShopOrder>, ApiError> {
    let key = number.clone();
    let o = l.db.read(move |tx| db::order(tx, &key)).await?;
    found(o, || format!("no order {number}"))
}
