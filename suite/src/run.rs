//! Puts the system through the gauntlet, in order: verify every provider's contracts (against
//! a demo of their own whose provider states write to the services' databases: a product set
//! out of stock for a contract would still be out of stock for an experiment; through a
//! broker of the run's own, then can-i-deploy), start the system (the bundled demo with its
//! chaos proxies, or use the running one the suite names), run the load, check the trace
//! assertions, prove each pattern (its experiment against the system, its control against a
//! second demo started with the pattern off, or the running control the suite names), then
//! read back the calls the run caused against the contracts (drift). One demo at a time
//! besides the system: several at once on a small machine would measure each other. Every
//! demo it started is stopped, whatever happens; Ctrl-C ends the current experiment (its
//! rollbacks run) and the run is reported as aborted.

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use gauntlet_chaos::proof::{self, Verdict};
use gauntlet_chaos::target::Demo;
use gauntlet_chaos::{Experiment, Pattern, RunOptions as ChaosOptions};
use gauntlet_demo_system::handle::DemoHandle;
use gauntlet_loadgen::otlp::Exporter;
use gauntlet_loadgen::{Options as LoadOptions, ProgressMode};
use gauntlet_query_api::markers;
use tokio::sync::watch;

use crate::assertions::{self, Target};
use crate::file::{AssertRun, Contracts, Load, Suite};
use crate::report::{
    AssertRow, ContractRow, DeployRow, DriftRow, LoadRow, PatternRow, RunVerdict, SCHEMA,
    SuiteReport,
};
use crate::system::{System, start_demo};

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
        can_i_deploy: Vec::new(),
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
            "contracts, load, assertions and drift (--only {})",
            only.join(", ")
        ));
    }
    if let Some(c) = suite.contracts.as_ref().filter(|_| whole) {
        let checked = match &suite.external {
            // A running system answers its own provider states, or says it does not.
            Some(e) => {
                let services = &e.handle.services;
                crate::contracts::check(c, services, &opts.report_dir, &report.run_id, progress)
                    .await
            }
            None => contracts_demo(suite, opts, c, &report.run_id, progress).await,
        };
        match checked {
            Ok((rows, deploy)) => (report.contracts, report.can_i_deploy) = (rows, deploy),
            Err(why) => return Some(why),
        }
    }
    progress(match &suite.external {
        Some(_) => "the system: the running one the suite names...",
        None => "starting the system (the bundled demo, with its chaos proxies)...",
    });
    let system = match System::start_or_use(suite, opts).await {
        Ok(s) => s,
        Err(e) => return Some(e),
    };
    let since = Instant::now();
    report.collector = Some(system.collector_row());
    let markers = RunMarkers::start(system.handle(), suite, &report.run_id).await;
    if whole {
        for load in &suite.loads {
            progress(&format!("load {:?}...", load.spec.name));
            report
                .load
                .push(run_load(load, opts, system.handle(), stop.clone()).await);
        }
    }
    if whole {
        for a in &suite.asserts {
            progress(&format!("assert {}...", a.spec.file.display()));
            let row = check_assertions(a, system.handle(), &report.load).await;
            progress(&format!("assert {}: {}", row.file, row.summary()));
            report.assertions.push(row);
        }
    }
    let aborted = patterns(suite, opts, system.handle(), progress, &stop, report).await;
    if let Some(c) = suite.contracts.as_ref().filter(|c| whole && c.drift) {
        progress("drift: the calls the run caused, against the contracts...");
        report.drift = Some(drift(c, system.handle(), since.elapsed()).await);
    }
    // The verdict as it stands before the system stops, on the system's own collector.
    let mut so_far = report.clone();
    so_far.judge(aborted.clone());
    markers.stop(&so_far).await;
    if let System::Started(_) = &system {
        progress("stopping the system...");
    }
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
    async fn start(system: &DemoHandle, suite: &Suite, run_id: &str) -> Self {
        let (exporter, task) = Exporter::start(
            &system.collector.otlp_http,
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
    system: &DemoHandle,
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
    version: &str,
    progress: Progress<'_>,
) -> Result<(Vec<ContractRow>, Vec<DeployRow>), String> {
    progress("contracts: starting a demo with provider states...");
    let mut config = suite.config.clone();
    config.contracts.provider_states = true;
    let demo = start_demo(opts, "contracts", config)
        .await
        .map_err(|e| format!("the contracts' demo did not start: {e}"))?;
    let checked = crate::contracts::check(
        c,
        &demo.handle.services,
        &opts.report_dir,
        version,
        progress,
    )
    .await;
    demo.stop().await;
    checked
}

async fn run_load(
    load: &Load,
    opts: &RunOptions,
    system: &DemoHandle,
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
    let plan = match load.plan(&system.gateway, &run_id) {
        Ok(p) => p,
        Err(e) => return failed(e),
    };
    let options = LoadOptions {
        allow_remote: false,
        progress: ProgressMode::Off,
        otlp: Some(system.collector.otlp_http.clone()),
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
async fn check_assertions(a: &AssertRun, system: &DemoHandle, loads: &[LoadRow]) -> AssertRow {
    let mut row = AssertRow {
        file: a.spec.file.display().to_string(),
        load: a.spec.load.clone(),
        passed: false,
        report: None,
        error: None,
    };
    let Some(api) = system.collector.api.as_deref() else {
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
        gateway: system.gateway.clone(),
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

async fn drift(c: &Contracts, system: &DemoHandle, since: std::time::Duration) -> DriftRow {
    let Some(api) = system.collector.api.clone() else {
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
    system: &DemoHandle,
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
    let without = match &suite.external {
        Some(e) => {
            let Some((path, control)) = e.controls.get(&pattern) else {
                let reason = format!(
                    "no control system: name a running one without {pattern} in [system.controls]"
                );
                return row(Verdict::Unproven, reason, None);
            };
            progress(&format!(
                "{pattern}: its control, against {}...",
                path.display()
            ));
            experiment(exp, &name, control, stop).await
        }
        None => {
            progress(&format!(
                "{pattern}: its control, against a demo without {pattern}..."
            ));
            let mut config = suite.config.clone();
            config.disable(pattern);
            let control = match start_demo(opts, &control_dir(pattern), config).await {
                Ok(c) => c,
                Err(e) => {
                    let reason = format!("the control system did not start: {e}");
                    return row(Verdict::Aborted, reason, None);
                }
            };
            let without = experiment(exp, &name, &control.handle, stop).await;
            control.stop().await;
            without
        }
    };
    let proof = proof::judge(with, without);
    row(proof.verdict, proof.reason.clone(), Some(proof))
}

fn control_dir(p: Pattern) -> String {
    format!("control-{}", p.name())
}

async fn experiment(
    exp: &Experiment,
    name: &str,
    system: &DemoHandle,
    stop: &watch::Receiver<bool>,
) -> gauntlet_chaos::Report {
    gauntlet_chaos::run(
        exp,
        name,
        Demo::new(system.clone()),
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
