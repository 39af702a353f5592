//! The notifications service's typed client.

use super::api::{Notification, NotificationQuery, StockAlert};
use crate::platform::client::{ClientError, HttpClient, escape};

#[derive(Clone, Debug)]
pub struct NotificationsClient {
    http: HttpClient,
}

impl NotificationsClient {
    pub fn new(http: HttpClient) -> Self {
        Self { http }
    }

    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    /// The notifications recorded: all, or those of one order or customer.
    pub async fn list(&self, q: &NotificationQuery) -> Result<Vec<Notification>, ClientError> {
        let filters: Vec<String> = [("order_id", &q.order_id), ("customer_id", &q.customer_id)]
            .into_iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", escape(v))))
            .collect();
        if filters.is_empty() {
            self.http.get("/notifications").await
        } else {
            self.http
                .get(&format!("/notifications?{}", filters.join("&")))
                .await
        }
    }

    /// The alerts the stock team was sent, oldest first.
    pub async fn stock_alerts(&self) -> Result<Vec<StockAlert>, ClientError> {
        self.http.get("/stock-alerts").await
    }
}
