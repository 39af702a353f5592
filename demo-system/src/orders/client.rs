//! The orders service's typed client: what the gateway calls it with, and what reads its
//! event feed.

use super::api::{Order, OrderStream, PlaceOrder};
use crate::platform::client::{Answer, ClientError, HttpClient, escape};

#[derive(Clone, Debug)]
pub struct OrdersClient {
    http: HttpClient,
}

impl OrdersClient {
    pub fn new(http: HttpClient) -> Self {
        Self { http }
    }

    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    /// Places an order: `201` when its saga finished (confirmed, cancelled or rejected),
    /// `202` while it waits for a dependency, `200` for a repeated idempotency key. Retried
    /// only with a key.
    pub async fn place(
        &self,
        req: &PlaceOrder,
        idempotency_key: Option<&str>,
    ) -> Result<Answer<Order>, ClientError> {
        self.http.post("/orders", req, idempotency_key).await
    }

    /// A customer's orders, oldest first.
    pub async fn of_customer(&self, customer_id: &str) -> Result<Vec<Order>, ClientError> {
        self.http
            .get(&format!("/orders?customer_id={}", escape(customer_id)))
            .await
    }

    pub async fn order(&self, id: &str) -> Result<Order, ClientError> {
        self.http.get(&format!("/orders/{}", escape(id))).await
    }

    /// The order's stream of events and the order it makes.
    pub async fn events(&self, id: &str) -> Result<OrderStream, ClientError> {
        self.http
            .get(&format!("/orders/{}/events", escape(id)))
            .await
    }
}
