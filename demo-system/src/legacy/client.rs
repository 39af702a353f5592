//! The legacy shop's typed client: what the gateway calls it with for the routes not yet
//! moved to the new services.

use super::api::{ShopCatalogue, ShopOrder};
use crate::platform::client::{ClientError, HttpClient, escape};

#[derive(Clone, Debug)]
pub struct LegacyClient {
    http: HttpClient,
}

impl LegacyClient {
    pub fn new(http: HttpClient) -> Self {
        Self { http }
    }

    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    pub async fn catalogue(&self) -> Result<ShopCatalogue, ClientError> {
        self.http.get("/shop/products").await
    }

    pub async fn order(&self, number: &str) -> Result<ShopOrder, ClientError> {
        self.http
            .get(&format!("/shop/orders/{}", escape(number)))
            .await
    }
}
