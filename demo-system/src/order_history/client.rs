//! The order-history service's typed client: what the gateway calls it with.

use super::api::{OrderHistoryView, OrderView};
use crate::platform::client::{ClientError, HttpClient, escape};

#[derive(Clone, Debug)]
pub struct OrderHistoryClient {
    http: HttpClient,
}

impl OrderHistoryClient {
    pub fn new(http: HttpClient) -> Self {
        Self { http }
    }

    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    pub async fn history(&self, order_id: &str) -> Result<OrderHistoryView, ClientError> {
        self.http
            .get(&format!("/orders/{}/history", escape(order_id)))
            .await
    }

    pub async fn customer_orders(&self, customer_id: &str) -> Result<Vec<OrderView>, ClientError> {
        self.http
            .get(&format!("/customers/{}/orders", escape(customer_id)))
            .await
    }
}
