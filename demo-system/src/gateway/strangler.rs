//! The strangler fig: the old shop's routes at the gateway, each answered by the legacy
//! monolith or by the new service that replaces it, as `[gateway.shop_routes]` says. Clients
//! of the old shop keep their URLs and shapes while its routes move one at a time; the new
//! side translates the new services' answers into the old shapes, so both sides answer the
//! same contract. The request span says who answered (`strangler.backend`), so the collector
//! shows what still reaches the legacy.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::inventory::InventoryClient;
use crate::legacy::{LegacyClient, ShopCatalogue, ShopOrder, ShopProduct};
use crate::orders::OrdersClient;
use crate::platform::http::ApiError;
use crate::platform::money::format_cents;
use crate::topology::Service;

/// A route of the old shop the gateway serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShopRoute {
    Products,
    Order,
}

impl ShopRoute {
    pub const ALL: [ShopRoute; 2] = [ShopRoute::Products, ShopRoute::Order];

    /// The route as clients call it, and as the route table names it.
    pub const fn path(self) -> &'static str {
        match self {
            ShopRoute::Products => "/shop/products",
            ShopRoute::Order => "/shop/orders/{order_number}",
        }
    }

    /// The new service that replaces the legacy on this route.
    pub const fn new_owner(self) -> Service {
        match self {
            ShopRoute::Products => Service::Inventory,
            ShopRoute::Order => Service::Orders,
        }
    }
}

/// Who answers each route: `legacy`, or the route's new owner. A route not listed stays
/// with the legacy (it has not moved yet).
pub type ShopRoutes = BTreeMap<String, Service>;

/// Mid-migration: the catalogue has moved to inventory, order lookups have not.
pub fn default_routes() -> ShopRoutes {
    BTreeMap::from([
        (ShopRoute::Products.path().to_string(), Service::Inventory),
        (ShopRoute::Order.path().to_string(), Service::Legacy),
    ])
}

/// Why a route table cannot be used, if it cannot.
pub fn check(routes: &ShopRoutes) -> Result<(), String> {
    for (path, service) in routes {
        let Some(route) = ShopRoute::ALL.into_iter().find(|r| r.path() == path) else {
            let known: Vec<&str> = ShopRoute::ALL.map(ShopRoute::path).to_vec();
            return Err(format!(
                "shop_routes: {path:?} is not a route of the old shop (one of {})",
                known.join(", ")
            ));
        };
        if *service != Service::Legacy && *service != route.new_owner() {
            return Err(format!(
                "shop_routes: {path:?} = {:?}: only legacy or {} can answer it",
                service.name(),
                route.new_owner()
            ));
        }
    }
    Ok(())
}

/// The gateway's side of the strangler fig.
#[derive(Debug, Clone)]
pub struct Strangler {
    pub routes: ShopRoutes,
    pub legacy: LegacyClient,
    pub inventory: InventoryClient,
    pub orders: OrdersClient,
}

impl Strangler {
    /// Who answers `route` now.
    pub fn backend(&self, route: ShopRoute) -> Service {
        self.routes
            .get(route.path())
            .copied()
            .unwrap_or(Service::Legacy)
    }

    pub async fn catalogue(&self) -> Result<ShopCatalogue, ApiError> {
        let backend = mark(self.backend(ShopRoute::Products));
        if backend == Service::Legacy {
            return Ok(self.legacy.catalogue().await?);
        }
        let mut products: Vec<ShopProduct> = self
            .inventory
            .products()
            .await?
            .into_iter()
            .map(|p| ShopProduct {
                code: p.sku,
                title: p.name,
                price: format_cents(p.price_cents),
                available: p.stock,
            })
            .collect();
        // The old shop listed by code.
        products.sort_by(|a, b| a.code.cmp(&b.code));
        Ok(ShopCatalogue { products })
    }

    pub async fn order(&self, number: &str) -> Result<ShopOrder, ApiError> {
        let backend = mark(self.backend(ShopRoute::Order));
        if backend == Service::Legacy {
            return Ok(self.legacy.order(number).await?);
        }
        match self.orders.order(number).await {
            Ok(o) => Ok(ShopOrder {
                order_number: o.id,
                customer: o.customer_id,
                total: format_cents(o.total_cents),
                state: o.status.as_str().to_uppercase(),
            }),
            // The old shop's message for an order it does not know.
            Err(e) if e.refused_status() == Some(404) => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no order {number}"),
            )),
            Err(e) => Err(e.into()),
        }
    }
}

/// Puts who answers on the request's span.
fn mark(backend: Service) -> Service {
    tracing::Span::current().set_attribute("strangler.backend", backend.name());
    backend
}
