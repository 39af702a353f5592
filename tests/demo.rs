//! `gauntlet demo` as a user runs it: every service a real child process on free loopback
//! ports, found through DIR/demo.json; an order through the gateway; the supervisor API;
//! and SIGTERM leaving no process and no open port behind.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{BIN, Demo, wait_for_file};
use gauntlet_demo_system::supervisor::{InstanceInfo, InstanceState};
use nix::sys::signal::Signal;
use serde_json::{Value, json};

#[test]
fn an_unknown_pattern_to_disable_is_refused_with_the_choices() {
    let out = Command::new(BIN)
        .args(["demo", "--disable", "gravity"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("circuit-breaker")
            && err.contains("retries")
            && err.contains("health-checks")
            && err.contains("outbox"),
        "{err}"
    );
}

#[test]
fn the_demo_runs_real_processes_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("demo");
    let mut demo = Demo::start(
        &data,
        &["--disable", "circuit-breaker", "--disable", "outbox"],
    );
    let handle = wait_for_file(&data.join("demo.json"), Duration::from_secs(90));
    let gateway = handle["gateway"].as_str().expect("gateway").to_string();
    let supervisor = handle["supervisor"]
        .as_str()
        .expect("supervisor")
        .to_string();
    assert_eq!(
        handle["services"]["inventory"].as_array().map(Vec::len),
        Some(2),
        "{handle}"
    );
    assert!(handle["collector"]["otlp_http"].is_string(), "{handle}");

    let rt = common::runtime();
    let pids: Vec<i32> = rt.block_on(async {
        let http = reqwest::Client::new();
        let products: Value = http.get(format!("{gateway}/api/products")).send().await.expect("gateway").json().await.expect("json");
        assert_eq!(products.as_array().map(Vec::len), Some(gauntlet_demo_system::inventory::CATALOG.len()), "{products}");
        let token: Value = http.post(format!("{gateway}/api/token")).json(&json!({"username": "demo", "password": "demo"}))
            .send().await.expect("token").json().await.expect("json");
        let resp = http.post(format!("{gateway}/api/orders"))
            .bearer_auth(token["access_token"].as_str().expect("token"))
            .json(&json!({"customer_id": "demo-test", "items": [{"sku": "SKU-MOUSE", "quantity": 1}]}))
            .send().await.expect("order");
        assert_eq!(resp.status(), 201);
        let order: Value = resp.json().await.expect("json");
        assert_eq!(order["status"], "confirmed", "{order}");

        // `--disable circuit-breaker` reached the gateway process.
        let admin: Value = http.get(format!("{gateway}/admin/resilience")).send().await.expect("admin").json().await.expect("json");
        let breakers: Vec<&str> = admin["upstreams"].as_array().expect("upstreams").iter().filter_map(|u| u["circuit_breaker"].as_str()).collect();
        // Nine upstreams: one per order-history shard.
        assert_eq!(breakers, ["disabled"; 9], "{admin}");

        // The supervisor kills and restarts an instance; it comes back ready.
        let killed: Value = http.post(format!("{supervisor}/instances/inventory-2/kill")).send().await.expect("kill").json().await.expect("json");
        assert_eq!(killed["done"], "kill");
        let list: Vec<Value> = http.get(format!("{supervisor}/instances")).send().await.expect("list").json().await.expect("json");
        let inv2 = list.iter().find(|i| i["id"] == "inventory-2").expect("inventory-2");
        assert_eq!(inv2["state"], "killed");
        // An operator's kill is left alone by self-healing: still down after its checks ran.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(instance(&http, &supervisor, "inventory-2").await.state, InstanceState::Killed);
        // A crash nobody asked for (SIGKILL from outside the supervisor) is healed, and so
        // is a process that stops answering (SIGSTOP from outside: its liveness checks fail).
        healed(&http, &supervisor, "payments", Signal::SIGKILL).await;
        healed(&http, &supervisor, "notifications", Signal::SIGSTOP).await;
        let restarted = http.post(format!("{supervisor}/instances/inventory-2/restart")).send().await.expect("restart");
        assert_eq!(restarted.status(), 200);
        // A database other instances share is not wiped, and nothing is killed for it.
        let shared = http.post(format!("{supervisor}/instances/inventory-1/wipe")).send().await.expect("answer");
        assert_eq!(shared.status(), 409);
        let why = shared.text().await.expect("body");
        assert!(why.contains("shared with") && why.contains("inventory-2"), "{why}");
        let list: Vec<Value> = http.get(format!("{supervisor}/instances")).send().await.expect("list").json().await.expect("json");
        assert_eq!(list.len(), gauntlet_demo_system::topology::InstanceId::all().count());
        assert!(list.iter().all(|i| i["state"] == "running"), "{list:?}");
        let unknown = http.post(format!("{supervisor}/instances/nope/kill")).send().await.expect("answer");
        assert_eq!(unknown.status(), 404);
        list.iter().filter_map(|i| i["pid"].as_i64()).map(|p| p as i32).collect()
    });
    assert_eq!(
        pids.len(),
        gauntlet_demo_system::topology::InstanceId::all().count()
    );

    // SIGTERM, as Ctrl-C or a process manager would send it.
    let status = demo.stop();
    assert!(status.success(), "{status}");
    for pid in pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "child {pid} outlived the demo"
        );
    }
    let gateway_addr = gateway.trim_start_matches("http://");
    assert!(
        std::net::TcpStream::connect(gateway_addr).is_err(),
        "the gateway port is still open"
    );
    assert!(
        !data.join("demo.json").exists(),
        "a stale handle was left behind"
    );
}

/// One instance as the supervisor lists it.
async fn instance(http: &reqwest::Client, supervisor: &str, id: &str) -> InstanceInfo {
    let list: Vec<InstanceInfo> = http
        .get(format!("{supervisor}/instances"))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("the supervisor's list");
    list.into_iter()
        .find(|i| i.id == id)
        .unwrap_or_else(|| panic!("no {id} in the supervisor's list"))
}

/// Sends `signal` to `id`'s process directly (SIGKILL: a crash; SIGSTOP: a hang); the
/// supervisor starts it again, on a new process, ready, within 10 s, and counts the crash.
async fn healed(http: &reqwest::Client, supervisor: &str, id: &str, signal: Signal) {
    let before = instance(http, supervisor, id).await;
    let pid = before.pid.expect("a running process");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal).expect("the signal");
    let crashed = Instant::now();
    loop {
        let now = instance(http, supervisor, id).await;
        let ready = http
            .get(format!("{}/health/ready", now.url))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if now.state == InstanceState::Running && now.pid.is_some_and(|p| p != pid) && ready {
            assert_eq!(now.crashes, before.crashes + 1, "{now:?}");
            println!(
                "{id} after {signal}: back, ready, after {:.1} s",
                crashed.elapsed().as_secs_f64()
            );
            return;
        }
        assert!(
            crashed.elapsed() < Duration::from_secs(10),
            "{id} was not started again within 10 s of {signal}: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A span of the gateway's trace in timeline `t` whose parent is not (yet) in that trace.
fn broken_parent_link(t: &Value) -> Option<Value> {
    let spans: Vec<&Value> = t["items"]
        .as_array()?
        .iter()
        .filter(|i| i["kind"] == "span")
        .collect();
    let root = spans
        .iter()
        .find(|s| s["service"] == "gateway" && s["name"] == "POST /api/orders")?;
    let in_trace: Vec<&&Value> = spans
        .iter()
        .filter(|s| s["trace_id"] == root["trace_id"])
        .collect();
    let ids: std::collections::HashSet<&str> = in_trace
        .iter()
        .filter_map(|s| s["span_id"].as_str())
        .collect();
    in_trace
        .into_iter()
        .find(|s| {
            s["parent_span_id"]
                .as_str()
                .is_some_and(|p| !ids.contains(p))
        })
        .map(|s| (*s).clone())
}

/// Polls the collector's correlation timeline for `cid` until `ok` holds (20 s at most).
async fn timeline(
    http: &reqwest::Client,
    api: &str,
    cid: &str,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let resp = http
            .get(format!("{api}/api/v1/correlations/{cid}"))
            .send()
            .await
            .expect("collector");
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if ok(&body) || Instant::now() > deadline {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[test]
fn one_request_is_one_story_in_the_collector_across_services_and_async_hops() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("demo");
    let mut demo = Demo::start(&data, &[]);
    let handle = wait_for_file(&data.join("demo.json"), Duration::from_secs(90));
    let gateway = handle["gateway"].as_str().expect("gateway").to_string();
    let api = handle["collector"]["api"]
        .as_str()
        .expect("collector api")
        .to_string();
    let rt = common::runtime();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let token: Value = http.post(format!("{gateway}/api/token")).json(&json!({"username": "demo", "password": "demo"}))
            .send().await.expect("token").json().await.expect("json");
        let token = token["access_token"].as_str().expect("token").to_string();
        // A lamp costs 34.13: the payment is declined and the saga compensates.
        let cid = format!("e2e-{}", std::process::id());
        let resp = http.post(format!("{gateway}/api/orders")).bearer_auth(&token)
            .header("x-correlation-id", &cid)
            .json(&json!({"customer_id": "e2e", "items": [{"sku": "SKU-LAMP", "quantity": 1}]}))
            .send().await.expect("order");
        assert_eq!(resp.headers().get("x-correlation-id").and_then(|v| v.to_str().ok()), Some(cid.as_str()));
        let order: Value = resp.json().await.expect("json");
        assert_eq!(order["status"], "cancelled", "{order}");

        // Everything below has arrived once these have (exporters batch for up to 500 ms).
        let tl = timeline(&http, &api, &cid, |t| {
            let has = |service: &str, name: &str| {
                t["items"].as_array().is_some_and(|a| a.iter().any(|i| i["service"] == service && i["name"] == name))
            };
            // Each service exports on its own timer: wait for every one this test reads.
            has("gateway", "POST /api/orders")
                && has("payments", "POST /payments/authorizations")
                && has("inventory", "POST /reservations/{id}/release")
                && has("notifications", "order.cancelled process")
                && has("order-history", "order.cancelled process")
                // A client span can arrive in an earlier batch than its parent.
                && broken_parent_link(t).is_none()
        })
        .await;
        let items = tl["items"].as_array().expect("items");
        let spans: Vec<&Value> = items.iter().filter(|i| i["kind"] == "span").collect();

        // One trace spans gateway → orders → inventory and payments, parent links intact.
        let root = spans.iter().find(|s| s["service"] == "gateway" && s["name"] == "POST /api/orders").expect("gateway server span");
        let trace = root["trace_id"].as_str().expect("trace");
        let in_trace: Vec<&&Value> = spans.iter().filter(|s| s["trace_id"] == trace).collect();
        if let Some(s) = broken_parent_link(&tl) {
            panic!("a broken parent link in {s}");
        }
        let services: std::collections::HashSet<&str> = in_trace.iter().filter_map(|s| s["service"].as_str()).collect();
        for s in ["gateway", "orders", "inventory", "payments"] {
            assert!(services.contains(s), "{s} missing from the request's trace: {services:?}");
        }
        // The compensation is in that trace: the reservation is released.
        assert!(in_trace.iter().any(|s| s["name"] == "POST /reservations/{id}/release"), "no compensation span");
        assert!(in_trace.iter().any(|s| s["name"] == "POST /payments/authorizations" && s["service"] == "payments"));

        // The gateway's server span follows the HTTP semantic conventions.
        let jaeger: Value = http.get(format!("{api}/api/traces/{trace}")).send().await.expect("trace").json().await.expect("json");
        let server = jaeger["data"][0]["spans"].as_array().expect("spans").iter()
            .find(|s| s["operationName"] == "POST /api/orders").expect("server span");
        let tag = |k: &str| server["tags"].as_array().and_then(|t| t.iter().find(|t| t["key"] == k)).map(|t| t["value"].clone());
        assert_eq!(tag("http.request.method"), Some(json!("POST")));
        assert_eq!(tag("http.route"), Some(json!("/api/orders")));
        assert_eq!(tag("http.response.status_code"), Some(json!(201)));
        assert_eq!(tag("server.address"), Some(json!("127.0.0.1")));
        assert_eq!(tag("span.kind"), Some(json!("server")));
        assert_eq!(tag("correlation_id"), Some(json!(cid)));

        // Logs of at least four services carry the correlation ID.
        let log_services: std::collections::HashSet<&str> = items.iter()
            .filter(|i| i["kind"] == "log" && i["correlation_id"] == cid.as_str())
            .filter_map(|i| i["service"].as_str()).collect();
        assert!(log_services.len() >= 4, "logs with the correlation ID came from {log_services:?}");

        // The notification and the history update happen in other traces, linked to the producer.
        for consumer in ["notifications", "order-history"] {
            let hop = spans.iter().find(|s| s["service"] == consumer && s["name"] == "order.cancelled process")
                .unwrap_or_else(|| panic!("no {consumer} span for the cancellation in {tl}"));
            assert_ne!(hop["trace_id"], trace, "{consumer} runs in its own trace");
            let link = hop["links"][0]["trace_id"].as_str().expect("a span link to the producer");
            assert_eq!(link, trace, "{consumer} links back to the request's trace");
        }
        the_old_shop_is_strangled_and_its_sidecar_speaks_for_it(&http, &gateway, &api).await;
        the_web_page_asks_its_bff_with_a_real_graphql_client(&http, &gateway, &api).await;
        let inventory = handle["services"]["inventory"][0].as_str().expect("inventory");
        inventory_answers_a_grpc_client_we_did_not_write(inventory).await;
        let notifications = handle["services"]["notifications"][0].as_str().expect("notifications");
        let low = the_stock_team_hears_of_a_product_running_low(&http, &gateway, &token, &api, notifications).await;
        notifications_answers_a_json_rpc_client_we_did_not_write(notifications, &low).await;
        let supervisor = handle["supervisor"].as_str().expect("supervisor");
        settings_change_live_without_a_restart(&http, &data.join("demo.json"), supervisor, &api).await;
        let shards: Vec<&str> = handle["services"]["order-history"].as_array().expect("order-history")
            .iter().filter_map(|u| u.as_str()).collect();
        the_history_survives_a_kill_9(&http, &gateway, &token, supervisor, &shards, &data).await;
    });
    assert!(demo.stop().success(), "the demo stops cleanly");
}

/// The strangler fig and the sidecar, on the default route table: the catalogue has moved to
/// inventory (the legacy is not called for it), order lookups still reach the legacy
/// monolith, which has no OpenTelemetry in it and still appears in the trace, under the
/// gateway's call, and in the logs, through its sidecar.
async fn the_old_shop_is_strangled_and_its_sidecar_speaks_for_it(
    http: &reqwest::Client,
    gateway: &str,
    api: &str,
) {
    let cid = format!("shop-{}", std::process::id());
    for path in ["/shop/products", "/shop/orders/L-1001"] {
        let resp = http
            .get(format!("{gateway}{path}"))
            .header("x-correlation-id", &cid)
            .send()
            .await
            .expect("gateway");
        assert_eq!(resp.status(), 200, "{path}");
    }
    let has = |t: &Value, kind: &str, service: &str, name: &str| {
        t["items"].as_array().is_some_and(|a| {
            a.iter()
                .any(|i| i["kind"] == kind && i["service"] == service && i["name"] == name)
        })
    };
    let tl = timeline(http, api, &cid, |t| {
        has(t, "span", "legacy", "GET /shop/orders/{order_number}")
            && has(t, "span", "inventory", "GET /products")
            && has(t, "span", "gateway", "GET legacy")
            && t["items"].as_array().is_some_and(|a| {
                a.iter()
                    .any(|i| i["kind"] == "log" && i["service"] == "legacy")
            })
    })
    .await;
    let spans: Vec<&Value> = tl["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|i| i["kind"] == "span")
        .collect();
    let find = |service: &str, name: &str| {
        *spans
            .iter()
            .find(|s| s["service"] == service && s["name"] == name)
            .unwrap_or_else(|| panic!("no {service} span {name} in {tl}"))
    };
    // The catalogue's request never reached the legacy: its trace is the gateway's and
    // inventory's.
    let catalogue = find("gateway", "GET /shop/products");
    let in_trace = |root: &Value| -> Vec<&Value> {
        spans
            .iter()
            .filter(|s| s["trace_id"] == root["trace_id"])
            .copied()
            .collect()
    };
    let reached: std::collections::BTreeSet<&str> = in_trace(catalogue)
        .iter()
        .filter_map(|s| s["service"].as_str())
        .collect();
    assert_eq!(reached, ["gateway", "inventory"].into(), "{tl}");
    // The order lookup did: the legacy's server span (the sidecar's) is a child of the
    // gateway's call to it.
    let lookup = in_trace(find("gateway", "GET /shop/orders/{order_number}"));
    let named = |service: &str, name: &str| {
        *lookup
            .iter()
            .find(|s| s["service"] == service && s["name"] == name)
            .unwrap_or_else(|| panic!("no {service} span {name} in the lookup's trace: {tl}"))
    };
    assert_eq!(
        named("legacy", "GET /shop/orders/{order_number}")["parent_span_id"],
        named("gateway", "GET legacy")["span_id"],
        "{tl}"
    );
    // Who answered is on the gateway's span.
    for (span, backend) in [
        (catalogue, "inventory"),
        (find("gateway", "GET /shop/orders/{order_number}"), "legacy"),
    ] {
        let trace = span["trace_id"].as_str().expect("trace id");
        let jaeger: Value = http
            .get(format!("{api}/api/traces/{trace}"))
            .send()
            .await
            .expect("trace")
            .json()
            .await
            .expect("json");
        let server = jaeger["data"][0]["spans"]
            .as_array()
            .expect("spans")
            .iter()
            .find(|s| s["spanID"] == span["span_id"])
            .expect("the server span");
        let tag = server["tags"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["key"] == "strangler.backend"))
            .map(|t| t["value"].clone());
        assert_eq!(tag, Some(json!(backend)), "{server}");
    }
}

/// Choreography: an order that takes monitors low makes inventory publish `stock.low`,
/// and notifications, which nobody calls for it, alerts the stock team: once, in a trace of
/// its own linked to the order's, under the order's correlation ID. An order after that,
/// with the product already low, alerts nobody. Returns the order that took it low.
async fn the_stock_team_hears_of_a_product_running_low(
    http: &reqwest::Client,
    gateway: &str,
    token: &str,
    api: &str,
    notifications: &str,
) -> String {
    use gauntlet_demo_system::inventory::{CATALOG, LOW_STOCK_UNITS};
    let on_hand = CATALOG
        .iter()
        .find(|p| p.0 == "SKU-MONITOR")
        .expect("monitors")
        .3;
    let order = |cid: String, quantity: i64| async move {
        let resp = http.post(format!("{gateway}/api/orders")).bearer_auth(token)
            .header("x-correlation-id", &cid)
            .json(&json!({"customer_id": "e2e-stock", "items": [{"sku": "SKU-MONITOR", "quantity": quantity}]}))
            .send().await.expect("order");
        let order: Value = resp.json().await.expect("json");
        assert_eq!(order["status"], "confirmed", "{order}");
        order["id"].as_str().expect("id").to_string()
    };
    // Each service exports on its own timer: wait for every span the test reads.
    let heard = |cid: String, kind: &'static str| async move {
        let wanted = [
            ("notifications", kind),
            ("gateway", "POST /api/orders"),
            ("inventory", "POST /reservations/{id}/confirm"),
        ];
        timeline(http, api, &cid, |t| {
            t["items"].as_array().is_some_and(|a| {
                wanted
                    .iter()
                    .all(|(s, n)| a.iter().any(|i| i["service"] == *s && i["name"] == *n))
            })
        })
        .await
    };
    let cid = format!("low-{}", std::process::id());
    let id = order(cid.clone(), on_hand - LOW_STOCK_UNITS).await;
    let tl = heard(cid, "stock.low process").await;
    let spans: Vec<&Value> = tl["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|i| i["kind"] == "span")
        .collect();
    let root = spans
        .iter()
        .find(|s| s["service"] == "gateway" && s["name"] == "POST /api/orders")
        .expect("the order's span");
    let confirm = spans
        .iter()
        .find(|s| s["service"] == "inventory" && s["name"] == "POST /reservations/{id}/confirm")
        .expect("inventory's confirmation, which published stock.low");
    assert_eq!(
        confirm["trace_id"], root["trace_id"],
        "the confirmation is the order's"
    );
    let hop = spans
        .iter()
        .find(|s| s["service"] == "notifications" && s["name"] == "stock.low process")
        .unwrap_or_else(|| panic!("no notifications span for stock.low in {tl}"));
    assert_ne!(
        hop["trace_id"], root["trace_id"],
        "notifications reacts in a trace of its own"
    );
    assert_eq!(
        hop["links"][0]["trace_id"], root["trace_id"],
        "linked back to the order's trace"
    );
    let client = notifications_client(notifications);
    let alerts = || async { client.stock_alerts().await.expect("the stock alerts") };
    let first = alerts().await;
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(
        (first[0].sku.as_str(), first[0].reservation_id.as_str()),
        ("SKU-MONITOR", id.as_str())
    );
    assert_eq!(first[0].on_hand, LOW_STOCK_UNITS);
    // Already low: this one takes a monitor, publishes no stock.low, and alerts nobody.
    let cid = format!("lower-{}", std::process::id());
    order(cid.clone(), 1).await;
    heard(cid, "stock.confirmed process").await;
    assert_eq!(alerts().await, first, "one alert per crossing");
    id
}

/// Inventory's catalogue answers a gRPC client we did not write (Python's grpcio, its stubs
/// generated from the provider's .proto by grpcio-tools) on the instance's own port: the
/// products the mobile BFF's own client reads, one by SKU, `NOT_FOUND` for a SKU nobody
/// sells and `UNIMPLEMENTED` for a method the service does not have.
async fn inventory_answers_a_grpc_client_we_did_not_write(inventory: &str) {
    use gauntlet_demo_system::inventory::CatalogClient;
    use gauntlet_demo_system::platform::client::HttpClient;
    use gauntlet_demo_system::platform::resilience::ResilienceConfig;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("demo-system/proto");
    let out = tokio::process::Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/grpc_catalog.py"))
        .arg(inventory)
        .arg(&root)
        .output()
        .await
        .expect("python3 (scripts/test.sh installs grpcio-tools)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value = serde_json::from_slice(&out.stdout).expect("the client's JSON");
    let http =
        HttpClient::at("inventory", inventory, &ResilienceConfig::default()).expect("client");
    let ours = CatalogClient::new(http)
        .products()
        .await
        .expect("products over our client");
    assert_eq!(
        got["products"],
        serde_json::to_value(&ours).expect("products"),
        "{got}"
    );
    assert_eq!(got["one"], json!(ours[0].sku), "{got}");
    assert_eq!(got["unknown"]["code"], "NOT_FOUND", "{got}");
    assert_eq!(got["no_method"], "UNIMPLEMENTED", "{got}");
}

/// Notifications' own typed client (JSON-RPC over the demo's resilient HTTP client).
fn notifications_client(url: &str) -> gauntlet_demo_system::notifications::NotificationsClient {
    use gauntlet_demo_system::platform::client::HttpClient;
    use gauntlet_demo_system::platform::resilience::ResilienceConfig;
    let http = HttpClient::at("notifications", url, &ResilienceConfig::default()).expect("client");
    gauntlet_demo_system::notifications::NotificationsClient::new(http)
}

/// Notifications speaks JSON-RPC 2.0 to a client we did not write (Python's
/// jsonrpcclient): a call, a batch answered call by call in its order (the notification in it
/// unanswered; an unknown method and bad params as their error codes), a body that is not
/// JSON refused with a parse error; the answers are what the typed client reads.
async fn notifications_answers_a_json_rpc_client_we_did_not_write(
    notifications: &str,
    order_id: &str,
) {
    use gauntlet_demo_system::notifications::NotificationQuery;
    let client = notifications_client(notifications);
    let q = NotificationQuery {
        order_id: Some(order_id.to_string()),
        customer_id: None,
    };
    // The confirmation reaches notifications through the orders feed, on its own time.
    let deadline = Instant::now() + Duration::from_secs(15);
    let told = loop {
        let told = client.list(&q).await.expect("the order's notifications");
        if !told.is_empty() || Instant::now() > deadline {
            break told;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0].kind, "order_confirmed");
    let out = tokio::process::Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/json_rpc.py"))
        .args([notifications, order_id])
        .output()
        .await
        .expect("python3 (scripts/test.sh installs jsonrpcclient)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value = serde_json::from_slice(&out.stdout).expect("the client's JSON");
    let alerts = client.stock_alerts().await.expect("alerts");
    assert_eq!(got["alerts"]["status"], 200, "{got}");
    assert_eq!(
        got["alerts"]["ok"],
        serde_json::to_value(&alerts).expect("alerts"),
        "{got}"
    );
    let batch = &got["batch"];
    assert_eq!(batch["status"], 200, "{got}");
    let answers = batch["answers"].as_array().expect("answers");
    assert_eq!(answers.len(), 4, "the notification is not answered: {got}");
    let sent = batch["sent"].as_array().expect("sent");
    for (answer, id) in answers.iter().zip(sent) {
        assert_eq!(&answer["id"], id, "answered in order: {got}");
    }
    assert_eq!(
        answers[0]["ok"],
        serde_json::to_value(&told).expect("told"),
        "{got}"
    );
    assert_eq!(answers[1]["ok"], got["alerts"]["ok"], "{got}");
    assert_eq!(answers[2]["code"], -32601, "{got}");
    assert!(
        answers[2]["message"]
            .as_str()
            .is_some_and(|m| m.contains("notifications.send")),
        "{got}"
    );
    assert_eq!(answers[3]["code"], -32602, "{got}");
    assert!(
        answers[3]["message"]
            .as_str()
            .is_some_and(|m| m.contains("colour")),
        "{got}"
    );
    assert_eq!(
        (
            got["garbage"]["status"].clone(),
            got["garbage"]["code"].clone()
        ),
        (json!(400), json!(-32700)),
        "{got}"
    );
}

/// The web BFF, asked as a web page would with a GraphQL client we did not write (Python's
/// gql, validating against the checked-in SDL): the page's query comes back whole, the
/// customer's cancelled order with its declined payment; a query the SDL does not have
/// never leaves the client; one past the server's limits is refused by it. The BFF is a
/// service of its own in the trace: under the gateway's call, asking inventory,
/// order-history and payments, with the operation's name on its span.
async fn the_web_page_asks_its_bff_with_a_real_graphql_client(
    http: &reqwest::Client,
    gateway: &str,
    api: &str,
) {
    let cid = format!("page-{}", std::process::id());
    let sdl = Path::new(env!("CARGO_MANIFEST_DIR")).join("demo-system/src/web_bff/schema.graphql");
    let out = tokio::process::Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/web_page.py"))
        .arg(format!("{gateway}/graphql"))
        .arg(&sdl)
        .args([cid.as_str(), "e2e"])
        .output()
        .await
        .expect("python3 (scripts/test.sh installs gql)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value = serde_json::from_slice(&out.stdout).expect("the client's JSON");
    let page = &got["page"];
    assert!(
        page["products"].as_array().is_some_and(|p| p.len() >= 3),
        "{got}"
    );
    let order = &page["customerOrders"][0];
    assert_eq!(order["status"], "cancelled", "{got}");
    assert_eq!(order["payments"][0]["status"], "declined", "{got}");
    let local = got["refused_by_client"].as_str().unwrap_or_default();
    assert!(local.contains("Cannot query field 'colour'"), "{got}");
    assert!(
        got["refused_by_server"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("too complex")),
        "{got}"
    );

    let has = |t: &Value, service: &str, name: &str| {
        t["items"].as_array().is_some_and(|a| {
            a.iter()
                .any(|i| i["kind"] == "span" && i["service"] == service && i["name"] == name)
        })
    };
    let tl = timeline(http, api, &cid, |t| {
        has(t, "web-bff", "POST /graphql")
            && has(t, "gateway", "POST web-bff")
            && has(t, "inventory", "GET /products")
            && has(t, "order-history", "GET /customers/{id}/orders")
            && has(t, "payments", "GET /payments/authorizations")
    })
    .await;
    let spans: Vec<&Value> = tl["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|i| i["kind"] == "span")
        .collect();
    let find = |service: &str, name: &str| {
        *spans
            .iter()
            .find(|s| s["service"] == service && s["name"] == name)
            .unwrap_or_else(|| panic!("no {service} span {name} in {tl}"))
    };
    let bff = find("web-bff", "POST /graphql");
    assert_eq!(
        bff["parent_span_id"],
        find("gateway", "POST web-bff")["span_id"],
        "{tl}"
    );
    for (service, name) in [
        ("inventory", "GET /products"),
        ("payments", "GET /payments/authorizations"),
    ] {
        assert_eq!(
            find(service, name)["trace_id"],
            bff["trace_id"],
            "{service}: {tl}"
        );
    }
    let trace = bff["trace_id"].as_str().expect("trace id");
    let jaeger: Value = http
        .get(format!("{api}/api/traces/{trace}"))
        .send()
        .await
        .expect("trace")
        .json()
        .await
        .expect("json");
    let server = jaeger["data"][0]["spans"]
        .as_array()
        .expect("spans")
        .iter()
        .find(|s| s["spanID"] == bff["span_id"])
        .expect("the BFF's server span");
    let operation = server["tags"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["key"] == "graphql.operation.name"))
        .map(|t| t["value"].clone());
    assert_eq!(operation, Some(json!("Page")), "{server}");
    // The BFF's call for customer e2e's orders went to e2e's shard of order-history, and
    // its span says which.
    let shard = gauntlet_demo_system::platform::sharding::Shard::index_of("e2e", 2);
    let call = jaeger["data"][0]["spans"]
        .as_array()
        .expect("spans")
        .iter()
        .find(|s| s["operationName"] == "GET order-history")
        .expect("the BFF's call to order-history");
    let tag = call["tags"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["key"] == "shard"))
        .map(|t| t["value"].clone());
    assert_eq!(tag, Some(json!(shard)), "{call}");
}

/// `gauntlet demo config`: a key set through the CLI reaches the running orders instance
/// (its client of inventory reports one attempt, and it logs `config.applied` to the
/// collector) on the same process; bad keys and values are refused with the reason and
/// change nothing; unset gives the file's setting back. (What one attempt does to calls is
/// measured at an upstream in demo-system/tests/resilience.rs.)
async fn settings_change_live_without_a_restart(
    http: &reqwest::Client,
    handle: &Path,
    supervisor: &str,
    api: &str,
) {
    let config = |args: &[&str]| {
        let o = Command::new(BIN)
            .args(["demo", "config"])
            .args(args)
            .arg("--demo")
            .arg(handle)
            .output()
            .expect("gauntlet demo config");
        let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_string();
        (o.status.code(), text(&o.stdout), text(&o.stderr))
    };
    let orders = instance(http, supervisor, "orders-1").await;
    let started_with = orders_inventory_upstream(http, &orders.url)
        .await
        .max_attempts;
    assert!(started_with > 1, "orders retries inventory by default");
    let key = "orders/inventory/retry/max_attempts";
    let (code, out, err) = config(&["set", key, "1"]);
    assert_eq!(code, Some(0), "{out} {err}");
    let url = orders.url.as_str();
    let applied = |want: usize| async move {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if orders_inventory_upstream(http, url).await.max_attempts == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "orders never took {want} attempts"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    applied(1).await;
    assert_eq!(config(&["get", key]).1, "1");
    assert!(
        config(&["list"])
            .1
            .lines()
            .any(|l| l.starts_with(key) && l.ends_with(" 1"))
    );
    let again = instance(http, supervisor, "orders-1").await;
    assert_eq!(
        (again.pid, again.restarts),
        (orders.pid, orders.restarts),
        "no restart"
    );

    let (code, _, err) = config(&["set", key, "zero"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("from 1 to 10"), "{err}");
    let (code, _, err) = config(&["get", "orders/inventory/retries"]);
    assert_eq!(code, Some(1));
    assert!(err.contains(key), "the keys are listed: {err}");
    assert_eq!(
        config(&["get", key]).1,
        "1",
        "a refused value changed nothing"
    );

    // The change is in orders' logs in the collector.
    let logs = format!("{api}/api/v1/logs?service=orders&text=config.applied");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let page: Value = http
            .get(&logs)
            .send()
            .await
            .expect("logs")
            .json()
            .await
            .expect("json");
        if page["data"].as_array().is_some_and(|d| !d.is_empty()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no config.applied log from orders: {page}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let (code, out, err) = config(&["unset", key]);
    assert_eq!(code, Some(0), "{out} {err}");
    applied(started_with).await;
    assert_eq!(config(&["get", key]).0, Some(1), "not set any more");
    a_consul_client_reads_and_writes_the_settings(http, handle, url).await;
    a_route_flag_and_the_weights_change_live(http, handle, &config).await;
}

/// A `gauntlet` command's exit code, stdout and stderr.
type CliRun = (Option<i32>, String, String);

/// A feature flag and the canary's weights from the configuration store, live: the old
/// shop's order lookups move from the legacy monolith to orders and back (the legacy knows
/// its order L-1001, orders does not), and inventory's version weights set and cleared; a
/// value their reader would not take is refused.
async fn a_route_flag_and_the_weights_change_live(
    http: &reqwest::Client,
    handle: &Path,
    config: &dyn Fn(&[&str]) -> CliRun,
) {
    let demo = gauntlet_demo_system::handle::DemoHandle::load(handle).expect("demo.json");
    let registry = demo.services["registry"][0].clone();
    let lookup = format!("{}/shop/orders/L-1001", demo.gateway);
    let until = |want: u16| {
        let lookup = lookup.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let got = http.get(&lookup).send().await.expect("gateway").status();
                if got.as_u16() == want {
                    return;
                }
                assert!(
                    Instant::now() < deadline,
                    "L-1001 still answers {got}, want {want}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    until(200).await;
    let flag = "gateway/shop_routes/order";
    let (code, out, err) = config(&["set", flag, "orders"]);
    assert_eq!(code, Some(0), "{out} {err}");
    until(404).await;
    let (code, _, err) = config(&["set", flag, "inventory"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("legacy or orders"), "{err}");
    assert_eq!(config(&["unset", flag]).0, Some(0));
    until(200).await;

    let weights = "registry/weights/inventory";
    let routing = || async {
        http.get(format!("{registry}/services/inventory/routing"))
            .send()
            .await
            .expect("registry")
            .json::<gauntlet_demo_system::registry::Routing>()
            .await
            .expect("routing")
            .weights
    };
    let (code, out, err) = config(&["set", weights, r#"{"v1": 90, "v2": 10}"#]);
    assert_eq!(code, Some(0), "{out} {err}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while routing().await.of("v2") != 10 {
        assert!(
            Instant::now() < deadline,
            "the registry never took the weights"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (code, _, err) = config(&["set", weights, r#"{"v1": 90}"#]);
    assert_eq!(code, Some(1));
    assert!(err.contains("add up to 90"), "{err}");
    assert_eq!(config(&["unset", weights]).0, Some(0));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !routing().await.is_empty() {
        assert!(Instant::now() < deadline, "the weights were never cleared");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// py-consul, a Consul client we did not write, against the registry: it writes a deadline,
/// reads it back, and its blocking read wakes on another writer's change, which the
/// running orders process takes; a value out of range comes back as Consul's client
/// reports a refusal.
async fn a_consul_client_reads_and_writes_the_settings(
    http: &reqwest::Client,
    handle: &Path,
    orders: &str,
) {
    let h: Value = serde_json::from_slice(&std::fs::read(handle).expect("handle")).expect("json");
    let registry = h["services"]["registry"][0].as_str().expect("registry");
    let key = "orders/inventory/timeout_ms";
    let out = tokio::process::Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/consul_kv.py"))
        .args([registry, key, "1500", "1700"])
        .output()
        .await
        .expect("python3 (scripts/test.sh installs py-consul)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).expect("the client's JSON");
    assert_eq!(
        (&seen["put"], &seen["got"]),
        (&json!(true), &json!("1500")),
        "{seen}"
    );
    assert_eq!(
        seen["index_moved"], true,
        "the blocking read answered a later index: {seen}"
    );
    assert_eq!(seen["after"][key], "1700", "woken by the change: {seen}");
    let refused = seen["bad"]["refused"].as_str().unwrap_or_default();
    assert!(refused.contains("from 1 to 600000"), "{seen}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while orders_inventory_upstream(http, orders).await.timeout_ms != Some(1700) {
        assert!(
            Instant::now() < deadline,
            "orders never took the 1700 ms deadline"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = Command::new(BIN)
        .args(["demo", "config", "unset", key, "--demo"])
        .arg(handle)
        .status();
}

/// Polyglot persistence keeps the SQLite services' guarantee: order-history's read model
/// (documents in redb) holds every order it had taken before a `kill -9` of its process,
/// each with the same steps (none lost, none twice), and takes the next order after it.
/// And it is a projection: its file lost while the service was down, the next start
/// rebuilds it from the feed's beginning to the same orders and steps.
async fn the_history_survives_a_kill_9(
    http: &reqwest::Client,
    gateway: &str,
    token: &str,
    supervisor: &str,
    shards: &[&str],
    demo_dir: &Path,
) {
    use gauntlet_demo_system::order_history::{OrderHistoryView, OrderView};
    use gauntlet_demo_system::platform::sharding::Shard;
    let customer = format!("durable-{}", std::process::id());
    // The shard that keeps this customer's orders: its instance, its files.
    let shard = Shard::index_of(&customer, shards.len() as u16);
    let history = shards[usize::from(shard - 1)];
    let instance = format!("order-history-{shard}");
    let instance = instance.as_str();
    let order = || async {
        let resp = http
            .post(format!("{gateway}/api/orders"))
            .bearer_auth(token)
            .json(
                &json!({"customer_id": customer, "items": [{"sku": "SKU-STICKER", "quantity": 1}]}),
            )
            .send()
            .await
            .expect("order");
        assert_eq!(resp.status(), 201);
    };
    let listed = || async {
        http.get(format!("{history}/customers/{customer}/orders"))
            .send()
            .await
            .expect("history")
            .json::<Vec<OrderView>>()
            .await
            .expect("views")
    };
    let settled = |n: usize| async move {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let views = listed().await;
            if views.len() == n && views.iter().all(|v| v.status.as_str() == "confirmed") {
                return views;
            }
            assert!(
                Instant::now() < deadline,
                "order-history never showed {n} confirmed: {views:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let histories = |views: Vec<OrderView>| async move {
        let mut out = Vec::new();
        for v in views {
            let h: OrderHistoryView = http
                .get(format!("{history}/orders/{}/history", v.order_id))
                .send()
                .await
                .expect("history")
                .json()
                .await
                .expect("view");
            out.push(h);
        }
        out
    };
    for _ in 0..3 {
        order().await;
    }
    let before = histories(settled(3).await).await;
    healed(http, supervisor, instance, Signal::SIGKILL).await;
    let after = histories(listed().await).await;
    assert_eq!(
        after, before,
        "every order and step the read model held before the kill"
    );
    order().await;
    let four = histories(settled(4).await).await;
    assert_eq!(four.len(), 4, "it reads the feed on from where it was");

    let act = |action: &'static str| async move {
        let resp = http
            .post(format!("{supervisor}/instances/{instance}/{action}"))
            .send()
            .await
            .expect("supervisor");
        assert_eq!(resp.status(), 200, "{action}");
    };
    act("kill").await;
    std::fs::remove_file(demo_dir.join(format!("services/{instance}.redb")))
        .expect("the read model's file");
    act("start").await;
    let rebuilt = histories(settled(4).await).await;
    assert_eq!(
        rebuilt, four,
        "rebuilt from the feed: every order and step, once"
    );
}

/// The orders service's calls to each inventory instance so far.
async fn orders_to_inventory(
    http: &reqwest::Client,
    orders: &str,
) -> std::collections::BTreeMap<String, u64> {
    orders_inventory_upstream(http, orders)
        .await
        .calls_per_instance
}

/// What the orders service reports of its inventory upstream.
async fn orders_inventory_upstream(
    http: &reqwest::Client,
    orders: &str,
) -> gauntlet_demo_system::platform::resilience::UpstreamSnapshot {
    let report: gauntlet_demo_system::platform::resilience::ResilienceReport = http
        .get(format!("{orders}/admin/resilience"))
        .send()
        .await
        .expect("orders admin")
        .json()
        .await
        .expect("report");
    report
        .upstream("inventory")
        .expect("orders calls inventory")
        .clone()
}

#[test]
fn a_dead_inventory_instance_costs_no_order_and_a_restarted_one_gets_traffic_again() {
    use gauntlet_demo_system::handle::DemoHandle;
    use gauntlet_demo_system::orders::{Item, OrderStatus, PlaceOrder};
    use gauntlet_demo_system::registry::RegistryClient;

    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("demo");
    let mut demo = Demo::start(&data, &[]);
    wait_for_file(&data.join("demo.json"), Duration::from_secs(90));
    let handle = DemoHandle::load(&data.join("demo.json")).expect("handle");
    let rt = common::runtime();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let gateway = common::demo_gateway(&handle.gateway).await;
        let orders = handle.services["orders"][0].clone();
        let inv1 = handle.services["inventory"][0].clone();
        let registry = RegistryClient::new(&handle.services["registry"][0]);
        let mut n = 0;
        let mut place = || {
            n += 1;
            let gateway = gateway.clone();
            let order = PlaceOrder {
                customer_id: format!("resilient-{n}"),
                items: vec![Item {
                    sku: "SKU-CABLE".into(),
                    quantity: 1,
                }],
            };
            async move { gateway.place_order(&order, None).await }
        };
        // Orders reaches both inventory instances through discovery.
        for _ in 0..4 {
            let placed = place().await.expect("order");
            assert_eq!(placed.body.status, OrderStatus::Confirmed);
        }
        let before = orders_to_inventory(&http, &orders).await;
        let inv2 = handle.services["inventory"][1].clone();
        let next = handle.services["inventory-v2"][0].clone();
        for instance in [&inv1, &inv2, &next] {
            // inventory-v2 gets one call in ten (the canary's 90/10): the 6th call is its.
            assert!(
                before.contains_key(instance),
                "orders called both v1 instances and v2's: {before:?}"
            );
        }

        // inventory-1 crashes. Every order still goes through: the retry lands on
        // inventory-2, and the dead instance is skipped until the registry drops it.
        let killed = http
            .post(format!("{}/instances/inventory-1/kill", handle.supervisor))
            .send()
            .await
            .expect("kill");
        assert_eq!(killed.status(), 200);
        let crashed = Instant::now();
        let mut during = 0;
        loop {
            let placed = place()
                .await
                .unwrap_or_else(|e| panic!("an order failed while inventory-1 was down: {e}"));
            assert_eq!(placed.status, 201);
            assert_eq!(
                placed.body.status,
                OrderStatus::Confirmed,
                "{:?}",
                placed.body
            );
            during += 1;
            let listed = registry.healthy("inventory").await.expect("registry");
            if listed.len() == 2 && during >= 10 {
                assert!(
                    listed.iter().all(|i| i.address != inv1),
                    "the registry dropped the dead instance: {listed:?}"
                );
                break;
            }
            assert!(
                crashed.elapsed() < Duration::from_secs(20),
                "the registry never dropped inventory-1 (TTL is 10 s)"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        println!(
            "inventory-1 down: {during} orders placed, all confirmed, until the registry dropped it after {:.1} s",
            crashed.elapsed().as_secs_f64()
        );
        // The dead instance was tried while down, and the retries covered for it.
        let after = orders_inventory_upstream(&http, &orders).await;
        assert!(
            after.calls_per_instance.get(&inv1) > before.get(&inv1),
            "inventory-1 was never called while down, so nothing was proven: {after:?}"
        );
        assert!(after.retries >= 1, "{after:?}");

        // Restarted, it registers again and gets its share of traffic.
        let restarted = http
            .post(format!(
                "{}/instances/inventory-1/restart",
                handle.supervisor
            ))
            .send()
            .await
            .expect("restart");
        assert_eq!(restarted.status(), 200);
        let calls_before = orders_to_inventory(&http, &orders)
            .await
            .get(&inv1)
            .copied()
            .unwrap_or(0);
        let back = Instant::now();
        loop {
            let placed = place().await.expect("order after the restart");
            assert_eq!(placed.body.status, OrderStatus::Confirmed);
            let now = orders_to_inventory(&http, &orders)
                .await
                .get(&inv1)
                .copied()
                .unwrap_or(0);
            if now > calls_before {
                break;
            }
            assert!(
                back.elapsed() < Duration::from_secs(20),
                "the restarted inventory-1 never got traffic again"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    assert!(demo.stop().success(), "the demo stops cleanly");
}

/// Whether `pid` is still a live process (a zombie waiting to be reaped is not).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().to_string())
        })
        .is_some_and(|rest| !rest.starts_with('Z') && !rest.starts_with('X'))
}

#[test]
fn a_demo_killed_with_sigkill_takes_its_children_with_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("demo");
    let mut demo = Demo::start(&data, &[]);
    let handle = wait_for_file(&data.join("demo.json"), Duration::from_secs(90));
    let supervisor = handle["supervisor"]
        .as_str()
        .expect("supervisor")
        .to_string();
    let gateway = handle["gateway"].as_str().expect("gateway").to_string();
    let rt = common::runtime();
    let list: Vec<gauntlet_demo_system::supervisor::InstanceInfo> = rt.block_on(async {
        reqwest::get(format!("{supervisor}/instances"))
            .await
            .expect("list")
            .json()
            .await
            .expect("typed list")
    });
    let pids: Vec<i32> = list
        .iter()
        .filter_map(|i| i.pid)
        .map(|p| p as i32)
        .collect();
    assert_eq!(
        pids.len(),
        gauntlet_demo_system::topology::InstanceId::all().count()
    );
    assert!(pids.iter().all(|p| alive(*p)));

    // No SIGTERM, no cleanup: the supervisor just vanishes.
    demo.0.kill().expect("SIGKILL");
    demo.0.wait().expect("reaped");
    let deadline = Instant::now() + Duration::from_secs(20);
    while pids.iter().any(|p| alive(*p)) {
        assert!(
            Instant::now() < deadline,
            "children outlived their killed parent: {:?}",
            pids.iter().filter(|p| alive(**p)).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        std::net::TcpStream::connect(gateway.trim_start_matches("http://")).is_err(),
        "the gateway port is still open"
    );
}

#[test]
fn a_fixed_port_already_taken_is_named_before_anything_starts() {
    // Hold the gateway's documented port (if something else already holds it, the demo
    // must refuse all the same).
    let _held = std::net::TcpListener::bind("127.0.0.1:8080");
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("demo");
    let mut child = Command::new(BIN)
        .args(["demo", "--no-traffic", "--data-dir"])
        .arg(&data)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the demo started instead of refusing");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("read");
    assert!(!status.success());
    assert!(
        err.contains("127.0.0.1:8080 (gateway)") && err.contains("--ports auto"),
        "{err}"
    );
    assert!(!data.join("logs").exists(), "nothing was started");
    assert!(!data.join("demo.json").exists());
}

/// Started in-process through the launch library (the binary is only the services' image).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chaos_demo_routes_every_hop_through_a_proxy_named_after_its_edge() {
    use gauntlet_demo_launch::{LaunchOptions, launch};
    use gauntlet_demo_system::handle::DemoHandle;
    use gauntlet_demo_system::orders::{Item, OrderStatus, PlaceOrder};
    use gauntlet_demo_system::registry::RegistryClient;

    let dir = tempfile::tempdir().expect("tempdir");
    let mut options = LaunchOptions::new(common::BIN.into(), dir.path().join("demo"));
    options.chaos = true;
    let demo = launch(options).await.expect("the demo starts");
    let handle = demo.handle.clone();
    assert_eq!(
        DemoHandle::load(&demo.handle_path).ok().as_ref(),
        Some(&handle),
        "demo.json says what launch returned"
    );
    let chaos = handle
        .chaos
        .clone()
        .expect("the handle names the chaos API");
    let names: Vec<&str> = chaos.proxies.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "gateway_to_inventory_1",
            "gateway_to_inventory_2",
            "gateway_to_inventory_shadow",
            "gateway_to_inventory_v2",
            "gateway_to_legacy",
            "gateway_to_mobile_bff",
            "gateway_to_notifications",
            "gateway_to_order_history_1",
            "gateway_to_order_history_2",
            "gateway_to_orders_1",
            "gateway_to_orders_2",
            "gateway_to_payments",
            "gateway_to_web_bff",
            "mobile_bff_to_inventory_1",
            "mobile_bff_to_inventory_2",
            "mobile_bff_to_inventory_v2",
            "mobile_bff_to_orders_1",
            "mobile_bff_to_orders_2",
            "notifications_to_inventory_1",
            "notifications_to_inventory_2",
            "notifications_to_inventory_v2",
            "notifications_to_orders_1",
            "notifications_to_orders_2",
            "order_history_to_orders_1",
            "order_history_to_orders_2",
            "orders_to_inventory_1",
            "orders_to_inventory_2",
            "orders_to_inventory_v2",
            "orders_to_payments",
            "registry_to_gateway",
            "registry_to_inventory_1",
            "registry_to_inventory_2",
            "registry_to_inventory_shadow",
            "registry_to_inventory_v2",
            "registry_to_legacy",
            "registry_to_mobile_bff",
            "registry_to_notifications",
            "registry_to_order_history_1",
            "registry_to_order_history_2",
            "registry_to_orders_1",
            "registry_to_orders_2",
            "registry_to_payments",
            "registry_to_web_bff",
            "web_bff_to_inventory_1",
            "web_bff_to_inventory_2",
            "web_bff_to_inventory_v2",
            "web_bff_to_order_history_1",
            "web_bff_to_order_history_2",
            "web_bff_to_payments",
        ]
    );
    let http = reqwest::Client::new();
    let listed: serde_json::Map<String, Value> = http
        .get(format!("{}/proxies", chaos.api))
        .send()
        .await
        .expect("the Toxiproxy API")
        .json()
        .await
        .expect("proxies");
    assert_eq!(
        listed.len(),
        names.len(),
        "the API lists every proxy the handle names"
    );
    assert!(listed.values().all(|p| p["enabled"] == true));
    let gateway = common::demo_gateway(&handle.gateway).await;
    let order = PlaceOrder {
        customer_id: "chaos".into(),
        items: vec![Item {
            sku: "SKU-CABLE".into(),
            quantity: 1,
        }],
    };
    let placed = gateway.place_order(&order, None).await.expect("order");
    assert_eq!(placed.body.status, OrderStatus::Confirmed);
    // The saga's calls went through the proxies (bytes counted there).
    let metrics = chaos_metrics(&http, &chaos.api).await;
    let bytes = |proxy: &str| proxy_bytes(&metrics, proxy);
    assert!(bytes("orders_to_payments") > 0, "{metrics}");
    assert!(
        bytes("gateway_to_orders_1") + bytes("gateway_to_orders_2") > 0,
        "{metrics}"
    );
    // The registry's health checks of an instance go through the proxy in front of it (they
    // run every 2 s).
    let deadline = Instant::now() + Duration::from_secs(6);
    loop {
        let m = chaos_metrics(&http, &chaos.api).await;
        if proxy_bytes(&m, "registry_to_inventory_2") > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no health check through its proxy: {m}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // A fault on one edge shows in the request: payments answers 400 ms late.
    let toxic = http
        .post(format!("{}/proxies/orders_to_payments/toxics", chaos.api))
        .body(r#"{"type": "latency", "attributes": {"latency": 400}}"#)
        .send()
        .await
        .expect("toxic");
    assert_eq!(toxic.status(), 200);
    let t = Instant::now();
    let placed = gateway.place_order(&order, None).await.expect("order");
    assert_eq!(placed.body.status, OrderStatus::Confirmed);
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "{:?}",
        t.elapsed()
    );
    let reset = http
        .post(format!("{}/reset", chaos.api))
        .send()
        .await
        .expect("reset");
    assert_eq!(reset.status(), 204);

    // Discovery still works through the proxies: a killed instance is dropped by the
    // registry (its health checks go to the instance itself) and orders go on.
    http.post(format!("{}/instances/inventory-1/kill", handle.supervisor))
        .send()
        .await
        .expect("kill");
    let registry = RegistryClient::new(&handle.services["registry"][0]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let placed = gateway
            .place_order(&order, None)
            .await
            .expect("order while inventory-1 is down");
        assert_eq!(placed.body.status, OrderStatus::Confirmed);
        // Left: inventory-2 and inventory-v2 (the canary, registered as inventory too).
        if registry.healthy("inventory").await.map(|l| l.len()).ok() == Some(2) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the registry never dropped inventory-1"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let handle_path = demo.handle_path.clone();
    demo.stop().await;
    assert!(
        !handle_path.exists(),
        "a stopped demo leaves no handle behind"
    );
}

/// The chaos API's Prometheus text.
async fn chaos_metrics(http: &reqwest::Client, api: &str) -> String {
    http.get(format!("{api}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

/// Bytes a proxy relayed, from the chaos API's Prometheus text.
fn proxy_bytes(metrics: &str, proxy: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.contains(&format!("proxy=\"{proxy}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}
