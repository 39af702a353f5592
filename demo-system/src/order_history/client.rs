//! The order-history service's typed client: what the gateway and the web BFF call it
//! with. Order-history is sharded by customer ([`crate::platform::sharding`]): a customer's
//! orders are asked of their shard alone, and an order, whose ID does not say whose it is,
//! of every shard at once. Each shard is its own upstream (its own breaker and bulkhead), so
//! a shard that is down fails its own customers' calls and nobody else's.

use futures_util::future::join_all;

use super::api::{OrderHistoryView, OrderView};
use crate::platform::client::{ClientError, HttpClient, escape};
use crate::platform::discovery::{Discovery, Endpoint};
use crate::platform::resilience::Upstream;
use crate::platform::sharding::Shard;
use crate::topology::Service;

#[derive(Clone, Debug)]
pub struct OrderHistoryClient {
    /// One client per shard, in shard order (one for an unsharded order-history).
    shards: Vec<HttpClient>,
}

impl OrderHistoryClient {
    /// A client for an order-history that is not sharded (or one shard of it).
    pub fn new(http: HttpClient) -> Self {
        Self { shards: vec![http] }
    }

    /// A client for a sharded order-history: `shards[i]` reaches shard `i + 1`; `None`
    /// when given no shard at all.
    pub fn sharded(shards: Vec<HttpClient>) -> Option<Self> {
        (!shards.is_empty()).then_some(Self { shards })
    }

    /// A client for order-history as `discovery` finds it: one per shard, each made by
    /// `client` from the shard's endpoint.
    pub fn discovered<E>(
        discovery: &Discovery,
        mut client: impl FnMut(Endpoint) -> Result<HttpClient, E>,
    ) -> Result<Self, E> {
        let mut shards = Vec::new();
        for endpoint in discovery.shard_endpoints(Service::OrderHistory) {
            shards.push(client(endpoint)?);
        }
        if shards.is_empty() {
            shards.push(client(discovery.endpoint(Service::OrderHistory))?);
        }
        Ok(Self { shards })
    }

    /// Each shard's upstream, for `/admin/resilience`.
    pub fn upstreams(&self) -> Vec<Upstream> {
        self.shards.iter().map(|h| h.upstream().clone()).collect()
    }

    /// The client of the shard holding `customer_id`.
    fn shard_of(&self, customer_id: &str) -> &HttpClient {
        let index = Shard::index_of(customer_id, self.shards.len() as u16);
        &self.shards[usize::from(index - 1)]
    }

    /// The order and its steps, from whichever shard holds it: every shard is asked at
    /// once. 404 only when every shard said so; when a shard that could hold it failed,
    /// its failure (the order may be there).
    pub async fn history(&self, order_id: &str) -> Result<OrderHistoryView, ClientError> {
        let path = format!("/orders/{}/history", escape(order_id));
        let answers = join_all(self.shards.iter().map(|h| h.get(&path))).await;
        let mut errors = Vec::with_capacity(answers.len());
        for answer in answers {
            match answer {
                Ok(view) => return Ok(view),
                Err(e) => errors.push(e),
            }
        }
        // One answer per shard, and there is at least one shard.
        let failed = errors.iter().position(|e| e.refused_status() != Some(404));
        Err(errors.swap_remove(failed.unwrap_or(0)))
    }

    /// The customer's orders, from the shard that holds them.
    pub async fn customer_orders(&self, customer_id: &str) -> Result<Vec<OrderView>, ClientError> {
        self.shard_of(customer_id)
            .get(&format!("/customers/{}/orders", escape(customer_id)))
            .await
    }
}
