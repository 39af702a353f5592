//! Order-history sharded by customer, over loopback: two real read models, each its own
//! database, and the client the gateway and the web BFF use. A customer's orders come from
//! their shard alone; an order by ID from whichever shard has it; with one shard gone, its
//! customers' calls fail and the other shard's are answered as before.

mod common;

use common::{bind, client, serve};
use gauntlet_demo_system::order_history::{self, OrderHistory, OrderHistoryClient};
use gauntlet_demo_system::orders::{Item, Order, OrderStatus};
use gauntlet_demo_system::platform::client::ClientError;
use gauntlet_demo_system::platform::resilience::ResilienceConfig;
use gauntlet_demo_system::platform::sharding::Shard;

fn order(id: &str, customer: &str) -> Order {
    Order {
        id: id.into(),
        customer_id: customer.into(),
        items: vec![Item {
            sku: "SKU-LAMP".into(),
            quantity: 1,
        }],
        total_cents: 4200,
        status: OrderStatus::Confirmed,
        payment_id: None,
        reason: None,
    }
}

/// One shard's read model, served; holding `orders`.
async fn shard(dir: &std::path::Path, index: u16, orders: &[Order]) -> String {
    let h = OrderHistory::open(&dir.join(format!("order-history-{index}.sqlite")))
        .expect("open")
        .holding(Shard { index, of: 2 });
    for o in orders {
        h.replace(o.clone(), 1).await.expect("stored");
    }
    let (l, url) = bind().await;
    serve(l, order_history::app(h));
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_customer_is_asked_of_their_shard_and_a_lost_shard_fails_only_its_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (first, second) = ("cust-g", "cust-h");
    assert_eq!(
        (Shard::index_of(first, 2), Shard::index_of(second, 2)),
        (1, 2)
    );
    let url1 = shard(dir.path(), 1, &[order("o-1", first)]).await;
    let url2 = shard(dir.path(), 2, &[order("o-2", second)]).await;
    let mut r = ResilienceConfig::default();
    r.retry.enabled = false;
    r.circuit_breaker.enabled = false;
    let at = |url: &str| client("order-history", url, &r);
    let both = OrderHistoryClient::sharded(vec![at(&url1), at(&url2)]).expect("two shards");

    let ids = |views: Vec<order_history::OrderView>| -> Vec<String> {
        views.into_iter().map(|v| v.order_id).collect()
    };
    assert_eq!(
        ids(both.customer_orders(first).await.expect("listed")),
        ["o-1"]
    );
    assert_eq!(
        ids(both.customer_orders(second).await.expect("listed")),
        ["o-2"]
    );
    for id in ["o-1", "o-2"] {
        let view = both.history(id).await.expect("found on its shard");
        assert_eq!(view.order.order_id, id);
    }
    let missing = both.history("o-nope").await.expect_err("on no shard");
    assert_eq!(missing.refused_status(), Some(404), "{missing}");

    // Shard 1 gone (nothing listens at its address any more).
    let (gone, dead_url) = bind().await;
    drop(gone);
    let one_down = OrderHistoryClient::sharded(vec![at(&dead_url), at(&url2)]).expect("two");
    assert_eq!(
        ids(one_down.customer_orders(second).await.expect("listed")),
        ["o-2"]
    );
    assert_eq!(
        one_down.history("o-2").await.expect("found").order.order_id,
        "o-2"
    );
    let lost = one_down
        .customer_orders(first)
        .await
        .expect_err("its shard is down");
    assert!(matches!(lost, ClientError::Call(_)), "{lost}");
    // Not "no such order": the shard that could hold it did not answer.
    let unknown = one_down
        .history("o-1")
        .await
        .expect_err("its shard is down");
    assert!(matches!(unknown, ClientError::Call(_)), "{unknown}");
}
