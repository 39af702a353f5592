//! Puts the system through the gauntlet, in order: verify every provider's contracts against
//! a demo of their own (provider states write to the services' databases: a product set
//! out of stock for a contract would still be out of stock for an experiment), start the
//! system (the bundled demo with its chaos proxies), run the load, prove each pattern (its
//! experiment against the system, its control against a second demo started with the
//! pattern off), then read back the calls the run caused against the contracts (drift).
//! One demo at a time besides the system: several at once on a small machine would measure
//! each other. Every demo it started is stopped, whatever happens; Ctrl-C ends the current
//! experiment (its rollbacks run) and the run is reported as aborted.

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use gauntlet_chaos::proof::{self, Verdict};
use gauntlet_chaos::target::Demo;
use gauntlet_chaos::{Experiment, Pattern, RunOptions as ChaosOptions};
use gauntlet_contracts::VerifyConfig;
use gauntlet_demo_launch::{LaunchOptions, Ports, RunningDemo};
use gauntlet_demo_system::config::DemoConfig;
use gauntlet_loadgen::otlp::Exporter;
use gauntlet_loadgen::{Options as LoadOptions, ProgressMode};
use gauntlet_query_api::markers;
use tokio::sync::watch;

use crate::assertions::{self, Target};
use crate::file::{AssertRun, Contracts, Load, Suite};
use crate::report::{
    AssertRow, CollectorRow, ContractRow, DriftRow, LoadRow, PatternRow, RunVerdict, SCHEMA,
    SuiteReport,
};

/// How to run a suite.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The `gauntlet` binary the demos' services run as.
    pub exe: PathBuf,
    /// Where the report, the load pages and the systems' data go.
    pub report_dir: PathBuf,
}

/// Says how the run is going, a line at a time.
pub type Progress<'a> = &'a (dyn Fn(&str) + Sync);

/// Runs `suite`; `stop` turning true (Ctrl-C) ends it early.
pub async fn run(
    suite: &Suite,
    opts: &RunOptions,
    progress: Progress<'_>,
    stop: watch::Receiver<bool>,
) -> SuiteReport {
    let t0 = Instant::now();
    let started_unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let mut report = SuiteReport {
        schema: SCHEMA.into(),
        title: suite.title.clone(),
        suite: suite.path.display().to_string(),
        run_id: format!("suite-{:016x}", fastrand::u64(..)),
        verdict: crate::report::RunVerdict::Aborted,
        reason: String::new(),
        started_unix_ms,
        elapsed_s: 0.0,
        patterns: Vec::new(),
        contracts: Vec::new(),
        load: Vec::new(),
        assertions: Vec::new(),
        drift: None,
        skipped: Vec::new(),
        collector: None,
    };
    let aborted = run_parts(suite, opts, progress, stop, &mut report).await;
    report.elapsed_s = t0.elapsed().as_secs_f64();
    report.judge(aborted);
    report
}

/// Every part in order; the reason the run was aborted, if it was.
async fn run_parts(
    suite: &Suite,
    opts: &RunOptions,
    progress: Progress<'_>,
    stop: watch::Receiver<bool>,
    report: &mut SuiteReport,
) -> Option<String> {
    let whole = suite.only.is_empty();
    if !whole {
        let only: Vec<&str> = suite.only.iter().map(|p| p.name()).collect();
        report.skipped.push(format!(
            "contracts, load and drift (--only {})",
            only.join(", ")
        ));
    }
    if let Some(c) = suite.contracts.as_ref().filter(|_| whole) {
        match contracts_demo(suite, opts, c, progress).await {
            Ok(rows) => report.contracts = rows,
            Err(why) => return Some(why),
        }
    }
    progress("starting the system (the bundled demo, with its chaos proxies)...");
    let system = match start(opts, "system", suite.config.clone()).await {
        Ok(s) => s,
        Err(e) => return Some(format!("the system did not start: {e}")),
    };
    let since = Instant::now();
    report.collector = Some(collector_row(&system));
    let markers = RunMarkers::start(&system, suite, &report.run_id).await;
    if whole {
        for load in &suite.loads {
            progress(&format!("load {:?}...", load.spec.name));
            report
                .load
                .push(run_load(load, opts, &system, stop.clone()).await);
        }
    }
    if whole {
        for a in &suite.asserts {
            progress(&format!("assert {}...", a.spec.file.display()));
            let row = check_assertions(a, &system, &report.load).await;
            progress(&format!("assert {}: {}", row.file, row.summary()));
            report.assertions.push(row);
        }
    }
    let aborted = patterns(suite, opts, &system, progress, &stop, report).await;
    if let Some(c) = suite.contracts.as_ref().filter(|c| whole && c.drift) {
        progress("drift: the calls the run caused, against the contracts...");
        report.drift = Some(drift(c, &system, since.elapsed()).await);
    }
    // The verdict as it stands before the system stops, on the system's own collector.
    let mut so_far = report.clone();
    so_far.judge(aborted.clone());
    markers.stop(&so_far).await;
    progress("stopping the system...");
    system.stop().await;
    aborted
}

/// The suite's start and stop (with its verdict) as markers on the system's collector, so
/// its UI lists the run beside the load runs and experiments it made.
struct RunMarkers {
    exporter: Exporter,
    task: tokio::task::JoinHandle<()>,
    started: SystemTime,
    title: String,
}

impl RunMarkers {
    async fn start(system: &RunningDemo, suite: &Suite, run_id: &str) -> Self {
        let (exporter, task) = Exporter::start(
            &system.handle.collector.otlp_http,
            markers::RUN_SERVICE,
            run_id,
            0.0,
        );
        let started = SystemTime::now();
        let title = suite.title.clone();
        exporter
            .marker(
                markers::RUN_START,
                started,
                started,
                vec![("gauntlet.suite".into(), title.clone())],
                false,
            )
            .await;
        Self {
            exporter,
            task,
            started,
            title,
        }
    }

    async fn stop(self, report: &SuiteReport) {
        let verdict = match report.verdict {
            RunVerdict::Passed => "passed",
            RunVerdict::Failed => "failed",
            RunVerdict::Aborted => "aborted",
        };
        self.exporter
            .marker(
                markers::RUN_STOP,
                self.started,
                SystemTime::now(),
                vec![
                    ("gauntlet.suite".into(), self.title),
                    (markers::RUN_VERDICT_KEY.into(), verdict.into()),
                    ("gauntlet.reason".into(), report.reason.clone()),
                ],
                report.verdict != RunVerdict::Passed,
            )
            .await;
        // The sender flushes what it holds once every handle is gone.
        drop(self.exporter);
        let _ = self.task.await;
    }
}

/// Every selected pattern proven in turn; why the run was aborted, if it was.
async fn patterns(
    suite: &Suite,
    opts: &RunOptions,
    system: &RunningDemo,
    progress: Progress<'_>,
    stop: &watch::Receiver<bool>,
    report: &mut SuiteReport,
) -> Option<String> {
    let mut aborted = None;
    for (file, exp) in suite.selected() {
        if *stop.borrow() {
            aborted = Some("interrupted (Ctrl-C)".to_string());
            break;
        }
        let row = prove(suite, opts, file, exp, system, progress, stop).await;
        progress(&format!(
            "{}: {}: {}",
            row.pattern,
            row.verdict.says(),
            row.reason
        ));
        if row.verdict == Verdict::Aborted && *stop.borrow() {
            aborted = Some("interrupted (Ctrl-C)".to_string());
        }
        report.patterns.push(row);
        if aborted.is_some() {
            break;
        }
    }
    aborted
}

/// Every provider verified against a demo started for it, with Pact's provider states.
async fn contracts_demo(
    suite: &Suite,
    opts: &RunOptions,
    c: &Contracts,
    progress: Progress<'_>,
) -> Result<Vec<ContractRow>, String> {
    progress("contracts: starting a demo with provider states...");
    let mut config = suite.config.clone();
    config.contracts.provider_states = true;
    let demo = start(opts, "contracts", config)
        .await
        .map_err(|e| format!("the contracts' demo did not start: {e}"))?;
    let rows = verify_contracts(c, &demo, progress).await;
    demo.stop().await;
    Ok(rows)
}

/// A demo on free ports with its chaos proxies, its data under the report directory.
async fn start(
    opts: &RunOptions,
    name: &str,
    config: DemoConfig,
) -> Result<RunningDemo, gauntlet_demo_launch::LaunchError> {
    gauntlet_demo_launch::launch(LaunchOptions {
        exe: opts.exe.clone(),
        data_dir: opts.report_dir.join(name),
        ports: Ports::Auto,
        collector: None,
        config,
        chaos: true,
    })
    .await
}

fn collector_row(system: &RunningDemo) -> CollectorRow {
    let data_dir = system.data_dir.join("collector");
    CollectorRow {
        reopen: format!(
            "{} collector --data-dir {}",
            system.exe.display(),
            data_dir.display()
        ),
        data_dir: data_dir.display().to_string(),
        ui: "http://127.0.0.1:16686".into(),
    }
}

async fn verify_contracts(
    c: &Contracts,
    system: &RunningDemo,
    progress: Progress<'_>,
) -> Vec<ContractRow> {
    let mut providers: Vec<String> = c.pacts.iter().map(|p| p.provider.clone()).collect();
    providers.sort();
    providers.dedup();
    let mut rows = Vec::new();
    for provider in providers {
        progress(&format!("contracts: verifying {provider}..."));
        let base = system
            .handle
            .services
            .get(&provider)
            .and_then(|urls| urls.first())
            .cloned();
        let Some(base) = base else {
            rows.push(ContractRow {
                provider: provider.clone(),
                passed: false,
                interactions: 0,
                failures: vec![format!("the system has no service named {provider}")],
            });
            continue;
        };
        let pacts: Vec<_> = c
            .pacts
            .iter()
            .filter(|p| p.provider == provider)
            .cloned()
            .collect();
        let row =
            match gauntlet_contracts::verify(&VerifyConfig::new(&provider, &base, pacts)).await {
                Ok(r) => ContractRow {
                    provider: provider.clone(),
                    passed: r.passed(),
                    interactions: r.outcomes.len(),
                    failures: r
                        .failures()
                        .map(|o| {
                            format!(
                                "{}: {}: {}",
                                o.consumer,
                                o.description,
                                o.problems.join("; ")
                            )
                        })
                        .collect(),
                },
                Err(e) => ContractRow {
                    provider: provider.clone(),
                    passed: false,
                    interactions: 0,
                    failures: vec![e.to_string()],
                },
            };
        rows.push(row);
    }
    rows
}

async fn run_load(
    load: &Load,
    opts: &RunOptions,
    system: &RunningDemo,
    stop: watch::Receiver<bool>,
) -> LoadRow {
    let failed = |error: String| LoadRow {
        name: load.spec.name.clone(),
        passed: false,
        requests: 0,
        failures: 0,
        p50_ms: 0.0,
        p99_ms: 0.0,
        thresholds: Vec::new(),
        html: None,
        error: Some(error),
        start_unix_ms: 0,
        end_unix_ms: 0,
    };
    let run_id = format!("run-{:08x}", fastrand::u32(..));
    let plan = match load.plan(&system.handle.gateway, &run_id) {
        Ok(p) => p,
        Err(e) => return failed(e),
    };
    let options = LoadOptions {
        allow_remote: false,
        progress: ProgressMode::Off,
        otlp: Some(system.handle.collector.otlp_http.clone()),
        otlp_sample: 0.0,
    };
    let started = SystemTime::now();
    let result = match gauntlet_loadgen::run(plan, options, stop).await {
        Ok(r) => r,
        Err(e) => return failed(e.to_string()),
    };
    let page = format!("load-{}.html", slug(&load.spec.name));
    let summary = gauntlet_loadgen::Report::of(&result);
    let html = std::fs::write(
        opts.report_dir.join(&page),
        gauntlet_loadgen::html::render(&summary, &result.all),
    )
    .ok()
    .map(|_| page);
    LoadRow {
        name: load.spec.name.clone(),
        passed: !result.breached() && !result.interrupted,
        requests: result.all.requests,
        failures: result.all.failures,
        p50_ms: result.all.latency.value_at_quantile(0.5) as f64 / 1000.0,
        p99_ms: result.all.latency.value_at_quantile(0.99) as f64 / 1000.0,
        thresholds: result.verdicts.clone(),
        html,
        error: None,
        start_unix_ms: unix_ms(started),
        end_unix_ms: unix_ms(SystemTime::now()),
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// One assertion file on the system: its trigger's trace set, or a load run's window.
async fn check_assertions(a: &AssertRun, system: &RunningDemo, loads: &[LoadRow]) -> AssertRow {
    let mut row = AssertRow {
        file: a.spec.file.display().to_string(),
        load: a.spec.load.clone(),
        passed: false,
        report: None,
        error: None,
    };
    let Some(api) = system.handle.collector.api.as_deref() else {
        row.error = Some("the system's collector has no query API".into());
        return row;
    };
    let target = match &a.spec.load {
        None => Target::Request,
        Some(name) => match loads
            .iter()
            .find(|l| &l.name == name && l.start_unix_ms > 0)
        {
            Some(l) => {
                let at = |ms: u64| UNIX_EPOCH + std::time::Duration::from_millis(ms);
                Target::Window {
                    start: at(l.start_unix_ms),
                    end: at(l.end_unix_ms),
                }
            }
            None => {
                row.error = Some(format!("load {name:?} did not run"));
                return row;
            }
        },
    };
    let target_system = assertions::System {
        gateway: system.handle.gateway.clone(),
        collector: gauntlet_query_api::client::QueryClient::new(
            api,
            None,
            std::time::Duration::from_secs(30),
        ),
    };
    match assertions::gather(&a.assertions, &target, &target_system).await {
        Ok(g) => {
            let report = assertions::judge(&a.assertions, &g);
            row.passed = report.passed;
            row.report = Some(report);
        }
        Err(e) => row.error = Some(e.to_string()),
    }
    row
}

async fn drift(c: &Contracts, system: &RunningDemo, since: std::time::Duration) -> DriftRow {
    let Some(api) = system.handle.collector.api.clone() else {
        return DriftRow {
            traces: 0,
            covered: 0,
            uncovered: Vec::new(),
            unseen: Vec::new(),
            error: Some("the system's collector has no query API".into()),
        };
    };
    let contracted = gauntlet_contracts::drift::contracted(&c.pacts);
    let observed =
        gauntlet_contracts::drift::observe(&api, None, since + std::time::Duration::from_secs(5))
            .await;
    match (contracted, observed) {
        (Ok(contracted), Ok((seen, traces))) => {
            let d = gauntlet_contracts::drift::compare(contracted, seen, traces);
            DriftRow {
                traces: d.traces,
                covered: d.covered.len(),
                uncovered: d
                    .uncovered
                    .iter()
                    .map(|s| s.interaction.to_string())
                    .collect(),
                unseen: d
                    .unseen
                    .iter()
                    .map(|c| format!("{} \"{}\"", c.interaction, c.description))
                    .collect(),
                error: None,
            }
        }
        (Err(e), _) | (_, Err(e)) => DriftRow {
            traces: 0,
            covered: 0,
            uncovered: Vec::new(),
            unseen: Vec::new(),
            error: Some(e.to_string()),
        },
    }
}

/// One pattern: the experiment against the system, then its control against a demo
/// started without the pattern.
async fn prove(
    suite: &Suite,
    opts: &RunOptions,
    file: &Path,
    exp: &Experiment,
    system: &RunningDemo,
    progress: Progress<'_>,
    stop: &watch::Receiver<bool>,
) -> PatternRow {
    let pattern = exp.validates;
    let name = file.display().to_string();
    progress(&format!("{pattern}: the experiment ({name})..."));
    let with = experiment(exp, &name, system, stop).await;
    let row = |verdict, reason: String, proof| PatternRow {
        pattern,
        experiment: name.clone(),
        verdict,
        reason,
        proof,
    };
    if *stop.borrow() {
        return row(Verdict::Aborted, "interrupted (Ctrl-C)".into(), None);
    }
    progress(&format!(
        "{pattern}: its control, against a demo without {pattern}..."
    ));
    let mut config = suite.config.clone();
    config.disable(pattern);
    let control = match start(opts, &control_dir(pattern), config).await {
        Ok(c) => c,
        Err(e) => {
            return row(
                Verdict::Aborted,
                format!("the control system did not start: {e}"),
                None,
            );
        }
    };
    let without = experiment(exp, &name, &control, stop).await;
    control.stop().await;
    let proof = proof::judge(with, without);
    row(proof.verdict, proof.reason.clone(), Some(proof))
}

fn control_dir(p: Pattern) -> String {
    format!("control-{}", p.name())
}

async fn experiment(
    exp: &Experiment,
    name: &str,
    system: &RunningDemo,
    stop: &watch::Receiver<bool>,
) -> gauntlet_chaos::Report {
    gauntlet_chaos::run(
        exp,
        name,
        Demo::new(system.handle.clone()),
        ChaosOptions { live: false },
        stop.clone(),
    )
    .await
}

/// A name fit for a file name.
fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}
