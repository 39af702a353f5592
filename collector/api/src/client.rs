//! A typed client of the query API, for the tools that read it (chaos probes, contract
//! drift): each call takes a query's parameters type and answers the route's answer type.

use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::correlation::Timeline;
use crate::dependencies::Dependencies;
use crate::jaeger::Trace;
use crate::logs::LogPage;
use crate::markers::{Marker, Markers};
use crate::params::{
    DependenciesQuery, LogsQuery, MarkersQuery, QueryParams, RedQuery, RequestsQuery,
    TimelineQuery, TraceSearch, TracesQuery,
};
use crate::red::Red;
use crate::requests::ServedRequests;
use crate::{Envelope, ErrorBody};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the collector at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the collector at {url} answered {status}: {message}")]
    Refused {
        url: String,
        status: u16,
        message: String,
    },
    #[error("the collector at {url} answered what is not its query API's JSON: {reason}")]
    Unexpected { url: String, reason: String },
}

/// The query API of one collector.
#[derive(Debug, Clone)]
pub struct QueryClient {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl QueryClient {
    /// `base` is the query API's URL (`http://127.0.0.1:16686`); `token` the bearer token of a
    /// collector started with `--auth-token`. Calls time out after `timeout`.
    pub fn new(base: &str, token: Option<String>, timeout: Duration) -> Self {
        Self {
            base: base.trim_end_matches('/').to_string(),
            token,
            http: reqwest::Client::builder()
                .timeout(timeout)
                .build()
                .unwrap_or_default(),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&'static str, String)],
    ) -> Result<T, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.get(&url).query(query);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let unreachable = |e: reqwest::Error| ClientError::Unreachable {
            url: url.clone(),
            reason: e.to_string(),
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let body = response.bytes().await.map_err(unreachable)?;
        if !status.is_success() {
            let message = serde_json::from_slice::<ErrorBody>(&body)
                .map(|e| e.message().to_string())
                .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
            return Err(ClientError::Refused {
                url,
                status: status.as_u16(),
                message,
            });
        }
        serde_json::from_slice(&body).map_err(|e| ClientError::Unexpected {
            url,
            reason: e.to_string(),
        })
    }

    /// `GET /api/traces`: the traces a search finds.
    pub async fn traces(&self, search: &TraceSearch) -> Result<Vec<Trace>, ClientError> {
        let query = TracesQuery::Search(search.clone()).to_pairs();
        let answer: Envelope<Vec<Trace>> = self.get("/api/traces", &query).await?;
        Ok(answer.data)
    }

    /// `GET /api/traces/{id}`.
    pub async fn trace(&self, trace_id: &str) -> Result<Trace, ClientError> {
        let path = format!("/api/traces/{trace_id}");
        let answer: Envelope<Vec<Trace>> = self.get(&path, &[]).await?;
        answer
            .data
            .into_iter()
            .next()
            .ok_or_else(|| ClientError::Unexpected {
                url: format!("{}{path}", self.base),
                reason: "no trace in the answer".into(),
            })
    }

    /// `GET /api/v1/query`: a PromQL expression's value at `time` (Unix seconds; now when
    /// `None`). Prometheus' own error answers (`bad_data`, `execution`) become `Refused`
    /// with their message.
    pub async fn promql(
        &self,
        query: &str,
        time: Option<f64>,
    ) -> Result<crate::prometheus::QueryData, ClientError> {
        use crate::prometheus::PromResponse;
        let url = format!("{}/api/v1/query", self.base);
        let mut params = vec![("query", query.to_string())];
        if let Some(t) = time {
            params.push(("time", format!("{t:.3}")));
        }
        let mut request = self.http.get(&url).query(&params);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let unreachable = |e: reqwest::Error| ClientError::Unreachable {
            url: url.clone(),
            reason: e.to_string(),
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(unreachable)?;
        match serde_json::from_slice::<PromResponse<crate::prometheus::QueryData>>(&body) {
            Ok(PromResponse::Success { data, .. }) => Ok(data),
            Ok(PromResponse::Error { error, .. }) => Err(ClientError::Refused {
                url,
                status,
                message: error,
            }),
            Err(e) => Err(ClientError::Unexpected {
                url,
                reason: format!("HTTP {status}: {e}"),
            }),
        }
    }

    /// `GET /api/services`.
    pub async fn services(&self) -> Result<Vec<String>, ClientError> {
        let answer: Envelope<Vec<String>> = self.get("/api/services", &[]).await?;
        Ok(answer.data)
    }

    pub async fn logs(&self, query: &LogsQuery) -> Result<LogPage, ClientError> {
        self.get("/api/v1/logs", &query.to_pairs()).await
    }

    pub async fn timeline(
        &self,
        correlation_id: &str,
        query: &TimelineQuery,
    ) -> Result<Timeline, ClientError> {
        let path = format!("/api/v1/correlations/{correlation_id}");
        self.get(&path, &query.to_pairs()).await
    }

    pub async fn red(&self, query: &RedQuery) -> Result<Red, ClientError> {
        self.get("/api/v1/red", &query.to_pairs()).await
    }

    pub async fn requests(&self, query: &RequestsQuery) -> Result<ServedRequests, ClientError> {
        self.get("/api/v1/requests", &query.to_pairs()).await
    }

    pub async fn dependencies(
        &self,
        query: &DependenciesQuery,
    ) -> Result<Dependencies, ClientError> {
        self.get("/api/dependencies", &query.to_pairs()).await
    }

    pub async fn markers(&self, query: &MarkersQuery) -> Result<Vec<Marker>, ClientError> {
        let answer: Markers = self.get("/api/v1/markers", &query.to_pairs()).await?;
        Ok(answer.data)
    }
}
