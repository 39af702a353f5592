//! Rebuilding order-history from orders' event store (run by `scripts/bench-replay.sh`):
//! how fast a new read model replays the whole feed, against reading the feed alone (the
//! limit: what serving and fetching the pages costs, with nothing applied), as the store
//! grows.
//!
//! `replay ORDERS...`: for each size, a fresh orders store of that many orders, each with
//! a random customer ID and the four events of a confirmed order, stored step by step across
//! all orders (so every feed page mixes a hundred different streams, the hostile case for
//! serving each event with the order after it); its feed served over loopback HTTP; then the
//! feed read page by page with nothing applied, and a new order-history replaying it from the
//! first event to the last, as after a lost disk.

use std::path::Path;
use std::time::{Duration, Instant};

use gauntlet_demo_system::order_history::OrderHistory;
use gauntlet_demo_system::orders::api::{Item, Order, OrderChange};
use gauntlet_demo_system::orders::{db, events};
use gauntlet_demo_system::platform::db::Db;
use gauntlet_demo_system::platform::discovery::Endpoint;
use gauntlet_demo_system::platform::outbox::{
    FeedConsumer, FeedPage, Outbox, feed_client, feed_router, open_db,
};

/// Pages as the consumer asks for them (its default).
const PAGE: usize = 100;

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .map(|a| a.parse().expect("ORDERS: a number of orders"))
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!("orders  events   feed read (limit)   replay into a new read model   ratio");
    for n in sizes {
        rt.block_on(size(n));
    }
}

async fn size(orders: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open_db(
        &dir.path().join("orders.sqlite"),
        &format!("{}\n{}", db::SCHEMA, events::SCHEMA),
    )
    .expect("orders db");
    let events = fill(&db, orders).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let app = feed_router(Outbox::from_source(db, events::FEED));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let read = read_all(&url, events).await;
    let replay = replay_all(dir.path(), &url, events).await;
    let rate = |d: Duration| events as f64 / d.as_secs_f64();
    println!(
        "{orders:>6}  {events:>6}   {:>9.0} events/s    {:>9.0} events/s ({:.1} s)         {:.3}",
        rate(read),
        rate(replay),
        replay.as_secs_f64(),
        read.as_secs_f64() / replay.as_secs_f64()
    );
}

/// Stores `orders` confirmed orders step by step (every order's first event, then every
/// order's second, ...), as the saga does; how many events.
async fn fill(db: &Db, orders: usize) -> usize {
    let ids: Vec<String> = (0..orders)
        .map(|_| uuid::Uuid::now_v7().to_string())
        .collect();
    let steps = [
        OrderChange::StockReserved,
        OrderChange::PaymentAuthorized {
            payment_id: "pay".into(),
        },
        OrderChange::Confirmed,
    ];
    for version in 0..=steps.len() {
        for (c, chunk) in ids.chunks(1000).enumerate() {
            let (chunk, step) = (chunk.to_vec(), steps.get(version.wrapping_sub(1)).cloned());
            db.write(move |tx| {
                for (i, id) in chunk.iter().enumerate() {
                    let change = step.clone().unwrap_or_else(|| OrderChange::Placed {
                        customer_id: format!("{:016x}", splitmix64((c * 1000 + i) as u64)),
                        items: vec![Item {
                            sku: "SKU-STICKER".into(),
                            quantity: 1,
                        }],
                        total_cents: 250,
                    });
                    events::append(tx, id, version as i64, &change)?;
                    let stream = events::stream(tx, id)?;
                    let order = Order::replay(id, stream.iter().map(|e| &e.change));
                    if let Some(order) = order {
                        db::project(tx, &order, version as i64 + 1, 0)?;
                    }
                }
                Ok(())
            })
            .await
            .expect("fill");
        }
    }
    orders * (steps.len() + 1)
}

/// Reads every page of the feed, applying nothing.
async fn read_all(url: &str, events: usize) -> Duration {
    let http = reqwest::Client::new();
    let started = Instant::now();
    let (mut after, mut seen) = (0, 0);
    while seen < events {
        let page: FeedPage = http
            .get(format!("{url}/events?after={after}&limit={PAGE}"))
            .send()
            .await
            .expect("feed")
            .json()
            .await
            .expect("page");
        assert!(
            !page.events.is_empty(),
            "the feed ended at {seen} of {events}"
        );
        seen += page.events.len();
        after = page.next;
    }
    started.elapsed()
}

/// A new order-history replays the feed to its last event.
async fn replay_all(dir: &Path, url: &str, events: usize) -> Duration {
    let history = OrderHistory::open(&dir.join("order-history.sqlite")).expect("order-history");
    let mut consumer =
        history.consumer(feed_client("orders", Endpoint::fixed(url)).expect("client"));
    consumer.wait = Duration::ZERO;
    let apply = history.handler();
    let started = Instant::now();
    let mut applied = 0;
    while applied < events {
        let n = consumer.poll_once(&apply).await.expect("replay");
        assert!(n > 0, "the replay stopped at {applied} of {events}");
        applied += n;
    }
    started.elapsed()
}

/// A well-mixed 64-bit value of `x` (SplitMix64's finalizer): customer IDs spread over
/// the whole key space, as random ones are, yet the same in every run.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
