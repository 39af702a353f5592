//! Each resilience pattern against a real HTTP upstream on loopback whose behaviour the
//! test switches: the breaker opens after its threshold and half-opens after its wait,
//! retries stop at their budget (and never repeat a non-idempotent call), the bulkhead
//! rejects the call over its limit (and so keeps a shared connection pool from one slow
//! upstream), and a hung upstream times out.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use gauntlet_demo_system::platform::discovery::{Discovery, DiscoveryConfig, Endpoint};
use gauntlet_demo_system::platform::resilience::{
    BreakerConfig, BulkheadConfig, Call, CallError, ConnectionPool, ResilienceConfig, RetryConfig,
    Upstream,
};
use gauntlet_demo_system::registry::{
    self, Registration, Registry, RegistryClient, RegistryConfig,
};
use gauntlet_demo_system::topology::Service;

const OK: u8 = 0;
const FAIL: u8 = 1;
const SLOW: u8 = 2;

/// An upstream that answers 200, 503, or slowly, as told; counts hits and peak concurrency.
struct Fake {
    url: String,
    mode: Arc<AtomicU8>,
    hits: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
    /// Dropping it stops the server (its port then refuses connections).
    server: tokio::sync::oneshot::Sender<()>,
    stopped: tokio::task::JoinHandle<()>,
}

async fn fake() -> Fake {
    let mode = Arc::new(AtomicU8::new(OK));
    let hits = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let handler = {
        let (mode, hits, peak) = (mode.clone(), hits.clone(), peak.clone());
        move || {
            let (mode, hits, peak, in_flight) =
                (mode.clone(), hits.clone(), peak.clone(), in_flight.clone());
            async move {
                hits.fetch_add(1, Ordering::SeqCst);
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                let status = match mode.load(Ordering::SeqCst) {
                    FAIL => axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    SLOW => {
                        tokio::time::sleep(Duration::from_millis(400)).await;
                        axum::http::StatusCode::OK
                    }
                    _ => axum::http::StatusCode::OK,
                };
                in_flight.fetch_sub(1, Ordering::SeqCst);
                status
            }
        }
    };
    let app =
        axum::Router::new().route("/thing", axum::routing::get(handler.clone()).post(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (server, stop) = tokio::sync::oneshot::channel::<()>();
    let stopped = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.await;
            })
            .await;
    });
    Fake {
        url,
        mode,
        hits,
        peak,
        server,
        stopped,
    }
}

fn config() -> ResilienceConfig {
    ResilienceConfig {
        circuit_breaker: BreakerConfig {
            enabled: true,
            sliding_window_size: 4,
            minimum_number_of_calls: 4,
            failure_rate_threshold: 0.5,
            slow_call_duration_ms: 10_000,
            slow_call_rate_threshold: 1.0,
            wait_duration_in_open_ms: 300,
            permitted_calls_in_half_open: 1,
        },
        retry: RetryConfig {
            enabled: false,
            ..RetryConfig::default()
        },
        bulkhead: BulkheadConfig {
            enabled: true,
            max_concurrent_calls: 8,
        },
        timeout_ms: 2_000,
        timeouts: true,
    }
}

/// Three attempts per idempotent call, quick backoff, no breaker to cut them short.
fn retrying() -> ResilienceConfig {
    let mut c = config();
    c.circuit_breaker.enabled = false;
    c.retry = RetryConfig {
        enabled: true,
        max_attempts: 3,
        initial_backoff_ms: 10,
        max_backoff_ms: 40,
        randomization_factor: 0.5,
    };
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_opens_after_its_threshold_and_half_opens_after_its_wait() {
    let f = fake().await;
    let up = Upstream::new(
        "inventory",
        Endpoint::fixed(&f.url),
        reqwest::Client::new(),
        &config(),
    )
    .expect("upstream");
    f.mode.store(FAIL, Ordering::SeqCst);
    for _ in 0..4 {
        let err = up
            .call(Call::get("/thing"))
            .await
            .expect_err("upstream fails");
        assert!(
            matches!(err, CallError::Status { status: 503, .. }),
            "{err}"
        );
    }
    assert_eq!(up.snapshot().circuit_breaker, "open");
    // Open: calls fail fast and never reach the upstream.
    let err = up
        .call(Call::get("/thing"))
        .await
        .expect_err("short-circuited");
    assert!(matches!(err, CallError::CircuitOpen { .. }), "{err}");
    assert_eq!(f.hits.load(Ordering::SeqCst), 4);

    // The upstream recovers; after the wait a trial call goes through and closes the breaker.
    f.mode.store(OK, Ordering::SeqCst);
    let started = Instant::now();
    loop {
        match up.call(Call::get("/thing")).await {
            Ok(reply) => {
                assert_eq!(reply.status, 200);
                break;
            }
            Err(CallError::CircuitOpen { .. }) => {
                assert!(
                    started.elapsed() < Duration::from_secs(5),
                    "never half-opened"
                );
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            Err(e) => panic!("unexpected: {e}"),
        }
    }
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "stayed open for its wait"
    );
    let snap = up.snapshot();
    assert_eq!(snap.circuit_breaker, "closed");
    assert_eq!(snap.state_changes, 3, "closed→open→half_open→closed");
    assert_eq!(f.hits.load(Ordering::SeqCst), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_stop_at_their_budget_and_never_repeat_unsafe_calls() {
    let f = fake().await;
    let mut c = retrying();
    let up = Upstream::new(
        "payments",
        Endpoint::fixed(&f.url),
        reqwest::Client::new(),
        &c,
    )
    .expect("upstream");
    f.mode.store(FAIL, Ordering::SeqCst);
    let err = up
        .call(Call::get("/thing"))
        .await
        .expect_err("still failing");
    assert!(matches!(err, CallError::Status { status: 503, .. }));
    assert_eq!(f.hits.load(Ordering::SeqCst), 3, "exactly max_attempts");
    assert_eq!(up.snapshot().retries, 2);

    // A POST without an idempotency key is sent once; with one, it is retried.
    let body = serde_json::json!({"amount_cents": 1000});
    up.call(Call::post("/thing", &body, None).expect("encode"))
        .await
        .expect_err("fails");
    assert_eq!(f.hits.load(Ordering::SeqCst), 4);
    up.call(Call::post("/thing", &body, Some("order-7-authorize")).expect("encode"))
        .await
        .expect_err("fails");
    assert_eq!(f.hits.load(Ordering::SeqCst), 7);

    // Switched off, nothing is retried.
    c.retry.enabled = false;
    let once = Upstream::new(
        "payments",
        Endpoint::fixed(&f.url),
        reqwest::Client::new(),
        &c,
    )
    .expect("upstream");
    once.call(Call::get("/thing")).await.expect_err("fails");
    assert_eq!(f.hits.load(Ordering::SeqCst), 8);
    assert_eq!(once.snapshot().circuit_breaker, "disabled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bulkhead_rejects_the_call_over_its_limit() {
    let f = fake().await;
    let mut c = config();
    c.bulkhead.max_concurrent_calls = 2;
    let up = Upstream::new(
        "inventory",
        Endpoint::fixed(&f.url),
        reqwest::Client::new(),
        &c,
    )
    .expect("upstream");
    f.mode.store(SLOW, Ordering::SeqCst);
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let up = up.clone();
            tokio::spawn(async move { up.call(Call::get("/thing")).await })
        })
        .collect();
    let mut full = 0;
    let mut ok = 0;
    for c in calls {
        match c.await.expect("task") {
            Ok(_) => ok += 1,
            Err(CallError::BulkheadFull { max: 2, .. }) => full += 1,
            Err(e) => panic!("unexpected: {e}"),
        }
    }
    assert_eq!((ok, full), (2, 1));
    assert_eq!(
        f.peak.load(Ordering::SeqCst),
        2,
        "the upstream never saw a third call"
    );
    assert_eq!(up.snapshot().bulkhead_in_use, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_upstream_times_out() {
    let f = fake().await;
    let mut c = config();
    c.timeout_ms = 100;
    let up = Upstream::new(
        "payments",
        Endpoint::fixed(&f.url),
        reqwest::Client::new(),
        &c,
    )
    .expect("upstream");
    f.mode.store(SLOW, Ordering::SeqCst);
    let started = Instant::now();
    let err = up.call(Call::get("/thing")).await.expect_err("times out");
    assert!(matches!(err, CallError::Timeout { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_millis(350));
}

/// One connection pool for two upstreams: a slow upstream's calls hold its connections, so
/// a call to the fast one waits, past its deadline; its bulkhead keeps one connection free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_upstream_holds_the_pool_unless_its_bulkhead_stops_it() {
    let (slow, fast) = (fake().await, fake().await);
    slow.mode.store(SLOW, Ordering::SeqCst);
    let outcome = |bulkhead: bool| {
        let (slow_url, fast_url) = (slow.url.clone(), fast.url.clone());
        async move {
            let mut c = config();
            c.bulkhead = BulkheadConfig {
                enabled: bulkhead,
                max_concurrent_calls: 1,
            };
            let pool = ConnectionPool::new(2);
            let up = |name: &str, url: &str, timeout_ms: u64| {
                let mut c = c.clone();
                c.timeout_ms = timeout_ms;
                Upstream::pooled(
                    name,
                    Endpoint::fixed(url),
                    reqwest::Client::new(),
                    &c,
                    pool.clone(),
                )
                .expect("upstream")
            };
            // Orders' calls hold their connection the 400 ms the slow upstream takes;
            // browsing gives up after 150 ms.
            let (orders, inventory) = (
                up("orders", &slow_url, 2_000),
                up("inventory", &fast_url, 150),
            );
            let held: Vec<_> = (0..2)
                .map(|_| {
                    let o = orders.clone();
                    tokio::spawn(async move { o.call(Call::get("/thing")).await })
                })
                .collect();
            // Until the calls that will get a connection hold it: both without a bulkhead,
            // one with it (the other is refused at once).
            let free_while_held = usize::from(bulkhead);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
            while pool.available() != Some(free_while_held) {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the slow calls never took their connections"
                );
                tokio::task::yield_now().await;
            }
            let browse = inventory.call(Call::get("/thing")).await;
            for h in held {
                let _ = h.await;
            }
            browse
        }
    };
    let err = outcome(false).await.expect_err("waits for a connection");
    assert!(matches!(err, CallError::Timeout { .. }), "{err}");
    outcome(true)
        .await
        .expect("the bulkhead left a connection free");
}

/// Two registered instances of one service, found through a real registry.
async fn two_instances(registry_url: &str) -> (Fake, Fake) {
    let (a, b) = (fake().await, fake().await);
    let registry = RegistryClient::new(registry_url);
    for f in [&a, &b] {
        registry
            .register(&Registration {
                name: "inventory".into(),
                address: f.url.clone(),
                version: "test".into(),
                health_url: format!("{}/thing", f.url),
                shard: None,
            })
            .await
            .expect("registered");
    }
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_goes_to_another_instance_and_an_unreachable_one_is_skipped() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let registry_url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(registry::run(
        Registry::new(RegistryConfig {
            // Only the client's own view may route around the dead instance here.
            health_checks: false,
            ..RegistryConfig::default()
        }),
        listener,
        std::future::pending(),
    ));
    let (a, b) = two_instances(&registry_url).await;
    let discovery = Discovery::new(
        RegistryClient::new(&registry_url),
        DiscoveryConfig {
            ttl_ms: 60_000,
            eject_ms: 60_000,
            ..DiscoveryConfig::default()
        },
    );
    let mut c = config();
    c.circuit_breaker.enabled = false;
    c.retry = RetryConfig {
        enabled: true,
        max_attempts: 2,
        initial_backoff_ms: 1,
        max_backoff_ms: 5,
        randomization_factor: 0.0,
    };
    let up = Upstream::new(
        "inventory",
        discovery.endpoint(Service::Inventory),
        reqwest::Client::new(),
        &c,
    )
    .expect("upstream");
    for _ in 0..4 {
        up.call(Call::get("/thing")).await.expect("answered");
    }
    assert_eq!(
        (a.hits.load(Ordering::SeqCst), b.hits.load(Ordering::SeqCst)),
        (2, 2),
        "round-robin over both"
    );

    // One instance dies: its port refuses connections, the registry still lists it.
    let dead = a.url.clone();
    drop(a.server);
    let _ = tokio::time::timeout(Duration::from_secs(5), a.stopped).await;
    for _ in 0..6 {
        up.call(Call::get("/thing"))
            .await
            .expect("the retry reached the live instance");
    }
    assert_eq!(b.hits.load(Ordering::SeqCst), 8, "every call ended there");
    let calls = up.calls_per_instance();
    assert!(
        calls.get(&dead).copied().unwrap_or(0) <= 3,
        "after the first refusal it was skipped: {calls:?}"
    );
    assert!(up.snapshot().retries >= 1);
}

/// Externalized configuration: orders' client of payments follows its keys in the
/// registry. Measured at the upstream (requests it received per call): three attempts as
/// configured, one while the registry says one, three again once the key is removed; a
/// deadline set live cuts a slow call short. A value the services would not take is refused
/// by the registry and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_attempts_and_deadlines_follow_the_registry_live() {
    use gauntlet_demo_system::platform::live_config;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let registry_url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(registry::run(
        Registry::new(RegistryConfig::default()),
        listener,
        std::future::pending(),
    ));
    let f = fake().await;
    let c = retrying();
    let up = Upstream::new(
        "payments",
        Endpoint::fixed(&f.url),
        reqwest::Client::new(),
        &c,
    )
    .expect("upstream");
    let reg = RegistryClient::new(&registry_url);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let following = tokio::spawn(live_config::follow(
        reg.clone(),
        Service::Orders,
        vec![(Service::Payments, up.knobs())],
        async move {
            let _ = stopped.await;
        },
    ));
    f.mode.store(FAIL, Ordering::SeqCst);
    let attempts_of_one_call = || async {
        let before = f.hits.load(Ordering::SeqCst);
        let err = up.call(Call::get("/thing")).await.expect_err("failing");
        assert!(
            matches!(err, CallError::Status { status: 503, .. }),
            "{err}"
        );
        f.hits.load(Ordering::SeqCst) - before
    };
    // Applied: what the client reports, only to know when to measure.
    let applied = |attempts: usize| {
        let up = up.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            while up.snapshot().max_attempts != attempts {
                assert!(
                    Instant::now() < deadline,
                    "never applied {attempts} attempts"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    assert_eq!(attempts_of_one_call().await, 3, "as configured");

    let key = "orders/payments/retry/max_attempts";
    reg.kv_put(key, "1").await.expect("set");
    applied(1).await;
    assert_eq!(attempts_of_one_call().await, 1, "one attempt, live");
    assert_eq!(attempts_of_one_call().await, 1);

    let refused = reg.kv_put(key, "0").await.expect_err("0 attempts");
    assert!(
        refused.to_string().contains("from 1 to 10"),
        "the reason is given: {refused}"
    );
    let bad_key = reg
        .kv_put("orders/payment/retry/max_attempts", "2")
        .await
        .expect_err("no such key");
    assert!(
        bad_key.to_string().contains(key),
        "the keys are listed: {bad_key}"
    );
    let kept = reg.kv_get(key).await.expect("read").expect("still set");
    assert_eq!(
        kept.text().as_deref(),
        Some("1"),
        "a refused write changed nothing"
    );

    reg.kv_delete(key).await.expect("unset");
    applied(3).await;
    assert_eq!(attempts_of_one_call().await, 3, "back to the start");

    // A deadline lowered live: a 400 ms answer is cut at 50 ms (one attempt per call, so the
    // measure is one timeout, not three).
    reg.kv_put(key, "1").await.expect("set");
    reg.kv_put("orders/payments/timeout_ms", "50")
        .await
        .expect("set");
    let deadline = Instant::now() + Duration::from_secs(10);
    while up.snapshot().timeout_ms != Some(50) {
        assert!(Instant::now() < deadline, "never applied the deadline");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f.mode.store(SLOW, Ordering::SeqCst);
    let started = Instant::now();
    let err = up.call(Call::get("/thing")).await.expect_err("cut short");
    assert!(matches!(err, CallError::Timeout { .. }), "{err}");
    assert!(
        started.elapsed() < Duration::from_millis(350),
        "{:?}",
        started.elapsed()
    );

    let _ = stop.send(());
    following.await.expect("the follower stops on shutdown");
}
