//! The strangler fig: the old shop's routes at the gateway, each answered by the legacy
//! monolith or by the new service that replaces it, as `[gateway.shop_routes]` says. Clients
//! of the old shop keep their URLs and shapes while its routes move one at a time; the new
//! side translates the new services' answers into the old shapes, so both sides answer the
//! same contract. The request span says who answered (`strangler.backend`), so the collector
//! shows what still reaches the legacy.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use axum::http::StatusCode;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::inventory::InventoryClient;
use crate::legacy::{LegacyClient, ShopCatalogue, ShopOrder, ShopProduct};
use crate::orders::OrdersClient;
use crate::platform::http::ApiError;
use crate::platform::live_config::{ConfigKey, route_backend};
use crate::platform::money::format_cents;
use crate::topology::Service;

/// A route of the old shop the gateway serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
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

    /// Its name in the configuration store's key (`gateway/shop_routes/{name}`).
    pub const fn name(self) -> &'static str {
        match self {
            ShopRoute::Products => "products",
            ShopRoute::Order => "order",
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
    /// The route table now: the file's, changed live by the configuration store's keys
    /// (`gateway/shop_routes/{route}`, see [`Strangler::follow`]).
    routes: Arc<RwLock<ShopRoutes>>,
    /// The file's route table, which a key unset gives back.
    started_with: ShopRoutes,
    pub legacy: LegacyClient,
    pub inventory: InventoryClient,
    pub orders: OrdersClient,
}

impl Strangler {
    pub fn new(
        routes: ShopRoutes,
        legacy: LegacyClient,
        inventory: InventoryClient,
        orders: OrdersClient,
    ) -> Self {
        Self {
            routes: Arc::new(RwLock::new(routes.clone())),
            started_with: routes,
            legacy,
            inventory,
            orders,
        }
    }

    /// Who answers `route` now.
    pub fn backend(&self, route: ShopRoute) -> Service {
        self.routes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(route.path())
            .copied()
            .unwrap_or(Service::Legacy)
    }

    /// Takes the configuration store's keys under `gateway/shop_routes/` (every one there
    /// is, as [`crate::platform::live_config::watch`] gives them): a route whose key is set
    /// goes to the backend it names, one whose key is not to the file's; each change logged.
    pub fn follow(&self, values: &[(String, String)]) {
        for route in ShopRoute::ALL {
            let key = ConfigKey::ShopRoute(route).to_string();
            let set = values.iter().find(|(k, _)| *k == key).map(|(_, v)| v);
            let backend = match set.map(|v| route_backend(route, v)) {
                Some(Ok(b)) => Some(b),
                Some(Err(e)) => {
                    tracing::warn!(%key, error = %e, "config.ignored: keeping the route as it is");
                    continue;
                }
                None => self.started_with.get(route.path()).copied(),
            };
            let mut routes = self.routes.write().unwrap_or_else(|p| p.into_inner());
            let before = routes.get(route.path()).copied();
            if before == backend {
                continue;
            }
            match backend {
                Some(b) => routes.insert(route.path().to_string(), b),
                None => routes.remove(route.path()),
            };
            let shown = backend.unwrap_or(Service::Legacy);
            tracing::info!(event.name = "config.applied", %key, value = %shown, "config.applied");
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::client::HttpClient;
    use crate::platform::resilience::ResilienceConfig;

    fn strangler() -> Strangler {
        let http = |name: &str| {
            HttpClient::at(name, "http://127.0.0.1:9", &ResilienceConfig::default())
                .expect("a client")
        };
        Strangler::new(
            default_routes(),
            LegacyClient::new(http("legacy")),
            InventoryClient::new(http("inventory")),
            OrdersClient::new(http("orders")),
        )
    }

    /// The route flag moves a route live; a value its route cannot take changes nothing;
    /// the key unset gives the file's route back.
    #[test]
    fn a_route_flag_moves_the_route_and_unset_gives_the_files_back() {
        let s = strangler();
        assert_eq!(s.backend(ShopRoute::Order), Service::Legacy);
        let flag = |v: &str| vec![("gateway/shop_routes/order".to_string(), v.to_string())];
        s.follow(&flag("orders"));
        assert_eq!(s.backend(ShopRoute::Order), Service::Orders);
        assert_eq!(
            s.backend(ShopRoute::Products),
            Service::Inventory,
            "untouched"
        );
        s.follow(&flag("inventory"));
        assert_eq!(
            s.backend(ShopRoute::Order),
            Service::Orders,
            "refused: kept"
        );
        s.follow(&[]);
        assert_eq!(s.backend(ShopRoute::Order), Service::Legacy);
        s.follow(&[(
            "gateway/shop_routes/products".to_string(),
            "legacy".to_string(),
        )]);
        assert_eq!(s.backend(ShopRoute::Products), Service::Legacy);
    }
}
