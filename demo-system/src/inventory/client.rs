//! The inventory service's typed client: what the gateway and the orders saga call it with.

use super::api::{Product, Reservation, ReserveRequest};
use crate::platform::client::{Answer, ClientError, HttpClient, escape};

#[derive(Clone, Debug)]
pub struct InventoryClient {
    http: HttpClient,
}

impl InventoryClient {
    pub fn new(http: HttpClient) -> Self {
        Self { http }
    }

    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    pub async fn products(&self) -> Result<Vec<Product>, ClientError> {
        self.http.get("/products").await
    }

    pub async fn product(&self, sku: &str) -> Result<Product, ClientError> {
        self.http.get(&format!("/products/{}", escape(sku))).await
    }

    /// Reserves stock; `201` when new, `200` when the same reservation was made before.
    pub async fn reserve(&self, req: &ReserveRequest) -> Result<Answer<Reservation>, ClientError> {
        self.http
            .post("/reservations", req, Some(&req.reservation_id))
            .await
    }

    pub async fn reservation(&self, id: &str) -> Result<Reservation, ClientError> {
        self.http
            .get(&format!("/reservations/{}", escape(id)))
            .await
    }

    pub async fn confirm(&self, id: &str) -> Result<Reservation, ClientError> {
        self.settle(id, "confirm").await
    }

    pub async fn release(&self, id: &str) -> Result<Reservation, ClientError> {
        self.settle(id, "release").await
    }

    async fn settle(&self, id: &str, action: &str) -> Result<Reservation, ClientError> {
        // Idempotent on the reservation ID: safe to retry.
        Ok(self
            .http
            .post(
                &format!("/reservations/{}/{action}", escape(id)),
                &serde_json::json!({}),
                Some(id),
            )
            .await?
            .body)
    }
}
