//! The registry over real HTTP on loopback: instances register, heartbeat, are evicted when
//! they go silent, and drop out of discovery while their health URL fails.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gauntlet_demo_system::platform::http::ErrorBody;
use gauntlet_demo_system::platform::resilience::ResilienceReport;
use gauntlet_demo_system::registry::{self, InstanceView, Registry, RegistryConfig};
use serde_json::{Value, json};

/// A stand-in instance whose health endpoint we can turn off.
async fn instance(healthy: Arc<AtomicBool>) -> String {
    let app = axum::Router::new().route(
        "/health/ready",
        axum::routing::get(move || {
            let ok = healthy.load(Ordering::SeqCst);
            async move {
                if ok {
                    axum::http::StatusCode::OK
                } else {
                    axum::http::StatusCode::SERVICE_UNAVAILABLE
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

async fn start_registry(config: RegistryConfig) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(registry::run(
        Registry::new(config),
        listener,
        std::future::pending(),
    ));
    format!("http://{addr}")
}

async fn healthy_of(http: &reqwest::Client, reg: &str, name: &str) -> (u16, Vec<InstanceView>) {
    let resp = http
        .get(format!("{reg}/services/{name}"))
        .send()
        .await
        .expect("answer");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or_default())
}

/// Polls until `ok` holds, for at most 10 s.
async fn eventually<F: std::future::Future<Output = bool>>(what: &str, mut ok: impl FnMut() -> F) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ok().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_lists_live_healthy_instances_only() {
    let config = RegistryConfig {
        ttl: Duration::from_millis(600),
        health_interval: Duration::from_millis(50),
        health_timeout: Duration::from_millis(500),
        unhealthy_after: 2,
        ..RegistryConfig::default()
    };
    let reg = start_registry(config).await;
    let http = reqwest::Client::new();
    let health_a = Arc::new(AtomicBool::new(true));
    let health_b = Arc::new(AtomicBool::new(true));
    let (a, b) = (
        instance(health_a.clone()).await,
        instance(health_b.clone()).await,
    );
    let mut ids = Vec::new();
    for addr in [&a, &b] {
        let resp = http
            .post(format!("{reg}/instances"))
            .json(
                &json!({"name": "inventory", "address": addr, "version": "1.2.0",
                          "health_url": format!("{addr}/health/ready")}),
            )
            .send()
            .await
            .expect("register");
        assert_eq!(resp.status(), 201);
        let body: Value = resp.json().await.expect("json");
        assert!(
            body["heartbeat_interval_ms"]
                .as_u64()
                .is_some_and(|ms| ms < 600)
        );
        ids.push(body["id"].as_str().expect("id").to_string());
    }
    let (status, listed) = healthy_of(&http, &reg, "inventory").await;
    assert_eq!(status, 200);
    let addrs: Vec<&str> = listed.iter().map(|i| i.address.as_str()).collect();
    assert_eq!(addrs, [a.as_str(), b.as_str()], "registration order");

    // B's health URL fails: it leaves discovery but is still known.
    health_b.store(false, Ordering::SeqCst);
    eventually("B out of discovery", || {
        let (http, reg, ids, a) = (http.clone(), reg.clone(), ids.clone(), a.clone());
        async move {
            for id in ids {
                heartbeat(&http, &reg, &id).await;
            }
            let (_, listed) = healthy_of(&http, &reg, "inventory").await;
            listed.len() == 1 && listed[0].address == a
        }
    })
    .await;
    let (_, listed) = healthy_of(&http, &reg, "inventory").await;
    assert_eq!(listed[0].address, a);
    let all: Vec<InstanceView> = http
        .get(format!("{reg}/services"))
        .send()
        .await
        .expect("all")
        .json()
        .await
        .expect("json");
    assert_eq!(all.iter().filter(|i| !i.healthy).count(), 1);

    // B recovers; then A goes silent and is evicted after the TTL while B keeps heartbeating.
    health_b.store(true, Ordering::SeqCst);
    let b_id = ids[1].clone();
    eventually("B healthy again and A evicted", || {
        let (http, reg, b_id) = (http.clone(), reg.clone(), b_id.clone());
        async move {
            heartbeat(&http, &reg, &b_id).await;
            let (_, listed) = healthy_of(&http, &reg, "inventory").await;
            listed.len() == 1 && listed[0].id.to_string() == b_id
        }
    })
    .await;
    assert_eq!(
        heartbeat(&http, &reg, &ids[0]).await,
        404,
        "an evicted instance must register again"
    );
    let resp = http
        .delete(format!("{reg}/instances/{b_id}"))
        .send()
        .await
        .expect("deregister");
    assert_eq!(resp.status(), 204);
    let (status, _) = healthy_of(&http, &reg, "inventory").await;
    assert_eq!(status, 404, "no instance of the service is left");
    let admin: ResilienceReport = http
        .get(format!("{reg}/admin/resilience"))
        .send()
        .await
        .expect("admin")
        .json()
        .await
        .expect("the shared report shape");
    assert!(admin.upstreams.is_empty(), "{admin:?}");
}

async fn heartbeat(http: &reqwest::Client, reg: &str, id: &str) -> u16 {
    http.put(format!("{reg}/instances/{id}/heartbeat"))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_registrations_get_a_clear_400() {
    let reg = start_registry(RegistryConfig::default()).await;
    let http = reqwest::Client::new();
    for (body, needle) in [
        (json!({"name": "x"}), "missing field"),
        (
            json!({"name": "Bad Name", "address": "http://127.0.0.1:1", "version": "1", "health_url": "http://127.0.0.1:1/h"}),
            "a-z",
        ),
        (
            json!({"name": "ok", "address": "nope", "version": "1", "health_url": "http://127.0.0.1:1/h"}),
            "address",
        ),
        (
            json!({"name": "ok", "address": "http://127.0.0.1:1", "version": "1", "health_url": "http://127.0.0.1:1/h", "extra": 1}),
            "unknown field",
        ),
    ] {
        let resp = http
            .post(format!("{reg}/instances"))
            .json(&body)
            .send()
            .await
            .expect("answer");
        assert_eq!(resp.status(), 400, "{body}");
        let msg = error_message(resp).await;
        assert!(msg.contains(needle), "{body}: {msg}");
    }
}

/// Canary and blue-green over real HTTP: three instances (two of v1, one of v2) registered
/// with a real registry, a caller's discovery reading their weights from it. 90/10 gives
/// v2 exactly a tenth of the calls; a switch to v2 moves every call at once, and back;
/// weights that do not add up or name a version nobody runs are refused with the reason
/// and change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_weights_split_the_calls_and_a_switch_moves_them_all() {
    use gauntlet_demo_system::platform::discovery::{Discovery, DiscoveryConfig};
    use gauntlet_demo_system::registry::{Registration, RegistryClient, Weights};
    use gauntlet_demo_system::topology::Service;

    let reg = start_registry(RegistryConfig::default()).await;
    let client = RegistryClient::new(&reg);
    let mut by_version = Vec::new();
    for version in ["v1", "v1", "v2"] {
        let address = instance(Arc::new(AtomicBool::new(true))).await;
        client
            .register(&Registration {
                name: "inventory".into(),
                address: address.clone(),
                version: version.into(),
                health_url: format!("{address}/health/ready"),
                shard: None,
            })
            .await
            .expect("registered");
        by_version.push((address, version));
    }
    let weights =
        |pairs: &[(&str, u32)]| Weights(pairs.iter().map(|(v, n)| (v.to_string(), *n)).collect());
    // A fresh answer from the registry on every call: a change shows at once.
    let config = DiscoveryConfig {
        ttl_ms: 0,
        ..DiscoveryConfig::default()
    };
    let discovery = Discovery::new(client.clone(), config);
    let v2_calls = |n: usize| {
        let discovery = discovery.clone();
        let v2 = by_version[2].0.clone();
        async move {
            let mut hits = 0;
            for _ in 0..n {
                let picked = discovery.pick(Service::Inventory).await.expect("picked");
                hits += usize::from(picked == v2);
            }
            hits
        }
    };
    assert_eq!(v2_calls(30).await, 10, "no weights: every instance alike");
    client
        .set_weights("inventory", &weights(&[("v1", 90), ("v2", 10)]))
        .await
        .expect("90/10");
    assert_eq!(v2_calls(100).await, 10, "90/10");
    client
        .set_weights("inventory", &weights(&[("v1", 0), ("v2", 100)]))
        .await
        .expect("the switch");
    assert_eq!(v2_calls(20).await, 20, "switched to v2");
    client
        .set_weights("inventory", &weights(&[("v1", 100)]))
        .await
        .expect("switched back");
    assert_eq!(v2_calls(20).await, 0, "switched back to v1");

    let http = reqwest::Client::new();
    for (body, status, says) in [
        (
            json!({"v1": 90, "v2": 20}),
            400,
            "add up to 110 %, not 100 %",
        ),
        (
            json!({"v1": 50, "v3": 50}),
            400,
            "no instance of inventory runs version v3",
        ),
        (json!({"v1": "most"}), 400, "invalid type"),
        (json!({"v1": 100}), 404, "no service named \"warehouse\""),
    ] {
        let service = if status == 404 {
            "warehouse"
        } else {
            "inventory"
        };
        let resp = http
            .put(format!("{reg}/admin/weights/{service}"))
            .json(&body)
            .send()
            .await
            .expect("answer");
        assert_eq!(resp.status().as_u16(), status, "{body}");
        let msg = error_message(resp).await;
        assert!(msg.contains(says), "{body}: {msg}");
    }
    let kept = client.weights().await.expect("weights");
    assert_eq!(kept.get("inventory"), Some(&weights(&[("v1", 100)])));
    client.clear_weights("inventory").await.expect("cleared");
    assert!(client.weights().await.expect("weights").is_empty());
}

/// The message of an error answer, read as every demo service writes it.
async fn error_message(resp: reqwest::Response) -> String {
    resp.json::<ErrorBody>().await.expect("an error body").error
}

/// py-consul, a client we did not write, elects a leader through the registry's sessions
/// and locks: one holder at a time, the lock passes on when the holder's session ends (a
/// blocking read wakes for it), and the new holder's `LockIndex` is larger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consul_client_elects_a_leader_through_sessions_and_locks() {
    let reg = start_registry(RegistryConfig::default()).await;
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/clients/consul_lock.py");
    let out = tokio::process::Command::new("python3")
        .arg(script)
        .args([reg.as_str(), "service/orders/leader"])
        .output()
        .await
        .expect("python3 (scripts/test.sh installs py-consul)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).expect("the client's JSON");
    for taken in [
        "a_acquires",
        "b_refused",
        "held_by_a",
        "released",
        "b_acquires",
        "renewed",
    ] {
        assert_eq!(seen[taken], true, "{taken}: {seen}");
    }
    assert_eq!(
        (&seen["lock_index_a"], &seen["lock_index_b"]),
        (&json!(1), &json!(2)),
        "each new holder a larger fencing token: {seen}"
    );
    assert_eq!(seen["value"], "b");
    assert!(
        seen["held_ms"]
            .as_u64()
            .is_some_and(|ms| (400..5000).contains(&ms)),
        "the blocking read was held until the session ended: {seen}"
    );
    assert_eq!(
        seen["a_renewed"], "not found",
        "an ended session stays ended: {seen}"
    );
    assert_eq!(seen["listed"], json!(["candidate-b"]), "{seen}");
}
