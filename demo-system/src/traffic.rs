//! The short burst of realistic traffic `gauntlet demo` sends through the gateway, with the
//! gateway's typed client: browsing, orders that go through, one declined payment (a lamp
//! costs 34.13) and one order larger than the stock, each order's details read back, then
//! the web page's GraphQL query and the mobile app's product list for three customers.
//! Bounded in count; loopback only, like everything the demo starts.

use serde::Serialize;

use crate::gateway::{Credentials, GatewayClient};
use crate::orders::{Item, OrderStatus, PlaceOrder};
use crate::platform::client::ClientError;
use crate::platform::resilience::ConfigError;
use crate::web_bff::GraphQlRequest;

#[derive(Debug, thiserror::Error)]
pub enum TrafficError {
    #[error("the gateway at {url} failed: {source}")]
    Gateway {
        url: String,
        #[source]
        source: ClientError,
    },
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// What an order of the burst is meant to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    /// An order that goes through.
    Confirmed,
    /// A payment the decline rule refuses: the saga compensates.
    Declined,
    /// More than the stock: rejected, nothing to undo.
    OutOfStock,
}

/// The orders of the burst: (intent, customer, sku, quantity).
pub const ORDERS: [(Intent, &str, &str, i64); 5] = [
    (Intent::Confirmed, "customer-1", "SKU-MOUSE", 1),
    (Intent::Confirmed, "customer-1", "SKU-CABLE", 3),
    (Intent::Confirmed, "customer-2", "SKU-KEYBOARD", 1),
    (Intent::Declined, "customer-3", "SKU-LAMP", 1),
    (Intent::OutOfStock, "customer-2", "SKU-MONITOR", 500),
];

/// One order of the burst and how it ended.
#[derive(Debug, Clone, Serialize)]
pub struct OrderOutcome {
    pub intent: Intent,
    pub correlation_id: String,
    /// The order's final state, or the error that stopped it.
    pub outcome: Result<OrderStatus, String>,
}

/// What the burst did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Report {
    pub product_views: u32,
    pub orders: Vec<OrderOutcome>,
    /// Orders whose details (composed from four services) were read back.
    pub details_views: u32,
    /// Web pages (one GraphQL query to the web BFF each) answered without errors.
    pub page_views: u32,
    /// Product lists the mobile app got (through the mobile BFF).
    pub mobile_views: u32,
}

/// What the shop's web page asks the web BFF for a customer: the products and their
/// orders with their payments.
pub const PAGE_QUERY: &str = "query Page($customer: String!) { products { sku price inStock } \
    customerOrders(customerId: $customer) { id status total payments { status } } }";

impl Report {
    /// The correlation ID of the first order sent with `intent`.
    pub fn correlation_of(&self, intent: Intent) -> Option<&str> {
        self.orders
            .iter()
            .find(|o| o.intent == intent)
            .map(|o| o.correlation_id.as_str())
    }

    /// Orders by how they ended, e.g. `confirmed: 3, cancelled: 1, rejected: 1`.
    pub fn summary(&self) -> String {
        let mut counts = std::collections::BTreeMap::<String, u32>::new();
        for o in &self.orders {
            let key = match &o.outcome {
                Ok(s) => s.as_str().to_string(),
                Err(_) => "failed".to_string(),
            };
            *counts.entry(key).or_default() += 1;
        }
        counts
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

pub async fn burst(gateway: &str) -> Result<Report, TrafficError> {
    let failed = |source| TrafficError::Gateway {
        url: gateway.to_string(),
        source,
    };
    let client = GatewayClient::at(gateway)?;
    let token = client
        .token(&Credentials {
            username: "demo".into(),
            password: "demo".into(),
        })
        .await
        .map_err(failed)?;
    let authed = client.with_token(&token.access_token);
    let mut report = Report::default();
    for _ in 0..10 {
        if client.products().await.is_ok() {
            report.product_views += 1;
        }
    }
    for (i, (intent, customer, sku, quantity)) in ORDERS.into_iter().enumerate() {
        let correlation_id = format!("demo-order-{}-{}", std::process::id(), i + 1);
        let order = PlaceOrder {
            customer_id: customer.into(),
            items: vec![Item {
                sku: sku.into(),
                quantity,
            }],
        };
        let client = authed.with_correlation_id(&correlation_id);
        let placed = client.place_order(&order, Some(&correlation_id)).await;
        if let Ok(placed) = &placed
            && client.order_details(&placed.body.id).await.is_ok()
        {
            report.details_views += 1;
        }
        let outcome = placed
            .map(|placed| placed.body.status)
            .map_err(|e| e.to_string());
        report.orders.push(OrderOutcome {
            intent,
            correlation_id,
            outcome,
        });
    }
    for customer in ["customer-1", "customer-2", "customer-3"] {
        let page = GraphQlRequest {
            query: PAGE_QUERY.into(),
            operation_name: Some("Page".into()),
            variables: Some(serde_json::json!({ "customer": customer })),
            extensions: None,
        };
        if client
            .graphql(&page)
            .await
            .is_ok_and(|answer| answer.errors.is_empty())
        {
            report.page_views += 1;
        }
        if client.mobile_products().await.is_ok() {
            report.mobile_views += 1;
        }
    }
    Ok(report)
}
