//! `gauntlet chaos proxy` (the fault-injecting proxy with Toxiproxy's HTTP API),
//! `gauntlet chaos run` (an experiment against a running demo) and `gauntlet chaos prove`
//! (an experiment and its control, judged together).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use gauntlet_chaos::{self as experiment, Experiment, RunOptions, target::Demo};
use gauntlet_demo_system::handle::DemoHandle;

#[derive(Debug, Args)]
pub struct ChaosArgs {
    #[command(subcommand)]
    command: ChaosCommand,
}

#[derive(Debug, Subcommand)]
enum ChaosCommand {
    /// A TCP proxy that injects faults, driven by Toxiproxy's HTTP API (its clients work
    /// unchanged): latency, bandwidth, slow_close, timeout, reset_peer, slicer, limit_data.
    #[command(after_help = "Examples:
  gauntlet chaos proxy
  curl -s -XPOST 127.0.0.1:8474/proxies -d '{\"name\": \"orders_to_payments\", \"listen\": \"127.0.0.1:21300\", \"upstream\": \"127.0.0.1:8300\"}'
  curl -s -XPOST 127.0.0.1:8474/proxies/orders_to_payments/toxics -d '{\"type\": \"latency\", \"attributes\": {\"latency\": 3000}}'
  curl -s -XPOST 127.0.0.1:8474/reset        # every proxy enabled, every toxic gone

--config takes the body /populate takes: [{\"name\", \"listen\", \"upstream\", \"enabled\"}, ...].")]
    Proxy(ProxyArgs),
    /// Run a chaos experiment against a running `gauntlet demo --chaos`: the steady state
    /// before, the method (faults, probes, pauses), the steady state after, then the
    /// rollbacks, which always run (Ctrl-C too). Exit 0 only if the hypothesis held
    /// throughout; 1 if a probe's tolerance was not met; 2 if an action could not be
    /// carried out; 130 if interrupted. Against a demo started without the experiment's
    /// pattern (`--disable`), the run is its control: every phase runs, and it exits 0
    /// only if an evidence probe failed (the pattern is proven), 1 if none did.
    #[command(after_help = "Examples:
  gauntlet demo --chaos &                      # in another terminal, or in the background
  gauntlet chaos run chaos/experiments/payments-slow.toml
  gauntlet chaos run chaos/experiments/inventory-resets.toml --junit chaos.xml --json chaos.json

  # the control: the same experiment against a demo without the pattern
  gauntlet demo --chaos --disable retries --ports auto --data-dir /tmp/no-retries &
  gauntlet chaos run chaos/experiments/inventory-resets.toml --demo /tmp/no-retries/demo.json

chaos/experiments/README.md documents the experiment file: steady_state, method, rollbacks,
evidence, and every action and probe type.")]
    Run(RunArgs),
    /// Run an experiment against a demo with its pattern on, then against one without it
    /// (its control), and judge them together: held and proven (exit 0: it held, and the
    /// control failed on an evidence probe), broken (exit 1: it did not hold), unproven
    /// (exit 1: the control failed on no evidence probe), aborted (exit 2). Prints every
    /// probe with the figures of both runs.
    #[command(after_help = "Examples:
  gauntlet demo --chaos --ports auto --data-dir /tmp/on &
  gauntlet demo --chaos --disable circuit-breaker --ports auto --data-dir /tmp/off &
  gauntlet chaos prove chaos/experiments/payments-slow.toml --demo /tmp/on/demo.json --control /tmp/off/demo.json --json proof.json")]
    Prove(ProveArgs),
}

#[derive(Debug, Args)]
struct ProveArgs {
    /// The experiment (TOML).
    #[arg(value_name = "EXPERIMENT")]
    experiment: PathBuf,
    /// The demo with the pattern on.
    #[arg(
        long,
        value_name = "FILE",
        env = "GAUNTLET_DEMO",
        default_value = "gauntlet-demo/demo.json"
    )]
    demo: PathBuf,
    /// The demo without it: started with `--disable PATTERN` (or a config file that
    /// switches it off).
    #[arg(long, value_name = "FILE")]
    control: PathBuf,
    /// Also write the proof as JSON (schema gauntlet.chaos.proof/v1: the verdict, every
    /// probe of both runs, and both reports).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Also write JUnit XML: "held" and "proven", one test case each.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The experiment (TOML).
    #[arg(value_name = "EXPERIMENT")]
    experiment: PathBuf,
    /// The demo to run it against: the demo.json that `gauntlet demo --chaos` wrote (its
    /// banner prints the path).
    #[arg(
        long,
        value_name = "FILE",
        env = "GAUNTLET_DEMO",
        default_value = "gauntlet-demo/demo.json"
    )]
    demo: PathBuf,
    /// Also write the report as JSON (schema gauntlet.chaos.report/v1).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Also write the report as JUnit XML, each probe and action a test case.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Also write the run as a Chaos Toolkit journal (journal.json's format), for tools
    /// that read those (`chaos report`).
    #[arg(long, value_name = "FILE")]
    journal: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ProxyArgs {
    /// Where the HTTP API listens (Toxiproxy's default port). Off loopback only with
    /// --insecure-api: the API has no credentials.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8474")]
    api: String,
    /// Serve the API off loopback anyway (anyone who reaches it can add faults and relay).
    #[arg(long)]
    insecure_api: bool,
    /// Let proxies listen on and connect to addresses off loopback.
    #[arg(long)]
    allow_remote: bool,
    /// Proxies to create at start (JSON, as POST /populate takes).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

pub async fn run(args: ChaosArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        ChaosCommand::Run(r) => run_experiment(r).await,
        ChaosCommand::Prove(p) => prove(p).await,
        ChaosCommand::Proxy(p) => {
            let initial = match &p.config {
                Some(f) => gauntlet_chaos_proxy::read_config(f)?,
                None => Vec::new(),
            };
            gauntlet_chaos_proxy::check_api_address(&p.api, p.insecure_api).await?;
            let listener = tokio::net::TcpListener::bind(&p.api)
                .await
                .with_context(|| format!("cannot listen for the API on {}", p.api))?;
            let addr = listener.local_addr()?;
            if !addr.ip().is_loopback() {
                tracing::warn!(api = %addr, "the chaos proxy API serves off loopback with no credentials: anyone who reaches it can add faults to every proxy");
            }
            let policy = gauntlet_chaos_proxy::Policy {
                allow_remote: p.allow_remote,
                ..Default::default()
            };
            let server = gauntlet_chaos_proxy::bind_with(listener, initial, policy).await?;
            println!("chaos proxy API on http://{addr} (Toxiproxy-compatible); Ctrl-C stops it");
            server.run(super::stop_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The demo behind `path`, checked against what `exp` needs.
fn demo_for(exp: &Experiment, path: &Path) -> anyhow::Result<DemoHandle> {
    let handle = DemoHandle::load(path)?;
    if handle.chaos.is_none() && exp.activities().any(|a| a.kind.needs_proxies()) {
        anyhow::bail!(
            "{} was written by a demo started without --chaos, and this experiment puts faults on its proxies: start it with `gauntlet demo --chaos`",
            path.display()
        );
    }
    Ok(handle)
}

/// Runs `exp` against `handle`, printing as it goes; Ctrl-C rolls back and ends the run.
async fn run_live(exp: &Experiment, file: &Path, handle: DemoHandle) -> experiment::Report {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let ctrl_c = tokio::spawn(async move {
        super::stop_signal().await;
        eprintln!("stopping: rolling back...");
        let _ = stop.send(true);
    });
    let report = experiment::run(
        exp,
        &file.display().to_string(),
        Demo::new(handle),
        RunOptions { live: true },
        stopped,
    )
    .await;
    ctrl_c.abort();
    report
}

fn write(path: Option<&Path>, flag: &str, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(path) = path {
        std::fs::write(path, bytes)
            .with_context(|| format!("cannot write {flag} {}", path.display()))?;
    }
    Ok(())
}

async fn run_experiment(r: RunArgs) -> anyhow::Result<ExitCode> {
    let exp = Experiment::load(&r.experiment)?;
    let handle = demo_for(&exp, &r.demo)?;
    let report = run_live(&exp, &r.experiment, handle).await;
    write(
        r.json.as_deref(),
        "--json",
        &serde_json::to_vec_pretty(&report)?,
    )?;
    write(r.junit.as_deref(), "--junit", report.junit().as_bytes())?;
    let journal = experiment::journal::journal(&exp, &report);
    write(
        r.journal.as_deref(),
        "--journal",
        &serde_json::to_vec_pretty(&journal)?,
    )?;
    Ok(ExitCode::from(report.exit_code()))
}

async fn prove(p: ProveArgs) -> anyhow::Result<ExitCode> {
    let exp = Experiment::load(&p.experiment)?;
    let on = demo_for(&exp, &p.demo)?;
    let off = demo_for(&exp, &p.control)?;
    let pattern = exp.validates;
    if on.disabled.contains(&pattern) {
        anyhow::bail!(
            "{} runs without {pattern}: --demo must be a demo with the pattern on",
            p.demo.display()
        );
    }
    if !off.disabled.contains(&pattern) {
        anyhow::bail!(
            "{} runs with {pattern} on: start the control with `gauntlet demo --chaos --disable {pattern}`",
            p.control.display()
        );
    }
    println!("== the experiment, with {pattern} on");
    let with = run_live(&exp, &p.experiment, on).await;
    if with.status == experiment::Status::Interrupted {
        return Ok(ExitCode::from(with.exit_code()));
    }
    println!("\n== its control, without {pattern}");
    let without = run_live(&exp, &p.experiment, off).await;
    let proof = experiment::proof::judge(with, without);
    println!("\n{}", proof.text());
    write(
        p.json.as_deref(),
        "--json",
        &serde_json::to_vec_pretty(&proof)?,
    )?;
    write(p.junit.as_deref(), "--junit", proof.junit().as_bytes())?;
    if proof.control.status == experiment::Status::Interrupted {
        return Ok(ExitCode::from(130));
    }
    Ok(ExitCode::from(proof.verdict.exit_code()))
}
