//! `gauntlet load URL ...` and `gauntlet load run SCENARIO.toml`: flags → a
//! [`gauntlet_loadgen::Plan`], run it, print the table, write the reports, and exit 99 when
//! a threshold was breached (k6's convention), so CI can gate on it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use gauntlet_loadgen::{Options, Plan, ProgressMode, Quick, Report};

/// k6's exit code for a breached threshold.
const THRESHOLDS_BREACHED: u8 = 99;
/// The run was stopped with Ctrl-C (128 + SIGINT).
const INTERRUPTED: u8 = 130;

#[derive(Debug, Args)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "Examples:
  gauntlet load http://127.0.0.1:8080/api/products -c 20 -d 30s            # closed model: as fast as answers come
  gauntlet load http://127.0.0.1:8080/api/products -c 20 -r 500 -d 30s     # open model: 500 requests a second, whatever happens
  gauntlet load http://127.0.0.1:8080/health/live -n 10000 --threshold 'p99 < 50ms' --out report.json
  gauntlet load run loadgen/scenarios/demo.toml --html report.html

Latency in the open model counts from when each request was due, not when it could be sent:
a server that stalls shows as the wait its users would see. Load goes only to loopback
addresses unless --allow-remote. Exit codes: 0 ok, 99 a threshold was breached, 130 stopped
with Ctrl-C, 1 the run could not start (the message says why)."
)]
pub struct LoadArgs {
    #[command(subcommand)]
    command: Option<LoadCommand>,
    /// The URL to load (http://HOST:PORT/PATH).
    #[arg(value_name = "URL")]
    url: Option<String>,
    /// Connections (virtual users); in the open model, the most requests in flight.
    #[arg(short = 'c', long, default_value_t = 10)]
    connections: u32,
    /// Open model: send this many requests a second, whatever the answers do.
    #[arg(short = 'r', long, value_name = "PER_SECOND")]
    rate: Option<f64>,
    /// How long to run (e.g. 30s, 2m) [default: 10s, unless -n is given].
    #[arg(short = 'd', long, value_name = "DURATION", value_parser = humantime::parse_duration, conflicts_with = "requests")]
    duration: Option<Duration>,
    /// Stop after this many requests instead (closed model).
    #[arg(short = 'n', long, value_name = "COUNT")]
    requests: Option<u64>,
    /// HTTP method.
    #[arg(short = 'm', long, default_value = "GET")]
    method: String,
    /// A request header, `Name: value` (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// The request body.
    #[arg(short = 'b', long, conflicts_with = "body_file")]
    body: Option<String>,
    /// The request body, from a file.
    #[arg(long, value_name = "FILE")]
    body_file: Option<PathBuf>,
    /// Speak HTTP/2 (prior knowledge, no TLS).
    #[arg(long)]
    http2: bool,
    /// Longest one request may take.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// A pass/fail criterion, e.g. 'p99 < 300ms', 'error_rate < 0.01' (repeatable).
    #[arg(long = "threshold", value_name = "EXPR")]
    thresholds: Vec<String>,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Debug, Subcommand)]
enum LoadCommand {
    /// Run a scenario file: several scenarios at once, k6-style executors, flows of
    /// templated steps with captures and checks, thresholds.
    Run(RunArgs),
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The scenario file (TOML; loadgen/scenarios/demo.toml is an example).
    scenario: PathBuf,
    /// Set a template variable, overriding [vars] (repeatable): --var gateway=http://127.0.0.1:8080
    #[arg(long = "var", value_name = "NAME=VALUE")]
    vars: Vec<String>,
    /// Quick-run flags given after `run` by mistake, caught to say where they belong.
    #[arg(short = 'd', long, hide = true, value_name = "DURATION")]
    duration: Option<String>,
    #[arg(short = 'r', long, hide = true, value_name = "PER_SECOND")]
    rate: Option<String>,
    #[arg(short = 'n', long, hide = true, value_name = "COUNT")]
    requests: Option<String>,
    #[command(flatten)]
    output: OutputArgs,
}

impl RunArgs {
    /// A quick-run flag given to a scenario run: what to do instead.
    fn misplaced(&self) -> Option<String> {
        let flag = [
            ("--duration", &self.duration),
            ("--rate", &self.rate),
            ("--requests", &self.requests),
        ]
        .into_iter()
        .find_map(|(name, v)| v.as_ref().map(|_| name))?;
        Some(format!(
            "{flag} belongs to quick runs (gauntlet load URL {flag} ...); a scenario file sets \
             each scenario's executor (its duration, rate or iterations) in the file: edit {} \
             or set a variable it uses with --var",
            self.scenario.display()
        ))
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ProgressArg {
    /// A live bar on a terminal, a line every 5 s otherwise.
    Auto,
    /// A line every 5 s.
    Lines,
    /// Nothing until the end.
    Off,
}

#[derive(Debug, Args)]
struct OutputArgs {
    /// Write the report as JSON (schema: loadgen/REPORT.md).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Write a self-contained HTML report with charts.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Export the generator's spans (a sample, and every failure) and run markers to this
    /// OTLP/HTTP endpoint, e.g. http://127.0.0.1:4318.
    #[arg(long, value_name = "URL")]
    otlp: Option<String>,
    /// Share of successful requests exported as spans with --otlp.
    #[arg(long, value_name = "RATIO", default_value_t = 0.01)]
    otlp_sample: f64,
    /// Allow targets that are not this machine (loopback only by default).
    #[arg(long)]
    allow_remote: bool,
    #[arg(long, value_enum, default_value_t = ProgressArg::Auto)]
    progress: ProgressArg,
}

pub async fn run(args: LoadArgs) -> anyhow::Result<ExitCode> {
    let (plan, output) = match args.command {
        Some(LoadCommand::Run(r)) => {
            if let Some(said) = r.misplaced() {
                anyhow::bail!(said);
            }
            let vars = r
                .vars
                .iter()
                .map(|kv| {
                    kv.split_once('=')
                        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
                        .with_context(|| format!("--var {kv:?}: write NAME=VALUE"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            (Plan::from_file(&r.scenario, &vars)?, r.output)
        }
        None => {
            if args.duration.is_none() && args.requests.is_none() && args.url.is_some() {
                eprintln!(
                    "no -d or -n given: running for {} (the default)",
                    humantime::format_duration(QUICK_DURATION)
                );
            }
            quick_plan(args)?
        }
    };
    let opts = Options {
        allow_remote: output.allow_remote,
        progress: match output.progress {
            ProgressArg::Auto => ProgressMode::Auto,
            ProgressArg::Lines => ProgressMode::Lines,
            ProgressArg::Off => ProgressMode::Off,
        },
        otlp: output.otlp.clone(),
        otlp_sample: output.otlp_sample,
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let ctrl_c = tokio::spawn(async move {
        super::stop_signal().await;
        eprintln!("stopping: finishing the requests in flight...");
        let _ = stop.send(true);
    });
    let result = gauntlet_loadgen::run(plan, opts, stopped).await;
    ctrl_c.abort();
    let result = result?;
    let report = Report::of(&result);
    print!("{}", report.table());
    warn_if_mostly_failed(&result);
    if let Some(path) = &output.out {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("cannot write --out {}", path.display()))?;
    }
    if let Some(path) = &output.html {
        std::fs::write(path, gauntlet_loadgen::html::render(&report, &result.all))
            .with_context(|| format!("cannot write --html {}", path.display()))?;
    }
    if let (Some(url), Some(trace)) = (&output.otlp, &result.marker_trace) {
        println!(
            "run markers: trace {trace} (correlation ID {}) sent to {url}",
            result.run_id
        );
    }
    Ok(if result.breached() {
        ExitCode::from(THRESHOLDS_BREACHED)
    } else if result.interrupted {
        ExitCode::from(INTERRUPTED)
    } else {
        ExitCode::SUCCESS
    })
}

/// `gauntlet load URL ...`: the flags as a plan, and the output flags.
fn quick_plan(args: LoadArgs) -> anyhow::Result<(Plan, OutputArgs)> {
    let url = args.url.context(
        "give a URL to load (gauntlet load http://127.0.0.1:8080/path) or a scenario (gauntlet load run FILE.toml)",
    )?;
    let method = http_method(&args.method)?;
    let headers = args
        .headers
        .iter()
        .map(|h| {
            h.split_once(':')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .with_context(|| format!("-H {h:?}: write 'Name: value'"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let body = match (args.body, args.body_file) {
        (Some(b), _) => Some(b),
        (None, Some(f)) => Some(
            std::fs::read_to_string(&f)
                .with_context(|| format!("cannot read --body-file {}", f.display()))?,
        ),
        (None, None) => None,
    };
    let plan = Plan::quick(Quick {
        url,
        method,
        headers,
        body,
        connections: args.connections,
        rate: args.rate,
        duration: args.duration.unwrap_or(QUICK_DURATION),
        requests: args.requests,
        timeout: args.timeout,
        http2: args.http2,
        thresholds: args.thresholds,
    })?;
    Ok((plan, args.output))
}

/// How long a quick run lasts without -d or -n.
const QUICK_DURATION: Duration = Duration::from_secs(10);

/// Without thresholds a run exits 0 whatever the answers were; when most requests failed,
/// say so rather than let a wall of 429s or 5xx pass unnoticed.
fn warn_if_mostly_failed(result: &gauntlet_loadgen::engine::RunResult) {
    let all = &result.all;
    if result.verdicts.is_empty() && all.requests > 0 && all.failures * 2 > all.requests {
        eprintln!(
            "warning: {} of {} requests failed ({:.0}%); add --threshold 'error_rate < 0.01' to \
             fail the run on it",
            all.failures,
            all.requests,
            100.0 * all.failures as f64 / all.requests as f64
        );
    }
}

fn http_method(m: &str) -> anyhow::Result<gauntlet_loadgen::scenario::HttpMethod> {
    gauntlet_loadgen::scenario::HttpMethod::from_bytes(m.to_ascii_uppercase().as_bytes())
        .map_err(|_| anyhow::anyhow!("-m {m:?} is not an HTTP method"))
}
