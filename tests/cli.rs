//! The `gauntlet` binary as a user runs it: real processes on ephemeral loopback ports.
//! Durability under `kill -9`, flags and their errors (the README's and docs' examples run in `docs.rs`).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_gauntlet");

/// A `gauntlet collector` child process and the addresses it printed.
struct Running {
    child: Child,
    otlp_http: SocketAddr,
    api: SocketAddr,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `gauntlet collector` on ephemeral loopback ports, Zipkin off, storing in `data_dir`.
fn collector_command(data_dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args([
        "collector",
        "--otlp-grpc",
        "127.0.0.1:0",
        "--otlp-http",
        "127.0.0.1:0",
    ])
    .args(["--zipkin", "off", "--http", "127.0.0.1:0", "--data-dir"])
    .arg(data_dir);
    cmd
}

fn start(data_dir: &Path) -> Running {
    start_with(data_dir, |_| {})
}

/// [`start`], with more flags or environment from `tweak`.
fn start_with(data_dir: &Path, tweak: impl FnOnce(&mut Command)) -> Running {
    let mut cmd = collector_command(data_dir);
    tweak(&mut cmd);
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("gauntlet starts");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Keep reading after the addresses are known, so the child never writes into a
        // closed pipe.
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let (mut otlp_http, mut api) = (None, None);
    let deadline = Instant::now() + Duration::from_secs(30);
    while otlp_http.is_none() || api.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("the collector prints its addresses");
        let addr = |prefix: &str| {
            line.trim()
                .strip_prefix(prefix)
                .and_then(|rest| {
                    rest.trim()
                        .trim_start_matches("http://")
                        .split(['/', ' '])
                        .next()
                })
                .and_then(|a| a.parse::<SocketAddr>().ok())
        };
        otlp_http = otlp_http.or(addr("OTLP/HTTP"));
        api = api.or(addr("Query API"));
    }
    Running {
        child,
        otlp_http: otlp_http.expect("OTLP/HTTP address"),
        api: api.expect("query address"),
    }
}

fn trace_request(trace: usize, spans: usize) -> Value {
    let now = 1_700_000_000_000_000_000u64 + trace as u64 * 1000;
    let spans: Vec<Value> = (0..spans)
        .map(|i| {
            json!({
                "traceId": format!("{:032x}", trace + 1),
                "spanId": format!("{:016x}", i + 1),
                "parentSpanId": if i == 0 { String::new() } else { format!("{:016x}", 1) },
                "name": format!("op-{i}"),
                "kind": "SPAN_KIND_SERVER",
                "startTimeUnixNano": (now + i as u64).to_string(),
                "endTimeUnixNano": (now + i as u64 + 500).to_string(),
                "attributes": [{"key": "correlation_id", "value": {"stringValue": format!("durable-{trace}")}}],
            })
        })
        .collect();
    json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "durable"}}]},
        "scopeSpans": [{"spans": spans}],
    }]})
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn kill_9_right_after_a_successful_export_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let traces = 40;
    let spans_per_trace = 25;
    let rt = runtime();
    let client = reqwest::Client::new();
    {
        let mut c = start(&data);
        rt.block_on(async {
            for t in 0..traces {
                let resp = client
                    .post(format!("http://{}/v1/traces", c.otlp_http))
                    .header("content-type", "application/json")
                    .body(trace_request(t, spans_per_trace).to_string())
                    .send()
                    .await
                    .expect("export answered");
                assert_eq!(resp.status(), 200);
            }
        });
        // SIGKILL: no shutdown hook, no flush.
        c.child.kill().expect("kill -9");
        c.child.wait().expect("reaped");
    }
    let c = start(&data);
    rt.block_on(async {
        let get = |path: String| {
            let client = client.clone();
            let url = format!("http://{}{path}", c.api);
            async move {
                let resp = client.get(url).send().await.expect("query answered");
                resp.json::<Value>().await.expect("json")
            }
        };
        for t in 0..traces {
            let body = get(format!("/api/traces/{:032x}", t + 1)).await;
            let n = body["data"][0]["spans"].as_array().map(Vec::len);
            assert_eq!(n, Some(spans_per_trace), "trace {t} after kill -9: {body}");
        }
        let body = get("/api/v1/correlations/durable-7".into()).await;
        assert_eq!(
            body["items"].as_array().map(Vec::len),
            Some(spans_per_trace)
        );
        // Search too: the open segment's spans by service and time are rebuilt from its rows.
        let body = get(
            "/api/traces?service=durable&operation=op-3&start=1699999999000000\
                        &end=1700000001000000&limit=100"
                .into(),
        )
        .await;
        assert_eq!(
            body["data"].as_array().map(Vec::len),
            Some(traces),
            "{body}"
        );
        // RED from the rollups (a step of whole 10 s buckets): the open segment's counts that
        // were still in memory when it died are counted again from its spans on start.
        let red: gauntlet_query_api::red::Red = client
            .get(format!(
                "http://{}/api/v1/red?service=durable&start=1699999990000000\
                 &end=1700000010000000&step=10s",
                c.api
            ))
            .send()
            .await
            .expect("RED answered")
            .json()
            .await
            .expect("RED's answer");
        let whole = red.series.iter().find(|s| s.operation.is_none());
        let requests: u64 = whole.map_or(0, |s| s.points.iter().map(|p| p.requests).sum());
        assert_eq!(requests, (traces * spans_per_trace) as u64, "{red:?}");
    });
}

#[test]
fn help_teaches_and_bad_flags_say_what_to_write() {
    let out = Command::new(BIN)
        .args(["collector", "--help"])
        .output()
        .expect("runs");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--otlp-grpc",
        "--retention",
        "--max-disk",
        "--segment-rows",
        "--cors-origin",
        "--auth-token",
        "GAUNTLET_AUTH_TOKEN",
        "--insecure-ui",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "Examples:",
    ] {
        assert!(help.contains(needle), "help lacks {needle}: {help}");
    }
    for (flag, value, hint) in [
        ("--max-disk", "lots", "10GiB"),
        ("--retention", "forever", "72h"),
        ("--otlp-http", "localhost", "ADDR"),
        ("--zipkin", "nowhere", "or off"),
        ("--segment-rows", "5", "1000.."),
        ("--cors-origin", "localhost:3000", "scheme://host[:port]"),
        ("--auth-token", "two words", "whitespace"),
    ] {
        let out = Command::new(BIN)
            .args(["collector", flag, value])
            .output()
            .expect("runs");
        assert_eq!(out.status.code(), Some(2), "{flag} {value}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(flag) && err.contains(hint),
            "{flag} {value}: {err}"
        );
    }
}

/// A query API on a non-loopback address needs a token or an explicit `--insecure-ui`; the
/// collector says so before it listens on anything.
#[test]
fn an_exposed_query_api_without_a_token_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(BIN)
        .args([
            "collector",
            "--http",
            "0.0.0.0:0",
            "--otlp-grpc",
            "127.0.0.1:0",
        ])
        .args([
            "--otlp-http",
            "127.0.0.1:0",
            "--zipkin",
            "off",
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .env_remove("GAUNTLET_AUTH_TOKEN")
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "0.0.0.0:0",
        "not loopback",
        "--auth-token",
        "GAUNTLET_AUTH_TOKEN",
        "--insecure-ui",
    ] {
        assert!(err.contains(needle), "lacks {needle}: {err}");
    }
    assert!(!dir.path().join("data").exists(), "nothing was created");
}

/// The broker and the chaos proxy's API, asked to serve off loopback with nothing to guard
/// them, exit before binding (or creating their data directory) and name the fix.
#[test]
fn exposed_broker_and_proxy_api_are_refused_before_binding() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut broker = Command::new(BIN);
    broker
        .args(["contracts", "broker", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path().join("broker"));
    for var in gauntlet_contracts::broker::auth::VARIABLES {
        broker.env_remove(var);
    }
    let out = broker.output().expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "0.0.0.0:0",
        "PACT_BROKER_BASIC_AUTH_USERNAME",
        "GAUNTLET_BROKER_TOKEN",
        "--public-unauthenticated",
    ] {
        assert!(err.contains(needle), "lacks {needle}: {err}");
    }
    assert!(!dir.path().join("broker").exists(), "nothing was created");
    let half = Command::new(BIN)
        .args([
            "contracts",
            "broker",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path().join("broker"))
        .env("PACT_BROKER_BASIC_AUTH_USERNAME", "ci")
        .env_remove("PACT_BROKER_BASIC_AUTH_PASSWORD")
        .output()
        .expect("runs");
    assert!(!half.status.success());
    assert!(String::from_utf8_lossy(&half.stderr).contains("PACT_BROKER_BASIC_AUTH_PASSWORD"));

    let out = Command::new(BIN)
        .args(["chaos", "proxy", "--api", "0.0.0.0:0"])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in ["0.0.0.0:0", "loopback", "--insecure-api"] {
        assert!(err.contains(needle), "lacks {needle}: {err}");
    }
}

/// A collector given a token in the environment answers its query API only with it; `gauntlet
/// contracts drift` passes it along (`--token`).
#[test]
fn a_collector_with_a_token_answers_drift_only_with_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = start_with(&dir.path().join("data"), |cmd| {
        cmd.env("GAUNTLET_AUTH_TOKEN", "t0ken-1");
    });
    let drift = |token: Option<&str>| {
        let mut cmd = Command::new(BIN);
        cmd.args(["contracts", "drift", "--since", "5m", "--collector"])
            .arg(format!("http://{}", c.api))
            .env_remove("GAUNTLET_AUTH_TOKEN");
        if let Some(t) = token {
            cmd.args(["--token", t]);
        }
        cmd.output().expect("runs")
    };
    let refused = drift(None);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("401") && err.contains("Authorization: Bearer"),
        "{err}"
    );
    let wrong = drift(Some("t0ken-2"));
    assert!(!wrong.status.success(), "a wrong token is refused too");
    let out = drift(Some("t0ken-1"));
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn chaos_run_says_what_is_wrong_before_touching_anything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exp = Path::new(env!("CARGO_MANIFEST_DIR")).join("chaos/experiments/payments-slow.toml");
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "title = \"t\"\nvalidates = \"retries\"\n[steady_state]\ntitle = \"s\"\n[[steady_state.probes]]\nname = \"p\"\ntype = \"breaker\"\nservice = \"orders\"\nupstream = \"payments\"\nstate = \"ajar\"\n",
    )
    .expect("write");
    let no_chaos = dir.path().join("demo.json");
    std::fs::write(
        &no_chaos,
        r#"{"gateway": "http://127.0.0.1:1", "collector": {"otlp_http": "http://127.0.0.1:1"},
            "supervisor": "http://127.0.0.1:1", "services": {}}"#,
    )
    .expect("write");
    let missing = dir.path().join("nope.json");
    let cases: [(&Path, &Path, &str); 4] = [
        (&dir.path().join("absent.toml"), &no_chaos, "cannot read"),
        (&bad, &no_chaos, "unknown variant `ajar`"),
        (&exp, &missing, "is `gauntlet demo` running"),
        (&exp, &no_chaos, "gauntlet demo --chaos"),
    ];
    for (experiment, demo, says) in cases {
        let out = Command::new(BIN)
            .args(["chaos", "run"])
            .arg(experiment)
            .arg("--demo")
            .arg(demo)
            .output()
            .expect("runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(says), "{}: {err}", experiment.display());
    }
    let help = Command::new(BIN)
        .args(["chaos", "run", "--help"])
        .output()
        .expect("runs");
    let help = String::from_utf8_lossy(&help.stdout);
    for needle in ["--demo", "--junit", "--disable retries", "Examples:", "130"] {
        assert!(help.contains(needle), "help lacks {needle}: {help}");
    }
}

/// `gauntlet canary` refuses a plan that makes no sense, or a demo it cannot find, before
/// it sets any weight; its help teaches the steps, the judge and the exit codes.
#[test]
fn canary_says_what_is_wrong_before_setting_any_weight() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nope.json");
    let base = ["canary", "--service", "inventory", "--baseline", "v1"];
    let cases: [(&[&str], &str); 5] = [
        (&["--candidate", "v1"], "both \"v1\""),
        (
            &["--candidate", "v2", "--steps", "10,25,50"],
            "must end at 100",
        ),
        (
            &["--candidate", "v2", "--steps", "50,10,100"],
            "must not fall",
        ),
        (&["--candidate", "v2", "--alpha", "0.7"], "--alpha 0.7"),
        (&["--candidate", "v2"], "cannot be read"),
    ];
    for (args, says) in cases {
        let out = Command::new(BIN)
            .args(base)
            .args(args)
            .arg("--demo")
            .arg(&missing)
            .output()
            .expect("runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let help = Command::new(BIN)
        .args(["canary", "--help"])
        .output()
        .expect("runs");
    let help = String::from_utf8_lossy(&help.stdout);
    for needle in [
        "--steps",
        "--window",
        "Mann-Whitney",
        "Examples:",
        "rolled back",
    ] {
        assert!(help.contains(needle), "help lacks {needle}: {help}");
    }
}

#[test]
fn a_port_in_use_or_a_newer_data_dir_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr");
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(BIN)
        .args([
            "collector",
            "--otlp-grpc",
            "127.0.0.1:0",
            "--zipkin",
            "off",
            "--http",
            "127.0.0.1:0",
        ])
        .args(["--otlp-http", &port.to_string(), "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot listen for OTLP/HTTP") && err.contains("--otlp-http"),
        "{err}"
    );

    let data = dir.path().join("newer");
    drop(start(&data));
    let db = rusqlite::Connection::open(data.join("gauntlet.sqlite")).expect("open");
    db.pragma_update(None, "user_version", 999)
        .expect("set version");
    drop(db);
    let out = collector_command(&data).output().expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("schema version 999") && err.contains("newer gauntlet"),
        "{err}"
    );
}

/// A user's mistake is one line: the reason once (not again as its cause), and no backtrace
/// even where RUST_BACKTRACE is set.
#[test]
fn a_missing_file_is_one_line_without_a_backtrace() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nope.toml");
    let out = Command::new(BIN)
        .args(["chaos", "run"])
        .arg(&missing)
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("nope.toml"), "{err}");
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
}
