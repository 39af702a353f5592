//! `gauntlet demo` as a user runs it: every service a real child process on free loopback
//! ports, found through DIR/demo.json; an order through the gateway; the supervisor API;
//! and SIGTERM leaving no process and no open port behind.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_gauntlet");

/// A running `gauntlet demo`, stopped (SIGTERM, then SIGKILL) when dropped, so a failing
/// assertion does not leave the demo and its children running.
struct Demo(std::process::Child);

impl Demo {
    fn start(data: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(BIN)
            .args(["demo", "--ports", "auto", "--no-traffic", "--data-dir"])
            .arg(data)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("gauntlet demo starts");
        // Drain stdout for the whole run, so the demo never writes into a closed pipe.
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .for_each(drop)
        });
        Self(child)
    }

    /// Sends SIGTERM and waits for the demo to exit.
    fn stop(&mut self) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let started = Instant::now();
        loop {
            if let Some(s) = self.0.try_wait().expect("wait") {
                return s;
            }
            if started.elapsed() > Duration::from_secs(30) {
                let _ = self.0.kill();
                return self.0.wait().expect("wait");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            self.stop();
        }
    }
}

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

fn wait_for_file(path: &Path, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Ok(v) = serde_json::from_str::<Value>(&text)
        {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
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

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let pids: Vec<i32> = rt.block_on(async {
        let http = reqwest::Client::new();
        let products: Value = http.get(format!("{gateway}/api/products")).send().await.expect("gateway").json().await.expect("json");
        assert_eq!(products.as_array().map(Vec::len), Some(5), "{products}");
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
        assert_eq!(breakers, ["disabled", "disabled", "disabled"], "{admin}");

        // The supervisor kills and restarts an instance; it comes back ready.
        let killed: Value = http.post(format!("{supervisor}/instances/inventory-2/kill")).send().await.expect("kill").json().await.expect("json");
        assert_eq!(killed["done"], "kill");
        let list: Vec<Value> = http.get(format!("{supervisor}/instances")).send().await.expect("list").json().await.expect("json");
        let inv2 = list.iter().find(|i| i["id"] == "inventory-2").expect("inventory-2");
        assert_eq!(inv2["state"], "killed");
        let restarted = http.post(format!("{supervisor}/instances/inventory-2/restart")).send().await.expect("restart");
        assert_eq!(restarted.status(), 200);
        let list: Vec<Value> = http.get(format!("{supervisor}/instances")).send().await.expect("list").json().await.expect("json");
        assert_eq!(list.len(), 8);
        assert!(list.iter().all(|i| i["state"] == "running"), "{list:?}");
        let unknown = http.post(format!("{supervisor}/instances/nope/kill")).send().await.expect("answer");
        assert_eq!(unknown.status(), 404);
        list.iter().filter_map(|i| i["pid"].as_i64()).map(|p| p as i32).collect()
    });
    assert_eq!(pids.len(), 8);

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
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
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
            has("gateway", "POST /api/orders")
                && has("inventory", "POST /reservations/{id}/release")
                && has("notifications", "order.cancelled process")
                && has("order-history", "order.cancelled process")
        })
        .await;
        let items = tl["items"].as_array().expect("items");
        let spans: Vec<&Value> = items.iter().filter(|i| i["kind"] == "span").collect();

        // One trace spans gateway → orders → inventory and payments, parent links intact.
        let root = spans.iter().find(|s| s["service"] == "gateway" && s["name"] == "POST /api/orders").expect("gateway server span");
        let trace = root["trace_id"].as_str().expect("trace");
        let in_trace: Vec<&&Value> = spans.iter().filter(|s| s["trace_id"] == trace).collect();
        let ids: std::collections::HashSet<&str> = in_trace.iter().filter_map(|s| s["span_id"].as_str()).collect();
        for s in &in_trace {
            if let Some(parent) = s["parent_span_id"].as_str() {
                assert!(ids.contains(parent), "a broken parent link in {s}");
            }
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
    });
    assert!(demo.stop().success(), "the demo stops cleanly");
}
