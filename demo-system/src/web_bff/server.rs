//! The web BFF's routes: `POST /graphql` (GraphQL over HTTP: a JSON body with `query`,
//! `operationName` and `variables`) and `GET /graphql/schema` (the SDL). A body that is not
//! a GraphQL request is a 400 in the GraphQL error shape; a query that does not parse,
//! names an unknown field or goes past the limits is refused with the errors' locations,
//! before any service is asked ([`GraphQlMedia`] says with which status).

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::api::{GraphQlMedia, GraphQlRequest, GraphQlResponse};
use super::schema::{Upstreams, WebBffConfig, WebSchema, schema, sdl};
use crate::platform::http::stateless_router;
use crate::registry::RegistryClient;

/// The web BFF: its schema, resolving from its upstreams.
#[derive(Clone)]
pub struct WebBff {
    schema: WebSchema,
    upstreams: Upstreams,
}

impl std::fmt::Debug for WebBff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebBff")
    }
}

impl WebBff {
    pub fn new(upstreams: Upstreams, config: &WebBffConfig) -> Self {
        Self {
            schema: schema(upstreams.clone(), config),
            upstreams,
        }
    }

    /// Runs one GraphQL request.
    pub async fn execute(&self, req: GraphQlRequest) -> GraphQlResponse {
        let span = tracing::Span::current();
        span.set_attribute("graphql.operation.type", "query");
        if let Some(name) = &req.operation_name {
            span.set_attribute("graphql.operation.name", name.clone());
        }
        let mut request = async_graphql::Request::new(req.query);
        if let Some(name) = req.operation_name {
            request = request.operation_name(name);
        }
        match req.variables {
            None | Some(serde_json::Value::Null) => {}
            Some(v @ serde_json::Value::Object(_)) => {
                request = request.variables(async_graphql::Variables::from_json(v));
            }
            Some(_) => return GraphQlResponse::refused("variables must be a JSON object"),
        }
        let response = self.schema.execute(request).await;
        // Errors without a path are the request's own (parse, validation, limits): no
        // field ran, so there is no `data` to send.
        let refused = response.data == async_graphql::Value::Null
            && !response.errors.is_empty()
            && response.errors.iter().all(|e| e.path.is_empty());
        GraphQlResponse {
            data: (!refused).then(|| response.data.into_json().unwrap_or(serde_json::Value::Null)),
            errors: response.errors,
        }
    }
}

/// The web BFF's whole router: its routes, health (ready while the registry answers) and
/// `/admin/resilience` for its upstreams.
pub fn app(bff: WebBff, registry: RegistryClient) -> Router {
    let mut upstreams = vec![
        bff.upstreams.inventory.http().upstream().clone(),
        bff.upstreams.payments.http().upstream().clone(),
    ];
    upstreams.extend(bff.upstreams.history.upstreams());
    let routes = Router::new()
        .route("/graphql", post(graphql))
        .route("/graphql/schema", get(schema_sdl))
        .with_state(bff);
    stateless_router(routes, registry, upstreams)
}

async fn graphql(State(b): State<WebBff>, headers: HeaderMap, body: bytes::Bytes) -> Response {
    let media = GraphQlMedia::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    match serde_json::from_slice::<GraphQlRequest>(&body) {
        Ok(req) => answer(media, &b.execute(req).await),
        Err(e) => {
            let refused = GraphQlResponse::refused(format!(
                "the body is not a GraphQL request (a JSON object with a \"query\" string, \
                 and optionally \"operationName\" and \"variables\"): {e}"
            ));
            let mut resp = answer(media, &refused);
            *resp.status_mut() = StatusCode::BAD_REQUEST;
            resp
        }
    }
}

/// `response` as `media` says: its status and content type.
pub fn answer(media: GraphQlMedia, response: &GraphQlResponse) -> Response {
    let status = StatusCode::from_u16(media.status(response)).unwrap_or(StatusCode::OK);
    let mut resp = (status, Json(response)).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(media.content_type()),
    );
    resp
}

async fn schema_sdl() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], sdl())
}
