//! `gauntlet collector --store clickhouse` as a process, against the ClickHouse engine (chDB
//! behind `scripts/chdb_http.py`): OTLP in, the query API out; and the faults: ClickHouse
//! killed for 8 s under load, the collector restarted in the middle of the outage, then
//! ClickHouse back: every acknowledged span is stored exactly once. A full spool answers 503
//! with Retry-After. And the Grafana dashboards' SQL, run on what the collector wrote.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_gauntlet");
/// Long enough for a collector restart inside it and thousands of spooled spans; the test's
/// processes are the point, so this is real time, kept short.
const OUTAGE: Duration = Duration::from_secs(8);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// chDB behind the adapter, on a fixed port so it can come back where it was.
struct ClickHouse {
    child: Option<Child>,
    port: u16,
    data: PathBuf,
}

impl ClickHouse {
    fn start(data: &Path, port: u16) -> Self {
        let mut ch = Self {
            child: None,
            port,
            data: data.to_path_buf(),
        };
        ch.up();
        ch
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn up(&mut self) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/chdb_http.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args(["--data", self.data.to_str().expect("utf-8")])
            .args(["--port", &self.port.to_string(), "--exit-with-stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs scripts/chdb_http.py (bash scripts/test.sh installs chdb)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the adapter starts");
        assert!(line.starts_with("chdb-http listening"), "adapter: {line:?}");
        self.child = Some(child);
    }

    /// SIGKILL: ClickHouse gone mid-request, as a crash or a network cut looks.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn sql(&self, sql: &str) -> String {
        let r = reqwest::blocking::Client::new()
            .post(self.url())
            .body(sql.to_string())
            .send()
            .expect("ClickHouse answers");
        assert!(r.status().is_success(), "{sql}: {:?}", r.text());
        r.text().expect("text")
    }
}

impl Drop for ClickHouse {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `gauntlet collector --store clickhouse` on fixed loopback ports (so a restart keeps them).
struct Collector {
    child: Child,
    otlp: String,
    api: String,
}

impl Collector {
    fn start(data: &Path, clickhouse: &str, otlp: u16, http: u16, extra: &[&str]) -> Self {
        let mut child = Command::new(BIN)
            .args([
                "collector",
                "--store",
                "clickhouse",
                "--clickhouse-url",
                clickhouse,
            ])
            .args([
                "--clickhouse-database",
                "otel",
                "--data-dir",
                data.to_str().expect("utf-8"),
            ])
            .args(["--otlp-grpc", "127.0.0.1:0", "--zipkin", "off"])
            .args(["--otlp-http", &format!("127.0.0.1:{otlp}")])
            .args(["--http", &format!("127.0.0.1:{http}")])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("gauntlet collector starts");
        let out = BufReader::new(child.stdout.take().expect("stdout"));
        for line in out.lines().map_while(Result::ok) {
            if line.starts_with("Press Ctrl-C") {
                break;
            }
        }
        Self {
            child,
            otlp: format!("http://127.0.0.1:{otlp}"),
            api: format!("http://127.0.0.1:{http}"),
        }
    }

    /// SIGTERM, and wait: what was accepted is committed (to ClickHouse or the spool).
    fn stop(mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// ClickHouse and a collector storing into it, under `dir`.
fn started(dir: &Path, extra: &[&str]) -> (ClickHouse, Collector) {
    let ch = ClickHouse::start(&dir.join("ch"), free_port());
    let c = Collector::start(&dir.join("c"), &ch.url(), free_port(), free_port(), extra);
    (ch, c)
}

/// Waits until `table` holds at least `n` rows: an acknowledgement means the spool has the
/// data, and the drainer puts it in ClickHouse right after.
fn wait_for_rows(ch: &ClickHouse, table: &str, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let have: u64 = ch
            .sql(&format!("SELECT count() FROM otel.{table}"))
            .trim()
            .parse()
            .expect("count");
        if have >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{table} holds {have} rows, want {n}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// An OTLP/JSON export of one trace with `n` spans whose IDs come from `first`.
fn export(first: u64, n: u64) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as u64;
    let trace = format!("{:032x}", first + 1);
    let spans: Vec<Value> = (first..first + n)
        .map(|id| {
            json!({
                "traceId": trace, "spanId": format!("{:016x}", id + 1), "name": "load",
                "kind": 2, "startTimeUnixNano": (now + id).to_string(),
                "endTimeUnixNano": (now + id + 1_000_000).to_string(),
                "attributes": [{"key": "correlation_id", "value": {"stringValue": format!("c-{first}")}}],
            })
        })
        .collect();
    json!({"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "loaded"}}]},
        "scopeSpans": [{"spans": spans}]}]})
}

#[test]
fn spans_go_in_over_otlp_and_come_back_through_the_query_api() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ch, c) = started(dir.path(), &[]);
    let http = reqwest::blocking::Client::new();
    let r = http
        .post(format!("{}/v1/traces", c.otlp))
        .json(&export(0, 3))
        .send()
        .expect("export");
    assert_eq!(r.status(), 200, "{:?}", r.text());
    wait_for_rows(&ch, "otel_traces", 3);
    let trace = format!("{:032x}", 1);
    let t: Value = http
        .get(format!("{}/api/traces/{trace}", c.api))
        .send()
        .expect("query")
        .json()
        .expect("json");
    assert_eq!(
        t["data"][0]["spans"].as_array().map(Vec::len),
        Some(3),
        "{t}"
    );
    assert_eq!(t["data"][0]["processes"]["p1"]["serviceName"], "loaded");
    let tl: Value = http
        .get(format!("{}/api/v1/correlations/c-0", c.api))
        .send()
        .expect("query")
        .json()
        .expect("json");
    assert_eq!(tl["traces"], json!([trace]), "{tl}");
    // The rows are the exporter's: Grafana's ClickHouse data source reads these columns.
    assert_eq!(
        ch.sql("SELECT SpanKind, StatusCode, SpanAttributes['correlation_id'] FROM otel.otel_traces LIMIT 1"),
        "SPAN_KIND_SERVER\tSTATUS_CODE_UNSET\tc-0\n"
    );
    c.stop();
}

#[test]
fn an_outage_under_load_loses_nothing_and_stores_nothing_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut ch = ClickHouse::start(&dir.path().join("ch"), free_port());
    let (otlp_port, http_port) = (free_port(), free_port());
    let data = dir.path().join("c");
    let collector = Collector::start(&data, &ch.url(), otlp_port, http_port, &[]);
    let otlp = collector.otlp.clone();

    // Load: one export of 20 spans every 50 ms until told to stop (and 90 s at most).
    let acked: Arc<Mutex<Vec<u64>>> = Arc::default();
    let refused = Arc::new(Mutex::new(0u64));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sender = {
        let (acked, refused, stop) = (acked.clone(), refused.clone(), stop.clone());
        std::thread::spawn(move || {
            let http = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client");
            let started = Instant::now();
            let mut next = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed)
                && started.elapsed() < Duration::from_secs(90)
            {
                match http
                    .post(format!("{otlp}/v1/traces"))
                    .json(&export(next, 20))
                    .send()
                {
                    Ok(r) if r.status() == 200 => {
                        acked.lock().expect("lock").extend(next..next + 20)
                    }
                    // Refused (503 while the collector restarts) or not reached: not acknowledged.
                    _ => *refused.lock().expect("lock") += 1,
                }
                next += 20;
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    std::thread::sleep(Duration::from_secs(1));
    let before_outage = acked.lock().expect("lock").len();
    ch.kill();
    let outage = Instant::now();
    std::thread::sleep(OUTAGE / 2);
    // The collector restarts while ClickHouse is still down: it starts on its spool alone.
    collector.stop();
    let collector = Collector::start(&data, &ch.url(), otlp_port, http_port, &[]);
    std::thread::sleep(OUTAGE.saturating_sub(outage.elapsed()));
    let during_outage = acked.lock().expect("lock").len() - before_outage;
    ch.up();
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    sender.join().expect("sender");
    let acked = acked.lock().expect("lock").clone();
    assert!(before_outage > 0, "load ran before the outage");
    assert!(
        during_outage > 1_000,
        "exports were acknowledged during the outage (spooled): {during_outage} spans"
    );

    // Wait for the spool to drain into ClickHouse.
    let deadline = Instant::now() + Duration::from_secs(60);
    let stored = loop {
        let n: usize = ch
            .sql("SELECT count() FROM otel.otel_traces")
            .trim()
            .parse()
            .expect("count");
        if n >= acked.len() || Instant::now() > deadline {
            break n;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let duplicates = ch.sql(
        "SELECT count() FROM (SELECT SpanId FROM otel.otel_traces GROUP BY SpanId HAVING count() > 1)",
    );
    assert_eq!(duplicates.trim(), "0", "a span was stored twice");
    let ids: std::collections::HashSet<u64> = ch
        .sql("SELECT SpanId FROM otel.otel_traces")
        .lines()
        .filter_map(|l| u64::from_str_radix(l, 16).ok())
        .collect();
    let missing: Vec<&u64> = acked
        .iter()
        .filter(|id| !ids.contains(&(**id + 1)))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged spans are missing (first: {:?}); {stored} stored",
        missing.len(),
        acked.len(),
        missing.first()
    );
    println!(
        "acknowledged {} spans ({during_outage} during the {OUTAGE:?} outage, {} exports refused), all stored once",
        acked.len(),
        refused.lock().expect("lock")
    );
    collector.stop();
}

#[test]
fn a_full_spool_refuses_with_retry_after_and_keeps_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut ch, c) = started(dir.path(), &["--clickhouse-spool-max", "64KiB"]);
    ch.kill();
    let http = reqwest::blocking::Client::new();
    let mut accepted = 0;
    let refusal = loop {
        let r = http
            .post(format!("{}/v1/traces", c.otlp))
            .json(&export(accepted * 20, 20))
            .send()
            .expect("the collector answers");
        if r.status() != 200 {
            break r;
        }
        accepted += 1;
        assert!(accepted < 1_000, "64 KiB never filled");
    };
    assert!(accepted > 0, "the spool took some before it filled");
    assert_eq!(refusal.status(), 503);
    assert!(
        refusal.headers().contains_key("retry-after"),
        "{:?}",
        refusal.headers()
    );
    let body = refusal.text().expect("body");
    assert!(body.contains("spool") && body.contains("full"), "{body}");
    // The collector is still up: its health endpoint answers.
    let health = http
        .get(format!("{}/health", c.api))
        .send()
        .expect("health");
    assert_eq!(health.status(), 200);
    // ClickHouse back: the spool drains and exports are accepted again.
    ch.up();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = http
            .post(format!("{}/v1/traces", c.otlp))
            .json(&export(1_000_000, 20))
            .send()
            .expect("export");
        if r.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the spool never drained");
        std::thread::sleep(Duration::from_millis(500));
    }
    let stored: u64 = ch
        .sql("SELECT count() FROM otel.otel_traces")
        .trim()
        .parse()
        .expect("count");
    assert!(
        stored >= accepted * 20,
        "{stored} stored of {} accepted",
        accepted * 20
    );
    c.stop();
}

/// The Grafana ClickHouse data source's macros, expanded as the plugin expands them
/// (`pkg/macros` of grafana/clickhouse-datasource), and dashboard variables substituted.
fn expand(sql: &str, from_s: i64, to_s: i64, interval_s: i64, vars: &[(&str, &str)]) -> String {
    let mut out = sql.to_string();
    for (name, value) in vars {
        out = out.replace(&format!("${{{name}}}"), value);
    }
    out = out.replace("$__interval_s", &interval_s.to_string());
    out = out.replace(
        "$__fromTime",
        &format!("toDateTime(intDiv({},1000))", from_s * 1000),
    );
    out = out.replace(
        "$__toTime",
        &format!("toDateTime(intDiv({},1000))", to_s * 1000),
    );
    let call = |out: &str, name: &str, f: &dyn Fn(&str) -> String| -> String {
        let mut s = out.to_string();
        while let Some(at) = s.find(&format!("{name}(")) {
            let open = at + name.len() + 1;
            let close = open + s[open..].find(')').expect("a closing parenthesis");
            let replaced = f(s[open..close].trim());
            s.replace_range(at..=close, &replaced);
        }
        s
    };
    out = call(&out, "$__timeFilter", &|c| {
        format!("{c} >= '{from_s}' AND {c} <= '{to_s}'")
    });
    out = call(&out, "$__timeInterval", &|c| {
        format!("toStartOfInterval(toDateTime({c}), INTERVAL {interval_s} second)")
    });
    assert!(
        !out.contains("$__") && !out.contains("${"),
        "unexpanded: {out}"
    );
    out
}

#[test]
fn every_grafana_panel_runs_on_what_the_collector_wrote() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ch, c) = started(dir.path(), &[]);
    let http = reqwest::blocking::Client::new();
    // Spans of two services (one failing), and logs of every severity band, one request.
    let mut spans = export(0, 5);
    spans["resourceSpans"][0]["scopeSpans"][0]["spans"][4]["status"] = json!({"code": 2});
    let mut other = export(100, 3);
    other["resourceSpans"][0]["resource"]["attributes"][0]["value"]["stringValue"] =
        json!("billing");
    for body in [spans, other] {
        let r = http
            .post(format!("{}/v1/traces", c.otlp))
            .json(&body)
            .send()
            .expect("export");
        assert_eq!(r.status(), 200);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock");
    let records: Vec<Value> = [5, 9, 13, 17, 21]
        .iter()
        .map(|sev| {
            json!({"timeUnixNano": now.as_nanos().to_string(), "severityNumber": sev,
                   "severityText": format!("S{sev}"), "body": {"stringValue": format!("line {sev}")},
                   "traceId": format!("{:032x}", 1),
                   "attributes": [{"key": "correlation_id", "value": {"stringValue": "c-0"}}]})
        })
        .collect();
    let logs = json!({"resourceLogs": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "loaded"}}]},
        "scopeLogs": [{"logRecords": records}]}]});
    let r = http
        .post(format!("{}/v1/logs", c.otlp))
        .json(&logs)
        .send()
        .expect("logs");
    assert_eq!(r.status(), 200);
    wait_for_rows(&ch, "otel_traces", 8);
    wait_for_rows(&ch, "otel_logs", 5);

    let to = now.as_secs() as i64 + 60;
    let vars = [
        ("database", "otel"),
        ("service", "loaded"),
        ("correlation_id", "c-0"),
    ];
    let boards = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/dashboards/grafana"))
        .expect("dashboards/grafana");
    let mut ran = 0;
    for entry in boards.map(|e| e.expect("entry").path()) {
        if entry.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let board: Value =
            serde_json::from_str(&std::fs::read_to_string(&entry).expect("read")).expect("JSON");
        let name = entry
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let mut queries: Vec<(String, String)> = Vec::new();
        for v in board["templating"]["list"].as_array().expect("templating") {
            if v["type"] == "query" {
                queries.push((
                    format!("variable {}", v["name"]),
                    v["query"].as_str().expect("sql").into(),
                ));
            }
        }
        let panels = board["panels"].as_array().expect("panels");
        assert!(!panels.is_empty(), "{name} has no panels");
        for p in panels {
            for t in p["targets"].as_array().expect("targets") {
                queries.push((
                    format!("panel {}", p["title"]),
                    t["rawSql"].as_str().expect("rawSql").into(),
                ));
            }
        }
        for (what, sql) in queries {
            let sql = expand(&sql, to - 3600, to, 60, &vars);
            let answer = ch.sql(&format!("{sql} FORMAT JSONCompact"));
            let answer: Value = serde_json::from_str(&answer).expect("JSON answer");
            let rows = answer["rows"].as_u64().unwrap_or(0);
            assert!(rows > 0, "{name}, {what}: no rows from\n{sql}");
            ran += 1;
        }
    }
    assert!(ran >= 13, "only {ran} queries ran");
    c.stop();
}
