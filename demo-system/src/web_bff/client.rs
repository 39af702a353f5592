//! The web BFF's typed client: how the gateway passes a page's GraphQL request on, as it
//! came, and relays the answer with its status.

use super::api::GraphQlResponse;
use crate::platform::client::{ClientError, HttpClient};
use crate::platform::resilience::{Call, Reply};

#[derive(Clone, Debug)]
pub struct WebBffClient {
    http: HttpClient,
}

impl WebBffClient {
    pub fn new(http: HttpClient) -> Self {
        Self { http }
    }

    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    /// Sends a GraphQL request body as it came, with the client's `Accept`; any answer
    /// below 500 comes back as it is (a refused query is an answer to relay). The schema
    /// has queries only, so the call is safe to retry.
    pub async fn forward(
        &self,
        body: bytes::Bytes,
        accept: Option<&str>,
    ) -> Result<Reply, ClientError> {
        let mut call = Call::get("/graphql");
        call.method = reqwest::Method::POST;
        call.body = Some(body);
        if let Some(accept) = accept {
            call.headers.push(("accept".into(), accept.into()));
        }
        self.http.reply(call).await
    }

    /// Sends `body` and reads the answer, whatever its status.
    pub async fn query(
        &self,
        body: &super::GraphQlRequest,
    ) -> Result<GraphQlResponse, ClientError> {
        let encoded = serde_json::to_vec(body).map_err(|e| ClientError::Encode(e.to_string()))?;
        let reply = self.forward(encoded.into(), None).await?;
        Ok(self.http.decode(&reply)?.body)
    }
}
