//! The web UI in a real browser: a running demo with its own traffic, spans and logs whose
//! names and bodies carry markup, and a 5,000-span trace, all sent over OTLP/HTTP; then
//! `dashboards/web/test/browser.mjs` drives Debian's Chromium over every page (assertions on
//! the rendered DOM, screenshots under `target/ui-screenshots/`). `scripts/test.sh` installs
//! Chromium and the script's Node packages.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Demo, wait_for_file};
use gauntlet_demo_system::traffic::{self, Intent};
use serde_json::{Value, json};

const BIG_TRACE_SPANS: usize = 5_000;
const TOKEN: &str = "ui-test-token-7f3a";

/// A second collector, started with `--auth-token`; killed when dropped.
struct Guarded {
    child: std::process::Child,
    base: String,
}

impl Guarded {
    fn start(data: &Path, token: &str) -> Self {
        use std::io::{BufRead, BufReader};
        let mut child = Command::new(common::BIN)
            .args(["collector", "--data-dir", data.to_str().expect("utf-8")])
            .args([
                "--otlp-grpc",
                "127.0.0.1:0",
                "--otlp-http",
                "127.0.0.1:0",
                "--zipkin",
                "off",
            ])
            .args(["--http", "127.0.0.1:0", "--auth-token", token])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("gauntlet collector starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut base = None;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.trim().strip_prefix("Query API") {
                base = rest
                    .trim()
                    .strip_suffix("/api/services")
                    .map(str::to_string);
            }
            if line.starts_with("Press Ctrl-C") {
                break;
            }
        }
        let base = base.expect("the collector printed its query address");
        Self { child, base }
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
const PAYLOAD_SCRIPT: &str = "<script>window.__pwned=1</script>";
const PAYLOAD_IMG: &str = "<img src=x onerror=\"window.__pwned=1\">";

fn now_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos()
}

fn hex_id(seed: u64, bytes: usize) -> String {
    let mut state = seed ^ 0x9e37_79b9_7f4a_7c15;
    let mut out = String::new();
    while out.len() < bytes * 2 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.push_str(&format!("{state:016x}"));
    }
    out.truncate(bytes * 2);
    out
}

fn kv(key: &str, value: &str) -> Value {
    json!({"key": key, "value": {"stringValue": value}})
}

/// A trace whose service, span names, attributes and log bodies are markup.
fn payload_export(trace_id: &str, start: u128) -> (Value, Value) {
    let root = hex_id(1, 8);
    let child = hex_id(2, 8);
    let resource = json!({"attributes": [kv("service.name", PAYLOAD_SCRIPT)]});
    let span = |id: &str, parent: Option<&str>, name: &str, offset: u128| {
        json!({
            "traceId": trace_id, "spanId": id, "parentSpanId": parent.unwrap_or(""),
            "name": name, "kind": 2,
            "startTimeUnixNano": (start + offset).to_string(),
            "endTimeUnixNano": (start + offset + 40_000_000).to_string(),
            "attributes": [kv("http.route", PAYLOAD_IMG), kv(PAYLOAD_SCRIPT, PAYLOAD_IMG)],
            "events": [{"timeUnixNano": (start + offset + 1_000_000).to_string(), "name": PAYLOAD_IMG,
                        "attributes": [kv("note", PAYLOAD_SCRIPT)]}],
            "status": {"code": 2, "message": PAYLOAD_IMG},
        })
    };
    let spans = json!({"resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": [
        span(&root, None, PAYLOAD_IMG, 0),
        span(&child, Some(&root), PAYLOAD_SCRIPT, 5_000_000),
    ]}]}]});
    let logs = json!({"resourceLogs": [{"resource": resource, "scopeLogs": [{"logRecords": [{
        "timeUnixNano": (start + 6_000_000).to_string(), "severityNumber": 17, "severityText": "ERROR",
        "body": {"stringValue": PAYLOAD_IMG}, "traceId": trace_id, "spanId": child,
        "attributes": [kv("detail", PAYLOAD_SCRIPT)],
    }]}]}]});
    (spans, logs)
}

/// One trace of `n` spans across four services: a root, a fan-out of children, each with a
/// few levels below it, as a busy batch job's trace looks.
fn big_trace(trace_id: &str, n: usize, start: u128) -> Vec<Value> {
    let services = ["batch", "orders", "inventory", "payments"];
    let mut by_service: Vec<Vec<Value>> = vec![Vec::new(); services.len()];
    for i in 0..n {
        let parent = match i {
            0 => None,
            i if i % 5 == 1 => Some(0),
            i => Some(i - 1),
        };
        let offset = (i as u128) * 200_000;
        let duration = if i == 0 {
            n as u128 * 200_000 + 1_000_000
        } else {
            150_000 + (i as u128 % 7) * 10_000
        };
        by_service[i % services.len()].push(json!({
            "traceId": trace_id, "spanId": hex_id(1000 + i as u64, 8),
            "parentSpanId": parent.map(|p| hex_id(1000 + p as u64, 8)).unwrap_or_default(),
            "name": format!("step {}", i % 50), "kind": if i == 0 { 2 } else { 1 },
            "startTimeUnixNano": (start + offset).to_string(),
            "endTimeUnixNano": (start + offset + duration).to_string(),
            "attributes": [kv("batch.item", &i.to_string())],
        }));
    }
    services
        .iter()
        .zip(by_service)
        .map(|(service, spans)| {
            json!({"resourceSpans": [{"resource": {"attributes": [kv("service.name", service)]},
                "scopeSpans": [{"spans": spans}]}]})
        })
        .collect()
}

/// Polls `url` until its JSON satisfies `ok` (30 s at most).
async fn wait_until(http: &reqwest::Client, url: &str, ok: impl Fn(&Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let body: Value = match http.get(url).send().await {
            Ok(r) => r.json().await.unwrap_or_default(),
            Err(_) => Value::Null,
        };
        if ok(&body) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{url} never answered as expected: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn require_tools(web: &Path) -> String {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} is missing: `bash scripts/test.sh` installs Debian's chromium (or set CHROMIUM)"
    );
    assert!(
        web.join("node_modules/playwright-core").exists(),
        "dashboards/web/node_modules is missing: run `npm ci` in dashboards/web (scripts/test.sh does)"
    );
    chromium
}

#[test]
fn every_page_renders_real_data_in_chromium_and_markup_stays_text() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let web = root.join("dashboards/web");
    let chromium = require_tools(&web);
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("demo");
    let _demo = Demo::start(&data, &[]);
    let handle = wait_for_file(&data.join("demo.json"), Duration::from_secs(90));
    let gateway = handle["gateway"].as_str().expect("gateway").to_string();
    let api = handle["collector"]["api"]
        .as_str()
        .expect("api")
        .to_string();
    let otlp = handle["collector"]["otlp_http"]
        .as_str()
        .expect("otlp")
        .to_string();

    let rt = common::runtime();
    let http = reqwest::Client::new();
    let correlation = rt.block_on(async {
        let report = traffic::burst(&gateway).await.expect("demo traffic");
        let cid = report
            .correlation_of(Intent::Declined)
            .expect("the burst places a declined order")
            .to_string();
        // The declined order's asynchronous hop (notifications) is in its timeline once the
        // outbox relayed it.
        wait_until(&http, &format!("{api}/api/v1/correlations/{cid}"), |tl| {
            tl["services"]
                .as_array()
                .is_some_and(|s| s.iter().any(|s| s == "notifications"))
        })
        .await;
        cid
    });
    // A short load run that exports its markers, for the RED page's marked windows.
    let load = Command::new(common::BIN)
        .args([
            "load",
            &format!("{gateway}/api/products"),
            "-n",
            "40",
            "-c",
            "2",
        ])
        .args(["--otlp", &otlp, "--otlp-sample", "0"])
        .output()
        .expect("gauntlet load runs");
    assert!(
        load.status.success(),
        "{}",
        String::from_utf8_lossy(&load.stderr)
    );
    rt.block_on(wait_until(&http, &format!("{api}/api/v1/markers"), |m| {
        m["data"]
            .as_array()
            .is_some_and(|d| d.iter().any(|m| m["name"] == "load.stop"))
    }));
    let out = root.join("target/ui-screenshots");
    let browser = |args: &[&str]| {
        let run = Command::new("node")
            .current_dir(&web)
            .arg("test/browser.mjs")
            .args([
                "--base",
                &api,
                "--chromium",
                &chromium,
                "--out",
                out.to_str().expect("utf-8"),
            ])
            .args(args)
            .output()
            .expect("node runs");
        let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
        println!("{stdout}");
        assert!(
            run.status.success(),
            "the browser checks failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&run.stderr)
        );
        stdout
    };
    // The demo's own data first, so the screenshots show what a user of the demo sees.
    let stdout = browser(&["--phase", "demo", "--correlation", &correlation]);
    assert!(stdout.contains("ui: demo phase checked"), "{stdout}");

    let xss_trace = hex_id(7, 16);
    let big = hex_id(8, 16);
    rt.block_on(async {
        let send = |path: &'static str, body: Value| {
            let http = http.clone();
            let url = format!("{otlp}{path}");
            async move {
                let r = http.post(url).json(&body).send().await.expect("collector");
                assert!(
                    r.status().is_success(),
                    "OTLP export refused: {}",
                    r.status()
                );
            }
        };
        let (spans, logs) = payload_export(&xss_trace, now_ns());
        send("/v1/traces", spans).await;
        send("/v1/logs", logs).await;
        for export in big_trace(&big, BIG_TRACE_SPANS, now_ns()) {
            send("/v1/traces", export).await;
        }
        wait_until(&http, &format!("{api}/api/traces/{big}"), |t| {
            t["data"][0]["spans"].as_array().map_or(0, Vec::len) == BIG_TRACE_SPANS
        })
        .await;
        wait_until(
            &http,
            &format!("{api}/api/v1/logs?trace_id={xss_trace}"),
            |l| l["data"].as_array().is_some_and(|d| !d.is_empty()),
        )
        .await;
    });
    let guarded = Guarded::start(&dir.path().join("guarded"), TOKEN);
    let stdout = browser(&[
        "--phase",
        "hostile",
        "--otlp",
        &otlp,
        "--token-base",
        &guarded.base,
        "--token",
        TOKEN,
        "--xss-trace",
        &xss_trace,
        "--xss-service",
        PAYLOAD_SCRIPT,
        "--big-trace",
        &big,
        "--big-spans",
        &BIG_TRACE_SPANS.to_string(),
    ]);
    assert!(stdout.contains("ui: hostile phase checked"), "{stdout}");
    for page in [
        "search",
        "trace",
        "logs",
        "correlation",
        "map",
        "red",
        "payloads",
        "big-trace",
    ] {
        assert!(
            out.join(format!("{page}.png")).exists(),
            "no screenshot of {page}"
        );
    }
}
