//! The web BFF's GraphQL schema: what the shop's web page shows, in one query. Each field
//! is resolved from the service that holds it, and only when the query asks for it: a
//! page that lists products asks inventory alone; one that shows a customer's orders with
//! their payments asks order-history, then payments once per order.
//!
//! The schema's SDL is checked in beside this file (`schema.graphql`); a test keeps the
//! two equal, so a client can validate its queries against the file without asking the
//! server.
//!
//! Limits: a query deeper than `max_depth` or costlier than `max_complexity` (a field
//! costs 1; a list of a customer's orders costs ten times what each order asks; an order's
//! payments cost 5 more, a call to payments each) is refused while it is validated, before
//! any service is asked.

use async_graphql::{
    Context, EmptyMutation, EmptySubscription, Error, ErrorExtensions, ID, Object, Schema,
    SimpleObject,
};
use serde::{Deserialize, Serialize};

use crate::inventory::{InventoryClient, Product};
use crate::order_history::{OrderHistoryClient, OrderView};
use crate::payments::{Authorization, PaymentsClient};
use crate::platform::client::ClientError;
use crate::platform::money::format_cents;
use crate::topology::Service;

pub type WebSchema = Schema<Query, EmptyMutation, EmptySubscription>;

/// The web BFF's settings (`[web_bff]`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebBffConfig {
    /// The deepest query served (`{ a { b } }` is 2 deep).
    pub max_depth: usize,
    /// The costliest query served (see the module's doc for the costs).
    pub max_complexity: usize,
}

impl Default for WebBffConfig {
    fn default() -> Self {
        Self {
            max_depth: 6,
            max_complexity: 200,
        }
    }
}

impl WebBffConfig {
    /// Why these settings cannot run, if they cannot.
    pub fn check(&self) -> Result<(), String> {
        if self.max_depth < 2 || self.max_complexity < 2 {
            return Err(format!(
                "max_depth ({}) and max_complexity ({}) must be at least 2: no query of the \
                 schema fits below that",
                self.max_depth, self.max_complexity
            ));
        }
        Ok(())
    }
}

/// The services the schema's fields are resolved from.
#[derive(Clone, Debug)]
pub struct Upstreams {
    pub inventory: InventoryClient,
    pub history: OrderHistoryClient,
    pub payments: PaymentsClient,
}

/// The schema, resolving from `upstreams`, within `config`'s limits.
pub fn schema(upstreams: Upstreams, config: &WebBffConfig) -> WebSchema {
    Schema::build(Query, EmptyMutation, EmptySubscription)
        .data(upstreams)
        .limit_depth(config.max_depth)
        .limit_complexity(config.max_complexity)
        .finish()
}

/// The schema's SDL, as checked in (`schema.graphql`).
pub fn sdl() -> String {
    Schema::build(Query, EmptyMutation, EmptySubscription)
        .finish()
        .sdl()
}

/// A service's failure as a field error: the service and what kind of failure, for the
/// page; the detail (addresses, timings) in the log, not in the answer.
fn upstream_error(service: Service) -> impl Fn(ClientError) -> Error {
    move |e| {
        let (code, message) = match &e {
            ClientError::Refused { message, .. } => {
                ("UPSTREAM_REFUSED", format!("{service} refused: {message}"))
            }
            _ => (
                "UPSTREAM_UNAVAILABLE",
                format!("{service} did not answer; try again shortly"),
            ),
        };
        tracing::warn!(%service, error = %e, "a GraphQL field's service failed");
        Error::new(message).extend_with(|_, ext| {
            ext.set("code", code);
            ext.set("service", service.name());
        })
    }
}

fn upstreams<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Upstreams> {
    ctx.data::<Upstreams>()
}

pub struct Query;

#[Object]
impl Query {
    /// Every product, with its price and the stock no reservation holds.
    async fn products(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<ProductView>> {
        let list = upstreams(ctx)?
            .inventory
            .products()
            .await
            .map_err(upstream_error(Service::Inventory))?;
        Ok(list.into_iter().map(ProductView::from).collect())
    }

    /// A customer's orders as the read model has them (it follows the orders feed, so a
    /// new order appears within moments).
    #[graphql(complexity = "10 * child_complexity")]
    async fn customer_orders(
        &self,
        ctx: &Context<'_>,
        customer_id: String,
    ) -> async_graphql::Result<Vec<CustomerOrder>> {
        let list = upstreams(ctx)?
            .history
            .customer_orders(&customer_id)
            .await
            .map_err(upstream_error(Service::OrderHistory))?;
        Ok(list.into_iter().map(CustomerOrder).collect())
    }

    /// One order; null when the read model has none by that ID.
    async fn order(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Option<CustomerOrder>> {
        match upstreams(ctx)?.history.history(&id).await {
            Ok(h) => Ok(Some(CustomerOrder(h.order))),
            Err(e) if e.refused_status() == Some(404) => Ok(None),
            Err(e) => Err(upstream_error(Service::OrderHistory)(e)),
        }
    }
}

/// A product as the page lists it.
#[derive(SimpleObject)]
#[graphql(name = "Product")]
pub struct ProductView {
    pub sku: String,
    pub name: String,
    pub price_cents: i64,
    /// The price as the page shows it, e.g. `34.13`.
    pub price: String,
    pub stock: i64,
    pub in_stock: bool,
}

impl From<Product> for ProductView {
    fn from(p: Product) -> Self {
        Self {
            price: format_cents(p.price_cents),
            in_stock: p.stock > 0,
            price_cents: p.price_cents,
            stock: p.stock,
            sku: p.sku,
            name: p.name,
        }
    }
}

/// A line of an order.
#[derive(SimpleObject)]
pub struct OrderLine {
    pub sku: String,
    pub quantity: i64,
}

/// A payment authorization of an order.
#[derive(SimpleObject)]
pub struct Payment {
    pub id: ID,
    /// `authorized`, `declined` or `refunded`.
    pub status: String,
    pub amount_cents: i64,
    /// Why it was declined, when it was.
    pub reason: Option<String>,
}

impl From<Authorization> for Payment {
    fn from(a: Authorization) -> Self {
        Self {
            id: ID(a.id),
            status: a.status.as_str().to_string(),
            amount_cents: a.amount_cents,
            reason: a.reason,
        }
    }
}

/// An order as the page shows it.
pub struct CustomerOrder(OrderView);

/// An order as the page shows it.
#[Object(name = "Order")]
impl CustomerOrder {
    async fn id(&self) -> ID {
        ID(self.0.order_id.clone())
    }

    async fn customer_id(&self) -> &str {
        &self.0.customer_id
    }

    /// Where the order's saga is: `pending`, `confirmed`, `cancelled`, `rejected`, ...
    async fn status(&self) -> &str {
        self.0.status.as_str()
    }

    async fn total_cents(&self) -> i64 {
        self.0.total_cents
    }

    /// The total as the page shows it, e.g. `29.00`.
    async fn total(&self) -> String {
        format_cents(self.0.total_cents)
    }

    async fn items(&self) -> Vec<OrderLine> {
        self.0
            .items
            .iter()
            .map(|i| OrderLine {
                sku: i.sku.clone(),
                quantity: i.quantity,
            })
            .collect()
    }

    /// The order's payment authorizations, oldest first (asks payments).
    #[graphql(complexity = "5 + child_complexity")]
    async fn payments(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Payment>> {
        let list = upstreams(ctx)?
            .payments
            .of_order(&self.0.order_id)
            .await
            .map_err(upstream_error(Service::Payments))?;
        Ok(list.into_iter().map(Payment::from).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checked-in SDL is the schema's: regenerate it with
    /// `GAUNTLET_WRITE_SDL=1 cargo test -p gauntlet-demo-system the_checked_in_sdl`.
    #[test]
    fn the_checked_in_sdl_is_the_schemas() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/web_bff/schema.graphql");
        let sdl = sdl();
        if std::env::var_os("GAUNTLET_WRITE_SDL").is_some() {
            std::fs::write(&path, &sdl).expect("write the SDL");
        }
        let checked_in = std::fs::read_to_string(&path).expect("schema.graphql is checked in");
        assert_eq!(
            checked_in, sdl,
            "the schema changed: run with GAUNTLET_WRITE_SDL=1 and commit schema.graphql"
        );
    }

    #[test]
    fn limits_below_any_query_are_refused() {
        assert!(WebBffConfig::default().check().is_ok());
        let shallow = WebBffConfig {
            max_depth: 1,
            ..WebBffConfig::default()
        };
        assert!(
            shallow
                .check()
                .expect_err("too shallow")
                .contains("max_depth (1)")
        );
    }
}
