//! Inventory's catalogue over gRPC (`gauntlet.inventory.v1.Catalog`, from
//! `demo-system/proto/gauntlet/inventory/v1/catalog.proto`, the contract its gRPC callers
//! pin): the server, on the same port as its HTTP routes (HTTP/2), and the typed client the
//! mobile BFF reads products with, through the demo's resilient client
//! ([`crate::platform::grpc`]).

use axum::Router;
use tonic::{Request, Response, Status};

use super::api;
use super::server::Inventory;
use crate::platform::client::{ClientError, HttpClient};
use crate::platform::grpc::GrpcClient;

/// The messages and the server trait, generated at build time (see `build.rs`).
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod proto {
    tonic::include_proto!("gauntlet.inventory.v1");
}

use proto::catalog_server::{Catalog, CatalogServer};

/// The service's methods, as callers name them.
pub const LIST_PRODUCTS: &str = "/gauntlet.inventory.v1.Catalog/ListProducts";
pub const GET_PRODUCT: &str = "/gauntlet.inventory.v1.Catalog/GetProduct";

impl From<api::Product> for proto::Product {
    fn from(p: api::Product) -> Self {
        Self {
            sku: p.sku,
            name: p.name,
            price_cents: p.price_cents,
            stock: p.stock,
        }
    }
}

impl From<proto::Product> for api::Product {
    fn from(p: proto::Product) -> Self {
        Self {
            sku: p.sku,
            name: p.name,
            price_cents: p.price_cents,
            stock: p.stock,
        }
    }
}

/// A database failure as gRPC's `UNAVAILABLE` (callers retry and count it); the cause is
/// logged, not sent.
fn unavailable(e: impl std::fmt::Display) -> Status {
    tracing::error!(error = %e, "a catalogue call failed");
    Status::unavailable("the catalogue cannot be read now")
}

#[tonic::async_trait]
impl Catalog for Inventory {
    async fn list_products(
        &self,
        _: Request<proto::ListProductsRequest>,
    ) -> Result<Response<proto::ListProductsResponse>, Status> {
        let list = self.products().await.map_err(unavailable)?;
        Ok(Response::new(proto::ListProductsResponse {
            products: list.into_iter().map(Into::into).collect(),
        }))
    }

    async fn get_product(
        &self,
        request: Request<proto::GetProductRequest>,
    ) -> Result<Response<proto::Product>, Status> {
        let sku = request.into_inner().sku;
        if sku.is_empty() {
            return Err(Status::invalid_argument("sku is required"));
        }
        match self.product(&sku).await.map_err(unavailable)? {
            Some(p) => Ok(Response::new(p.into())),
            None => Err(Status::not_found(format!("no product {sku}"))),
        }
    }
}

/// The catalogue's gRPC routes, to merge with inventory's HTTP ones.
pub fn routes(inventory: Inventory) -> Router {
    tonic::service::Routes::new(CatalogServer::new(inventory)).into_axum_router()
}

/// The catalogue's typed gRPC client.
#[derive(Clone, Debug)]
pub struct CatalogClient {
    grpc: GrpcClient,
}

impl CatalogClient {
    pub fn new(http: HttpClient) -> Self {
        Self {
            grpc: GrpcClient::new(http),
        }
    }

    pub fn http(&self) -> &HttpClient {
        self.grpc.http()
    }

    pub async fn products(&self) -> Result<Vec<api::Product>, ClientError> {
        let answer: proto::ListProductsResponse = self
            .grpc
            .unary(LIST_PRODUCTS, &proto::ListProductsRequest {}, true)
            .await?;
        Ok(answer.products.into_iter().map(Into::into).collect())
    }

    /// One product; an unknown SKU is a refusal (404, from `NOT_FOUND`).
    pub async fn product(&self, sku: &str) -> Result<api::Product, ClientError> {
        let request = proto::GetProductRequest {
            sku: sku.to_string(),
        };
        let p: proto::Product = self.grpc.unary(GET_PRODUCT, &request, true).await?;
        Ok(p.into())
    }
}
