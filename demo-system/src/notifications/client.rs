//! The notifications service's typed client.

use super::api::Notification;
use crate::platform::client::{ClientError, HttpClient, escape};

#[derive(Clone, Debug)]
pub struct NotificationsClient {
    http: HttpClient,
}

impl NotificationsClient {
    pub fn new(http: HttpClient) -> Self {
        Self { http }
    }

    /// The notifications recorded, for one order or all.
    pub async fn list(&self, order_id: Option<&str>) -> Result<Vec<Notification>, ClientError> {
        match order_id {
            Some(id) => {
                self.http
                    .get(&format!("/notifications?order_id={}", escape(id)))
                    .await
            }
            None => self.http.get("/notifications").await,
        }
    }
}
