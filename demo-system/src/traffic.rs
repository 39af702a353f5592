//! The short burst of realistic traffic `gauntlet demo` sends through the gateway: browsing,
//! orders that go through, one declined payment (a lamp costs 34.13) and one order larger
//! than the stock. Bounded in count; loopback only, like everything the demo starts.

use std::collections::BTreeMap;

use serde_json::{Value, json};

#[derive(Debug, thiserror::Error)]
pub enum TrafficError {
    #[error("the gateway at {url} did not answer: {reason}")]
    Gateway { url: String, reason: String },
}

/// What the burst did: requests by kind, and orders by final status.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub product_views: u32,
    pub orders: BTreeMap<String, u32>,
    pub correlation_ids: Vec<String>,
}

pub async fn burst(gateway: &str) -> Result<Report, TrafficError> {
    let http = reqwest::Client::new();
    let err = |e: reqwest::Error| TrafficError::Gateway {
        url: gateway.to_string(),
        reason: e.to_string(),
    };
    let token: Value = http
        .post(format!("{gateway}/api/token"))
        .json(&json!({"username": "demo", "password": "demo"}))
        .send()
        .await
        .map_err(err)?
        .json()
        .await
        .map_err(err)?;
    let token = token["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut report = Report::default();
    for _ in 0..10 {
        if http
            .get(format!("{gateway}/api/products"))
            .send()
            .await
            .map_err(err)?
            .status()
            .is_success()
        {
            report.product_views += 1;
        }
    }
    let orders = [
        ("customer-1", "SKU-MOUSE", 1),
        ("customer-1", "SKU-CABLE", 3),
        ("customer-2", "SKU-KEYBOARD", 1),
        ("customer-3", "SKU-LAMP", 1),
        ("customer-2", "SKU-MONITOR", 500),
    ];
    for (i, (customer, sku, quantity)) in orders.into_iter().enumerate() {
        let correlation = format!("demo-order-{}-{}", std::process::id(), i + 1);
        let resp = http
            .post(format!("{gateway}/api/orders"))
            .bearer_auth(&token)
            .header("x-correlation-id", &correlation)
            .header("idempotency-key", &correlation)
            .json(&json!({"customer_id": customer, "items": [{"sku": sku, "quantity": quantity}]}))
            .send()
            .await
            .map_err(err)?;
        let status_code = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        let outcome = body["status"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| format!("HTTP {status_code}"));
        *report.orders.entry(outcome).or_insert(0) += 1;
        report.correlation_ids.push(correlation);
    }
    Ok(report)
}
