//! The bundled chaos experiments against real demos, each judged with its control by
//! `gauntlet chaos prove`: each holds against `gauntlet demo --chaos` (reports written,
//! markers in the collector), and against a demo started with `--disable <its pattern>`
//! it fails on the evidence probes named here, the behaviour a caller feels, not on the
//! mechanism's reports of itself (`tests/run.rs` shows a weakened demo breaking them).
//! The broker's two experiments run on demos started with `--broker rabbitmq` too.
//! Ctrl-C in the middle of one still runs its rollbacks. One test, run
//! in order: the experiments measure latency and timing, and several demos at once on two
//! cores would measure each other.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{BIN, Demo, wait_for_file};
use gauntlet_chaos::proof::{Proof, Verdict};
use gauntlet_chaos::{Pattern, Report, Status};
use gauntlet_demo_system::handle::DemoHandle;

fn experiment(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("chaos/experiments")
        .join(name)
}

/// Each experiment, the pattern it proves, and the evidence probes its control must fail.
const EXPERIMENTS: [(&str, Pattern, &[&str]); 19] = [
    // First: the rebuild replays every order the shared demo has taken so far.
    (
        "order-history-lost.toml",
        Pattern::EventReplay,
        &["within 10 s it lists every order of the run again, each once, in orders' state"],
    ),
    (
        "payments-slow.toml",
        Pattern::CircuitBreaker,
        &[
            "payments is spared: at most 5 calls reach it in 3 s",
            "orders fail fast while it is open",
        ],
    ),
    (
        "inventory-resets.toml",
        Pattern::Retries,
        &[
            "99 % of orders are still confirmed",
            "orders answered no request with an error",
        ],
    ),
    (
        "inventory-instance-hangs.toml",
        Pattern::HealthChecks,
        &[
            "the gateway no longer calls it",
            "once it is out, shoppers are served quickly",
        ],
    ),
    (
        "notifications-down.toml",
        Pattern::Outbox,
        &["every finished order is notified once"],
    ),
    (
        "payments-hangs.toml",
        Pattern::Timeouts,
        &["no order waits past its deadlines"],
    ),
    (
        "inventory-unreachable.toml",
        Pattern::Fallback,
        &["shoppers still see the catalogue"],
    ),
    (
        "inventory-balance.toml",
        Pattern::LoadBalancing,
        &["each inventory instance gets half the calls (± 10 %)"],
    ),
    (
        "payments-declines.toml",
        Pattern::Compensation,
        &["no cancelled order still holds stock"],
    ),
    (
        "orders-slow-bulkhead.toml",
        Pattern::Bulkhead,
        &["shoppers browsing keep their latency"],
    ),
    (
        "order-history-down.toml",
        Pattern::ReadModelCatchUp,
        &["within 10 s it lists every order of the run"],
    ),
    (
        "order-history-shard-down.toml",
        Pattern::Sharding,
        &[
            "the other shard's customers are served as quickly as before",
            "about half of all shoppers still see their orders (blast radius 1/2)",
        ],
    ),
    (
        "one-client-floods.toml",
        Pattern::RateLimiting,
        &["the other shoppers' orders are still confirmed quickly"],
    ),
    (
        "payments-hangs-details.toml",
        Pattern::CompositionDeadlines,
        &["details answer within their deadline, without payments"],
    ),
    (
        "shadow-slow.toml",
        Pattern::ShadowIsolation,
        &["browsing keeps its latency"],
    ),
    (
        "canary-rollback.toml",
        Pattern::CanaryAnalysis,
        &["shoppers browse quickly after the release"],
    ),
    (
        "inventory-crashes.toml",
        Pattern::SelfHealing,
        &["inventory-2 takes the gateway's calls again within 12 s"],
    ),
    (
        "orders-leader-paused.toml",
        Pattern::LeaderElection,
        &["each period is settled once"],
    ),
    (
        "poison-event.toml",
        Pattern::DeadLetters,
        &["every order after the poison one is notified once, within 10 s"],
    ),
];

/// `gauntlet chaos prove EXPERIMENT --demo ON --control OFF --json J --junit X`.
fn prove(exp: &Path, on: &Path, off: &Path, out: &Path) -> (i32, String, Proof) {
    let json = out.with_extension("json");
    let junit = out.with_extension("xml");
    let o = Command::new(BIN)
        .args(["chaos", "prove"])
        .arg(exp)
        .arg("--demo")
        .arg(on)
        .arg("--control")
        .arg(off)
        .arg("--json")
        .arg(&json)
        .arg("--junit")
        .arg(&junit)
        .output()
        .expect("gauntlet chaos prove");
    let stdout = String::from_utf8_lossy(&o.stdout).to_string();
    let proof: Proof = serde_json::from_slice(
        &std::fs::read(&json).unwrap_or_else(|e| panic!("no --json proof ({e}):\n{stdout}")),
    )
    .expect("the proof parses");
    let xml = std::fs::read_to_string(&junit).expect("--junit");
    assert_eq!(xml.matches("<testcase ").count(), 2, "{xml}");
    (o.status.code().unwrap_or(-1), stdout, proof)
}

fn demo(dir: &Path, name: &str, extra: &[&str]) -> (Demo, PathBuf) {
    let data = dir.join(name);
    let mut args = vec!["--chaos"];
    args.extend_from_slice(extra);
    let d = Demo::start(&data, &args);
    let handle = data.join("demo.json");
    wait_for_file(&handle, Duration::from_secs(90));
    (d, handle)
}

/// The sharding experiment's "other shard" customers are all held by order-history's
/// second shard of two, as its scenario says.
#[test]
fn the_other_shards_customers_are_on_the_other_shard() {
    use gauntlet_demo_system::platform::sharding::Shard;
    let scenario =
        std::fs::read_to_string(experiment("history-shard-2.load.toml")).expect("the scenario");
    let customers: Vec<&str> = scenario
        .split("/api/customers/")
        .skip(1)
        .filter_map(|rest| rest.split('/').next())
        .collect();
    assert!(customers.len() >= 3, "{customers:?}");
    for c in customers {
        assert_eq!(Shard::index_of(c, 2), 2, "{c} is not on shard 2 of 2");
    }
}

/// The broker's experiments, against demos whose events travel through RabbitMQ.
const BROKER_EXPERIMENTS: [(&str, Pattern, &[&str]); 2] = [
    (
        "broker-down.toml",
        Pattern::PublisherConfirms,
        &["every finished order is notified once, within 15 s of the broker's return"],
    ),
    (
        "consumer-crash.toml",
        Pattern::AckAfterCommit,
        &["the crashing customer's order is notified once, within 15 s"],
    ),
];

#[test]
fn each_experiment_holds_with_its_pattern_and_its_control_fails_on_evidence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut problems = Vec::new();
    let (mut on, on_path) = demo(dir.path(), "on", &[]);
    let handle = DemoHandle::load(&on_path).expect("demo.json");

    ctrl_c_runs_the_rollbacks(&on_path, &handle, dir.path());
    prove_each(dir.path(), &on_path, &EXPERIMENTS, &[], &mut problems);
    on.stop();

    let broker = ["--broker", "rabbitmq"];
    let (mut on, on_path) = demo(dir.path(), "on-rabbitmq", &broker);
    prove_each(
        dir.path(),
        &on_path,
        &BROKER_EXPERIMENTS,
        &broker,
        &mut problems,
    );
    on.stop();
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

/// Proves each of `experiments` against the demo at `on` and a control started with `extra`
/// and `--disable` its pattern; what went wrong goes to `problems`.
fn prove_each(
    dir: &Path,
    on: &Path,
    experiments: &[(&str, Pattern, &[&str])],
    extra: &[&str],
    problems: &mut Vec<String>,
) {
    let handle = DemoHandle::load(on).expect("demo.json");
    for (file, pattern, evidence) in experiments {
        let mut args = extra.to_vec();
        args.extend(["--disable", pattern.name()]);
        let started = Instant::now();
        let (mut off, off_path) = demo(dir, pattern.name(), &args);
        let up = started.elapsed();
        let (code, stdout, proof) =
            prove(&experiment(file), on, &off_path, &dir.join(pattern.name()));
        off.stop();
        // What each proof costs, for the CI budget (docs/testing.md).
        eprintln!(
            "{stdout}\n[{file}: control demo up in {:.1} s; with the pattern {:.1} s, control {:.1} s; {:.1} s in all]",
            up.as_secs_f64(),
            proof.experiment.elapsed_s,
            proof.control.elapsed_s,
            started.elapsed().as_secs_f64()
        );
        let failed: Vec<&str> = proof.failed_evidence.iter().map(String::as_str).collect();
        if code != 0 || proof.verdict != Verdict::HeldAndProven || failed != *evidence {
            problems.push(format!(
                "{file}: exit {code}, {:?}, control failed on evidence {failed:?}, want {evidence:?}:\n{}",
                proof.verdict,
                proof.text()
            ));
        }
        assert!(
            proof
                .experiment
                .activities
                .iter()
                .any(|a| a.kind == "load" && a.detail.contains("requests")),
            "every experiment measures load: {stdout}"
        );
        if proof.experiment.status == Status::Completed {
            markers_reached_the_collector(&handle, &proof.experiment);
        }
        if *pattern == Pattern::CircuitBreaker {
            a_disabled_breaker_is_not_waited_for(&proof.control);
        }
    }
}

/// Without the breaker, "the breaker opens" (within 15 s) reads `disabled`, an answer that
/// cannot change: the control does not wait out the 15 s.
fn a_disabled_breaker_is_not_waited_for(control: &Report) {
    let opens = control
        .activities
        .iter()
        .find(|o| o.name == "the breaker opens")
        .expect("the breaker probe ran in the control");
    assert!(
        !opens.ok && opens.detail.contains("settled") && opens.took_s < 5.0,
        "{opens:?}"
    );
}

/// The `chaos.start` and `chaos.stop` markers are spans of `gauntlet-chaos` in the run's
/// trace, carrying the run ID as the correlation ID.
fn markers_reached_the_collector(handle: &DemoHandle, report: &Report) {
    let api = handle.collector.api.clone().expect("the demo's collector");
    let trace = report.marker_trace.clone().expect("a marker trace");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let body = get_json(&format!("{api}/api/traces/{trace}"));
        let names: Vec<String> = body["data"][0]["spans"]
            .as_array()
            .map(|spans| {
                spans
                    .iter()
                    .filter_map(|s| s["operationName"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let service = &body["data"][0]["processes"]["p1"]["serviceName"];
        if names.iter().any(|n| n == "chaos.start") && names.iter().any(|n| n == "chaos.stop") {
            assert_eq!(service, "gauntlet-chaos");
            let corr = api_correlation(&api, &report.run_id);
            assert!(corr, "the run ID is the markers' correlation ID");
            // The markers API lists the run's start, stop and fault window.
            let listed = get_json(&format!("{api}/api/v1/markers"));
            let mut ours: Vec<&str> = listed["data"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|m| m["run_id"] == report.run_id.as_str() && m["kind"] == "chaos")
                .filter_map(|m| m["name"].as_str())
                .collect();
            ours.sort_unstable();
            assert_eq!(
                ours,
                ["chaos.fault_window", "chaos.start", "chaos.stop"],
                "{listed}"
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no chaos markers in trace {trace}: {names:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// GET `url` as JSON (`null` if it cannot be had).
fn get_json(url: &str) -> serde_json::Value {
    common::runtime().block_on(async {
        match reqwest::get(url).await {
            Ok(r) => r.json().await.unwrap_or_default(),
            Err(_) => serde_json::Value::Null,
        }
    })
}

fn api_correlation(api: &str, run_id: &str) -> bool {
    get_json(&format!("{api}/api/v1/correlations/{run_id}"))
        .to_string()
        .contains("chaos.start")
}

/// Ctrl-C while the fault is in place: exit 130, and the toxic is gone afterwards; the run's
/// Chaos Toolkit journal reads in Chaos Toolkit's own report generator.
fn ctrl_c_runs_the_rollbacks(handle_path: &Path, handle: &DemoHandle, dir: &Path) {
    let journal = dir.join("interrupted.journal.json");
    let mut child = Command::new(BIN)
        .args(["chaos", "run"])
        .arg(experiment("payments-slow.toml"))
        .arg("--demo")
        .arg(handle_path)
        .arg("--journal")
        .arg(&journal)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("gauntlet chaos run");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.expect("line");
        seen.push(line.clone());
        if line.contains("payments answers 3 s late") {
            break;
        }
    }
    let api = &handle.chaos.as_ref().expect("chaos").api;
    let toxics = || get_json(&format!("{api}/proxies/orders_to_payments/toxics"));
    assert_eq!(
        toxics().as_array().map(Vec::len),
        Some(1),
        "the fault is in place: {seen:?}"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("SIGINT");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().expect("exit");
    assert_eq!(status.code(), Some(130), "{rest:?}");
    assert!(
        rest.iter().any(|l| l.contains("interrupted"))
            && rest.iter().any(|l| l.contains("removed \"payments-slow\"")),
        "{rest:?}"
    );
    assert_eq!(
        toxics().as_array().map(Vec::len),
        Some(0),
        "the rollback removed the toxic"
    );
    chaos_toolkit_reads_the_journal(&journal);
}

/// `chaosreport.generate_report` (chaostoolkit-reporting, what `chaos report` runs) renders
/// the journal: the interrupted run, its rolled-back fault, the experiment's title.
fn chaos_toolkit_reads_the_journal(journal: &Path) {
    let script = "import json, sys, chaosreport\n\
        j = json.load(open(sys.argv[1]))\n\
        assert j['status'] == 'interrupted', j['status']\n\
        print(chaosreport.generate_report(j, 'markdown'))";
    let o = Command::new("python3")
        .args(["-c", script])
        .arg(journal)
        .output()
        .expect("python3 (scripts/test.sh installs chaostoolkit-reporting)");
    let md = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for needle in [
        "Payments answers late",
        "payments answers 3 s late",
        "payments is fast",
    ] {
        assert!(
            md.contains(needle),
            "{needle} not in Chaos Toolkit's report:\n{md}"
        );
    }
}
