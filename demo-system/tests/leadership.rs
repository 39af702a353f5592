//! Leader election between two orders instances on one database, through a real registry
//! on loopback: one leads at a time with the lock's `LockIndex` as its token; only the
//! leader settles a period; when the leader stops, the other takes over with a larger
//! token, and the write of a leader whose term has passed is refused.

mod common;

use std::time::{Duration, Instant};

use common::orders_at;
use gauntlet_demo_system::orders::Orders;
use gauntlet_demo_system::orders::settlement::Recorded;
use gauntlet_demo_system::platform::leadership::{self, Campaign, Leadership};
use gauntlet_demo_system::platform::resilience::ResilienceConfig;
use gauntlet_demo_system::registry::{self, Registry, RegistryClient, RegistryConfig};

async fn registry() -> RegistryClient {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(registry::run(
        Registry::new(RegistryConfig::default()),
        listener,
        std::future::pending(),
    ));
    RegistryClient::new(&url)
}

/// An orders instance campaigning; dropping the sender ends its campaign.
fn candidate(
    dir: &std::path::Path,
    registry: &RegistryClient,
    name: &str,
) -> (
    Orders,
    Leadership,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let l = Leadership::candidate();
    let campaign = Campaign {
        registry: registry.clone(),
        key: Campaign::key_of("orders"),
        holder: name.into(),
        ttl: Duration::from_secs(1),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(leadership::campaign(l.clone(), campaign, async {
        let _ = stopped.await;
    }));
    // Nothing is called upstream: only the settlement runs here.
    let unused = "http://127.0.0.1:9";
    let orders =
        orders_at(dir, unused, unused, &ResilienceConfig::default()).led_by(l.clone(), name);
    (orders, l, stop, task)
}

async fn until(what: &str, ok: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !ok() {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_instance_leads_and_the_other_takes_over_with_a_larger_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reg = registry().await;
    let (a, la, stop_a, task_a) = candidate(dir.path(), &reg, "orders-1");
    until("orders-1 leads", || la.token().is_some()).await;
    let (b, lb, _stop_b, _task_b) = candidate(dir.path(), &reg, "orders-2");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        (la.token(), lb.token()),
        (Some(1), None),
        "one leader, token 1"
    );
    let key = reg.kv_get(&Campaign::key_of("orders")).await.expect("read");
    assert_eq!(key.and_then(|e| e.text()).as_deref(), Some("orders-1"));

    // Only the leader settles.
    assert!(matches!(
        a.settle(0, 1000).await.expect("settle"),
        Some(Recorded::Settled(_))
    ));
    assert_eq!(
        b.settle(1000, 1000).await.expect("settle"),
        None,
        "orders-2 does not lead"
    );

    // orders-1 stops: its session ends, and orders-2 takes the lock at its next try.
    let stopped = Instant::now();
    drop(stop_a);
    task_a.await.expect("the campaign ends");
    assert_eq!(la.token(), None);
    until("orders-2 leads", || lb.token().is_some()).await;
    eprintln!(
        "orders-2 leads {:?} after orders-1 stopped",
        stopped.elapsed()
    );
    assert_eq!(lb.token(), Some(2), "a new leader, a larger token");
    assert!(matches!(
        b.settle(1000, 1000).await.expect("settle"),
        Some(Recorded::Settled(_))
    ));

    // A leader whose term passed, finishing a write it started with token 1, is refused.
    let stale = orders_at(
        dir.path(),
        "http://127.0.0.1:9",
        "http://127.0.0.1:9",
        &ResilienceConfig::default(),
    );
    let refused = stale.settle(2000, 1000).await.expect("settle");
    assert_eq!(
        refused,
        Some(Recorded::Fenced {
            token: 0,
            newest: 2
        }),
        "token 0 (no election) after token 2"
    );
    let settled: Vec<(i64, i64)> = b
        .settlements(10)
        .await
        .expect("list")
        .iter()
        .map(|s| (s.period_start_unix_ms, s.token))
        .collect();
    assert_eq!(settled, [(1000, 2), (0, 1)]);
}
