//! OTLP/HTTP error responses: every 4xx/5xx body is a google.rpc.Status, encoded like the
//! request (protobuf or JSON), with `Retry-After` on the retryable ones.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prost::Message;
use serde::Serialize;

/// How the request was encoded, and so how the response must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Protobuf,
    Json,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Protobuf => "application/x-protobuf",
            Self::Json => "application/json",
        }
    }
}

/// An HTTP status with its google.rpc code and a message a person can act on.
#[derive(Debug, Clone)]
pub struct RpcError {
    pub http: StatusCode,
    pub code: tonic::Code,
    pub message: String,
    pub retry_after: Option<Duration>,
}

impl RpcError {
    pub fn new(http: StatusCode, code: tonic::Code, message: impl Into<String>) -> Self {
        Self {
            http,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            tonic::Code::InvalidArgument,
            message,
        )
    }

    pub fn retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    pub fn into_response(self, format: Format) -> Response {
        #[derive(Serialize)]
        struct JsonStatus<'a> {
            code: i32,
            message: &'a str,
            details: [(); 0],
        }
        let body = match format {
            Format::Protobuf => tonic_types::pb::Status {
                code: self.code as i32,
                message: self.message.clone(),
                details: Vec::new(),
            }
            .encode_to_vec(),
            Format::Json => serde_json::to_vec(&JsonStatus {
                code: self.code as i32,
                message: &self.message,
                details: [],
            })
            .unwrap_or_default(),
        };
        let mut resp = (
            self.http,
            [(header::CONTENT_TYPE, format.content_type())],
            body,
        )
            .into_response();
        if let Some(after) = self.retry_after {
            let secs = after.as_secs().max(1).to_string();
            if let Ok(v) = HeaderValue::from_str(&secs) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}
