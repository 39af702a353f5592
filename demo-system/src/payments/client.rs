//! The payments service's typed client: what the orders saga calls it with, and the
//! gateway's order details read.

use super::api::{Authorization, AuthorizeRequest};
use crate::platform::client::{ClientError, HttpClient, escape};
use crate::platform::resilience::Call;

#[derive(Clone, Debug)]
pub struct PaymentsClient {
    http: HttpClient,
}

impl PaymentsClient {
    pub fn new(http: HttpClient) -> Self {
        Self { http }
    }

    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    /// Asks for an authorization. A decline (`402`) is an answer, not an error: the
    /// authorization comes back with status `declined` and its reason.
    pub async fn authorize(
        &self,
        req: &AuthorizeRequest,
        idempotency_key: Option<&str>,
    ) -> Result<Authorization, ClientError> {
        let call = Call::post("/payments/authorizations", req, idempotency_key)
            .map_err(|e| ClientError::Encode(e.to_string()))?;
        let reply = self.http.reply(call).await?;
        if reply.status == 402 {
            return Ok(self.http.decode(&reply)?.body);
        }
        Ok(self.http.answer(&reply)?.body)
    }

    pub async fn authorization(&self, id: &str) -> Result<Authorization, ClientError> {
        self.http
            .get(&format!("/payments/authorizations/{}", escape(id)))
            .await
    }

    /// The authorizations of one order, oldest first (none: an empty list).
    pub async fn of_order(&self, order_id: &str) -> Result<Vec<Authorization>, ClientError> {
        self.http
            .get(&format!(
                "/payments/authorizations?order_id={}",
                escape(order_id)
            ))
            .await
    }

    /// Refunds an authorization (idempotent: a second refund answers as the first).
    pub async fn refund(
        &self,
        id: &str,
        idempotency_key: Option<&str>,
    ) -> Result<Authorization, ClientError> {
        Ok(self
            .http
            .post(
                &format!("/payments/authorizations/{}/refund", escape(id)),
                &serde_json::json!({}),
                idempotency_key,
            )
            .await?
            .body)
    }
}
