//! The web page's backend for frontend, its own process behind the gateway: GraphQL
//! (`async-graphql`), so the page gets what it shows (products with their stock, a
//! customer's orders with their payments) in one query, and asks only the services its
//! query needs.
//!
//! [`api`] GraphQL over HTTP wire types · [`schema`] the schema and its resolvers (SDL in
//! `schema.graphql`) · [`server`] routes · [`client`] typed client (what the gateway
//! forwards `/graphql` with).

pub mod api;
pub mod client;
pub mod schema;
pub mod server;

pub use api::{GraphQlMedia, GraphQlRequest, GraphQlResponse};
pub use client::WebBffClient;
pub use schema::{Upstreams, WebBffConfig};
pub use server::{WebBff, app};
