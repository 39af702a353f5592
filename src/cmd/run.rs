//! `gauntlet run`: the whole gauntlet (contracts, load, drift, every pattern's experiment
//! and control) from a suite file, and one verdict.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use gauntlet_demo_system::config::Pattern;
use gauntlet_suite::{RunOptions, Suite};

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  gauntlet run                                   # gauntlet.toml here: the whole demo suite (~8.5 min)
  gauntlet run --only circuit-breaker            # one pattern and its control (~1.5 min)
  gauntlet run gauntlet.toml --report out --junit gauntlet.xml   # in CI

Exit 0 only when every pattern held and was proven (its control failed on evidence), every
contract verified and every load threshold held; 1 when one did not; 2 when the suite is not
valid (nothing is started) or the run could not finish. docs/run.md documents the suite file.")]
pub struct RunArgs {
    /// The suite file.
    #[arg(value_name = "SUITE", default_value = "gauntlet.toml")]
    suite: PathBuf,
    /// Only these patterns' experiments (repeatable); contracts and load are skipped.
    #[arg(long, value_name = "PATTERN", value_parser = super::demo::pattern_parser())]
    only: Vec<Pattern>,
    /// Where the report (index.html, report.json), the load pages and the systems' data go.
    #[arg(long, value_name = "DIR", default_value = "gauntlet-report")]
    report: PathBuf,
    /// Also write JUnit XML (a case per pattern, provider and load run).
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
}

pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let suite = match Suite::load(&args.suite, &args.only) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("Error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    if suite.contracts.is_some()
        && suite.only.is_empty()
        && let Some(exit) = super::untracked_pact().await?
    {
        return Ok(exit);
    }
    std::fs::create_dir_all(&args.report)
        .with_context(|| format!("cannot create --report {}", args.report.display()))?;
    let opts = RunOptions {
        exe: std::env::current_exe().context("cannot find the gauntlet binary")?,
        report_dir: std::fs::canonicalize(&args.report)?,
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let ctrl_c = tokio::spawn(async move {
        super::stop_signal().await;
        eprintln!("stopping: rolling back, then stopping the systems...");
        let _ = stop.send(true);
    });
    let started = std::time::Instant::now();
    let progress = move |line: &str| println!("[{:>4.0}s] {line}", started.elapsed().as_secs_f64());
    let report = gauntlet_suite::run(&suite, &opts, &progress, stopped).await;
    ctrl_c.abort();
    println!("\n{}", report.text());
    let index = opts.report_dir.join("index.html");
    std::fs::write(&index, gauntlet_suite::html::render(&report))
        .with_context(|| format!("cannot write {}", index.display()))?;
    let json = opts.report_dir.join("report.json");
    std::fs::write(&json, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("cannot write {}", json.display()))?;
    if let Some(path) = &args.junit {
        std::fs::write(path, report.junit())
            .with_context(|| format!("cannot write --junit {}", path.display()))?;
    }
    println!("report: {} (and report.json)", index.display());
    Ok(ExitCode::from(report.verdict.exit_code()))
}
