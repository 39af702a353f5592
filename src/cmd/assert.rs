//! `gauntlet assert`: trace-based assertions on a running system.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use clap::Args;
use gauntlet_demo_system::handle::DemoHandle;
use gauntlet_query_api::client::QueryClient;
use gauntlet_suite::assertions::{self, Assertions, GatherError, System, Target};

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  gauntlet demo &                                                  # in another terminal
  gauntlet assert demo-system/assertions/orders.toml               # sends its [trigger], checks its trace set
  gauntlet assert demo-system/assertions/invariants.toml --since 5m   # every correlation of the last 5 minutes
  gauntlet assert demo-system/assertions/invariants.toml --run 0193b2...  # a load run's traces, by its run ID
  gauntlet assert FILE --correlation-id 0193b2... --junit asserts.xml

A spec chooses spans with a selector (span[service.name=\"orders\" kind=\"server\"], `A, B` for
either, `A B` for B under A, :first :last :nth_child(n)) and asserts on them (count = 1,
attr:KEY = VALUE, attr:KEY exists, duration < 500ms, event:retry = 0, links >= 1,
children <= 1). Exit 0 when every spec held, 1 when one did not, 2 when the file is not
valid or the trace set could not be read. docs/assert.md documents the file.")]
pub struct AssertArgs {
    /// The assertion file (TOML).
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// The system: the demo.json that `gauntlet demo` wrote (gateway and collector).
    #[arg(
        long,
        value_name = "FILE",
        env = "GAUNTLET_DEMO",
        default_value = "gauntlet-demo/demo.json"
    )]
    demo: PathBuf,
    /// The collector's query API (instead of the demo's; with --gateway, no demo.json is read).
    #[arg(long, value_name = "URL")]
    collector: Option<String>,
    /// The system's entry point, which `{{gateway}}` stands for in the trigger.
    #[arg(long, value_name = "URL")]
    gateway: Option<String>,
    /// Check the traces of this correlation ID instead of sending the trigger.
    #[arg(long, value_name = "ID", group = "target")]
    correlation_id: Option<String>,
    /// Check this trace (and the traces its spans link to) instead of sending the trigger.
    #[arg(long, value_name = "ID", group = "target")]
    trace_id: Option<String>,
    /// Check every trace set of the last DURATION (5m, 1h).
    #[arg(long, value_name = "DURATION", group = "target", value_parser = humantime::parse_duration)]
    since: Option<Duration>,
    /// Check every trace set of a load or chaos run's window, found by its markers.
    #[arg(long, value_name = "RUN_ID", group = "target")]
    run: Option<String>,
    /// Also write the report as JSON (schema gauntlet.assert.report/v1).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Also write JUnit XML, a test case per spec.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
}

pub async fn run(args: AssertArgs) -> anyhow::Result<ExitCode> {
    let file = match Assertions::load(&args.file) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("Error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let system = match system(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("Error: {e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    let gathered = match target(&args, &system).await {
        Ok(t) => assertions::gather(&file, &t, &system).await,
        Err(e) => Err(e),
    };
    let gathered = match gathered {
        Ok(g) => g,
        Err(e) => {
            eprintln!("Error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let report = assertions::judge(&file, &gathered);
    print!("{}", report.text());
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("cannot write --json {}", path.display()))?;
    }
    if let Some(path) = &args.junit {
        std::fs::write(path, report.junit())
            .with_context(|| format!("cannot write --junit {}", path.display()))?;
    }
    Ok(ExitCode::from(if report.passed { 0 } else { 1 }))
}

fn system(args: &AssertArgs) -> anyhow::Result<System> {
    let (gateway, collector) = match (&args.gateway, &args.collector) {
        (Some(g), Some(c)) => (g.clone(), c.clone()),
        _ => {
            let handle = DemoHandle::load(&args.demo).with_context(|| {
                "start the demo (`gauntlet demo`), pass --demo, or name --gateway and --collector"
            })?;
            let api = match (&args.collector, handle.collector.api) {
                (Some(c), _) => c.clone(),
                (None, Some(api)) => api,
                (None, None) => anyhow::bail!(
                    "{} names no query API (the demo sends to another collector): pass --collector",
                    args.demo.display()
                ),
            };
            (args.gateway.clone().unwrap_or(handle.gateway), api)
        }
    };
    Ok(System {
        gateway,
        collector: QueryClient::new(&collector, None, Duration::from_secs(30)),
    })
}

async fn target(args: &AssertArgs, system: &System) -> Result<Target, GatherError> {
    Ok(if let Some(id) = &args.correlation_id {
        Target::Correlation(id.clone())
    } else if let Some(id) = &args.trace_id {
        Target::Trace(id.to_ascii_lowercase())
    } else if let Some(since) = args.since {
        let end = SystemTime::now();
        Target::Window {
            start: end - since,
            end,
        }
    } else if let Some(run) = &args.run {
        let (start, end) = assertions::gather::run_window(&system.collector, run).await?;
        Target::Window { start, end }
    } else {
        Target::Request
    })
}
