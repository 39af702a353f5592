//! The mobile BFF's routes: `GET /mobile/products` from inventory (over gRPC), `GET
//! /mobile/orders/{id}` from orders, each trimmed to what the app shows. A failure of
//! either service reaches the app as the gateway would pass it (the platform's status
//! rules); an unknown order is a 404.

use axum::extract::{Path as UrlPath, State};
use axum::routing::get;
use axum::{Json, Router};

use super::api::{MobileOrder, MobileProduct};
use crate::inventory::CatalogClient;
use crate::orders::OrdersClient;
use crate::platform::http::{ApiError, stateless_router};
use crate::platform::money::format_cents;
use crate::registry::RegistryClient;

/// The services the mobile BFF asks.
#[derive(Clone, Debug)]
pub struct MobileBff {
    /// Inventory's catalogue, over gRPC.
    pub inventory: CatalogClient,
    pub orders: OrdersClient,
}

impl MobileBff {
    pub async fn products(&self) -> Result<Vec<MobileProduct>, ApiError> {
        let list = self.inventory.products().await?;
        Ok(list
            .into_iter()
            .map(|p| MobileProduct {
                price: format_cents(p.price_cents),
                in_stock: p.stock > 0,
                sku: p.sku,
                name: p.name,
            })
            .collect())
    }

    pub async fn order(&self, id: &str) -> Result<MobileOrder, ApiError> {
        let o = self.orders.order(id).await?;
        Ok(MobileOrder {
            id: o.id,
            status: o.status,
            total: format_cents(o.total_cents),
        })
    }
}

/// The mobile BFF's whole router: its routes, health (ready while the registry answers)
/// and `/admin/resilience` for its two upstreams.
pub fn app(bff: MobileBff, registry: RegistryClient) -> Router {
    let upstreams = vec![
        bff.inventory.http().upstream().clone(),
        bff.orders.http().upstream().clone(),
    ];
    let routes = Router::new()
        .route("/mobile/products", get(products))
        .route("/mobile/orders/{id}", get(order))
        .with_state(bff);
    stateless_router(routes, registry, upstreams)
}

async fn products(State(b): State<MobileBff>) -> Result<Json<Vec<MobileProduct>>, ApiError> {
    Ok(Json(b.products().await?))
}

async fn order(
    State(b): State<MobileBff>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<MobileOrder>, ApiError> {
    Ok(Json(b.order(&id).await?))
}
