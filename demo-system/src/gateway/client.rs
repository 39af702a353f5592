//! The gateway's typed client: what the demo's traffic, load scenarios and tests use.

use super::api::{Credentials, OrderDetails, TokenResponse};
use crate::inventory::Product;
use crate::mobile_bff::{MobileOrder, MobileProduct};
use crate::order_history::OrderView;
use crate::orders::{Order, PlaceOrder};
use crate::platform::client::{Answer, ClientError, HttpClient, escape};
use crate::platform::resilience::{Call, ConfigError, ResilienceConfig};
use crate::web_bff::{GraphQlRequest, GraphQlResponse};

#[derive(Clone, Debug)]
pub struct GatewayClient {
    http: HttpClient,
}

impl GatewayClient {
    pub fn new(http: HttpClient) -> Self {
        Self { http }
    }

    /// A client of the gateway at `base_url`, as an outside caller would be: no breaker and
    /// no retries of its own, a generous timeout.
    pub fn at(base_url: &str) -> Result<Self, ConfigError> {
        let mut config = ResilienceConfig::default();
        config.circuit_breaker.enabled = false;
        config.retry.enabled = false;
        config.timeout_ms = 30_000;
        Ok(Self::new(HttpClient::at("gateway", base_url, &config)?))
    }

    /// The same client, sending `X-Correlation-ID: id` on every call.
    pub fn with_correlation_id(&self, id: &str) -> Self {
        Self::new(self.http.with_header("x-correlation-id", id))
    }

    /// The same client, authenticated with `token`.
    pub fn with_token(&self, token: &str) -> Self {
        Self::new(
            self.http
                .with_header("authorization", &format!("Bearer {token}")),
        )
    }

    pub async fn token(&self, credentials: &Credentials) -> Result<TokenResponse, ClientError> {
        Ok(self.http.post("/api/token", credentials, None).await?.body)
    }

    pub async fn products(&self) -> Result<Vec<Product>, ClientError> {
        self.http.get("/api/products").await
    }

    /// Places an order (needs [`GatewayClient::with_token`]); the status says whether its
    /// saga finished (`201`), waits (`202`), or the key was seen before (`200`).
    pub async fn place_order(
        &self,
        order: &PlaceOrder,
        idempotency_key: Option<&str>,
    ) -> Result<Answer<Order>, ClientError> {
        self.http.post("/api/orders", order, idempotency_key).await
    }

    pub async fn order(&self, id: &str) -> Result<Order, ClientError> {
        self.http.get(&format!("/api/orders/{}", escape(id))).await
    }

    /// The order composed with its reservation, payments and notifications; a part that
    /// did not come in time is named in `missing`.
    pub async fn order_details(&self, id: &str) -> Result<OrderDetails, ClientError> {
        self.http
            .get(&format!("/api/orders/{}/details", escape(id)))
            .await
    }

    pub async fn customer_orders(&self, customer_id: &str) -> Result<Vec<OrderView>, ClientError> {
        self.http
            .get(&format!("/api/customers/{}/orders", escape(customer_id)))
            .await
    }

    pub async fn mobile_products(&self) -> Result<Vec<MobileProduct>, ClientError> {
        self.http.get("/mobile/products").await
    }

    pub async fn mobile_order(&self, id: &str) -> Result<MobileOrder, ClientError> {
        self.http
            .get(&format!("/mobile/orders/{}", escape(id)))
            .await
    }

    /// A GraphQL query for the web BFF, answered whatever its status (a refused query's
    /// answer is its errors).
    pub async fn graphql(&self, req: &GraphQlRequest) -> Result<GraphQlResponse, ClientError> {
        let call =
            Call::post("/graphql", req, None).map_err(|e| ClientError::Encode(e.to_string()))?;
        let reply = self.http.reply(call).await?;
        Ok(self.http.decode(&reply)?.body)
    }
}
