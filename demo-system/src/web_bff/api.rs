//! The web BFF's wire types: GraphQL over HTTP, as the gateway forwards it and clients
//! send it, and the rule for which media type and status an answer has.

use async_graphql::ServerError;
use serde::{Deserialize, Serialize};

/// A GraphQL request (`POST /graphql`, `application/json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GraphQlRequest {
    pub query: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation_name: Option<String>,
    /// The operation's variables, as the client sent them; the schema checks their types.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variables: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<serde_json::Value>,
}

/// A GraphQL answer. `data` is absent when the request itself was refused (it did not
/// parse, named an unknown field, or went past the depth or complexity limit: nothing was
/// asked of any service), and `null` or partial when fields failed (each error with its
/// `path`). Errors carry `locations` in the query where they apply.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GraphQlResponse {
    /// Absent (`None`) or present, `null` included (`Some(Value::Null)`): the two mean
    /// different things.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub data: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ServerError>,
}

/// A field that is there, even as `null` (serde reads a present `null` as `None`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

impl GraphQlResponse {
    /// A request refused before it ran, with one message.
    pub fn refused(message: impl Into<String>) -> Self {
        Self {
            data: None,
            errors: vec![ServerError::new(message, None)],
        }
    }

    /// Whether this answers a request refused before it ran (no `data` at all).
    pub fn is_request_error(&self) -> bool {
        self.data.is_none() && !self.errors.is_empty()
    }
}

/// The media type of an answer, as the client's `Accept` asks (GraphQL over HTTP): the
/// newer `application/graphql-response+json` lets the status say that a request was
/// refused (400); plain `application/json`, which older clients ask for, is always 200
/// for a request that was read. One rule for the web BFF and the gateway in front of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphQlMedia {
    Json,
    GraphQlResponseJson,
}

impl GraphQlMedia {
    pub const GRAPHQL_RESPONSE_JSON: &'static str = "application/graphql-response+json";

    /// What a client accepting `accept` gets: the newer type when it names it, else JSON.
    pub fn negotiate(accept: Option<&str>) -> Self {
        match accept {
            Some(a) if a.contains(Self::GRAPHQL_RESPONSE_JSON) => Self::GraphQlResponseJson,
            _ => Self::Json,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::GraphQlResponseJson => Self::GRAPHQL_RESPONSE_JSON,
        }
    }

    /// The status of `response` in this media type.
    pub fn status(self, response: &GraphQlResponse) -> u16 {
        match self {
            Self::GraphQlResponseJson if response.is_request_error() => 400,
            _ => 200,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_newer_media_type_turns_a_refusal_into_a_400() {
        let refused = GraphQlResponse::refused("no");
        let partial = GraphQlResponse {
            data: Some(serde_json::Value::Null),
            errors: refused.errors.clone(),
        };
        let new = GraphQlMedia::negotiate(Some("application/graphql-response+json, */*"));
        let old = GraphQlMedia::negotiate(Some("application/json"));
        assert_eq!(GraphQlMedia::negotiate(None), GraphQlMedia::Json);
        assert_eq!((new.status(&refused), new.status(&partial)), (400, 200));
        assert_eq!((old.status(&refused), old.status(&partial)), (200, 200));
        let body = serde_json::to_value(&refused).expect("serializes");
        assert_eq!(body, serde_json::json!({"errors": [{"message": "no"}]}));
        for answer in [refused, partial] {
            let text = serde_json::to_string(&answer).expect("serializes");
            let back: GraphQlResponse = serde_json::from_str(&text).expect("reads");
            assert_eq!(back, answer, "{text}");
        }
    }
}
