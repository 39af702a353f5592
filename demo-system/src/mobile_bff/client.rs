//! The mobile BFF's typed client: what the gateway passes the app's `/mobile/...` requests
//! on with.

use super::api::{MobileOrder, MobileProduct};
use crate::platform::client::{ClientError, HttpClient, escape};

#[derive(Clone, Debug)]
pub struct MobileBffClient {
    http: HttpClient,
}

impl MobileBffClient {
    pub fn new(http: HttpClient) -> Self {
        Self { http }
    }

    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    pub async fn products(&self) -> Result<Vec<MobileProduct>, ClientError> {
        self.http.get("/mobile/products").await
    }

    /// An order as the app shows it; an unknown order is a refusal (404).
    pub async fn order(&self, id: &str) -> Result<MobileOrder, ClientError> {
        self.http
            .get(&format!("/mobile/orders/{}", escape(id)))
            .await
    }
}
