//! The orders service's routes: `POST /orders` (honouring `Idempotency-Key`), `GET
//! /orders/{id}`, `GET /orders/{id}/events` (the order's stream), `GET /orders?customer_id=`,
//! `GET /settlements` (what the leader settled, newest first), and the orders feed that
//! notifications and order-history consume.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};

use super::api::{Order, OrderQuery, OrderStream, PlaceOrder};
use super::saga::Orders;
use super::settlement::Settlement;
use crate::platform::http::{ApiError, Body, body, found, idempotency_key, service_router};
use crate::platform::outbox::feed_router;

pub fn app(orders: Orders) -> Router {
    let outbox = orders.outbox().clone();
    let upstreams = orders.upstreams();
    let routes = Router::new()
        .route("/orders", post(place).get(of_customer))
        .route("/orders/{id}", get(get_order))
        .route("/orders/{id}/events", get(get_stream))
        .route("/settlements", get(settlements))
        .with_state(orders)
        .merge(feed_router(outbox.clone()));
    service_router(routes, outbox.db().clone(), upstreams)
}

async fn place(
    State(o): State<Orders>,
    headers: HeaderMap,
    req: Body<PlaceOrder>,
) -> Result<(StatusCode, Json<Order>), ApiError> {
    let req = body(req)?;
    let key = idempotency_key(&headers)?;
    let (status, order) = o.place(req, key).await?;
    Ok((status, Json(order)))
}

async fn of_customer(
    State(o): State<Orders>,
    q: Result<Query<OrderQuery>, QueryRejection>,
) -> Result<Json<Vec<Order>>, ApiError> {
    let Query(q) = q?;
    Ok(Json(o.of_customer(&q.customer_id).await?))
}

async fn get_order(
    State(o): State<Orders>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<Order>, ApiError> {
    found(o.order(&id).await?, || format!("no order {id}"))
}

async fn get_stream(
    State(o): State<Orders>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<OrderStream>, ApiError> {
    found(o.stream(&id).await?, || format!("no order {id}"))
}

async fn settlements(State(o): State<Orders>) -> Result<Json<Vec<Settlement>>, ApiError> {
    Ok(Json(o.settlements(100).await?))
}
