//! `gauntlet canary`: an automated canary release against a registry and a collector (the
//! demo's, from its `demo.json`, or named): the candidate's share steps up while the judge
//! passes each step, back to 0 when one fails.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use gauntlet_chaos::canary::{
    DEFAULT_STEPS, Endpoints, Outcome, RolloutPlan, StepReport, roll_out,
};
use gauntlet_chaos::judge::JudgeConfig;
use gauntlet_demo_system::handle::DemoHandle;
use gauntlet_demo_system::registry::RegistryClient;
use gauntlet_query_api::client::QueryClient;

#[derive(Debug, Args)]
pub struct CanaryArgs {
    /// The service whose versions share its calls (as registered: `inventory`).
    #[arg(long)]
    service: String,
    /// The version running now (its instances' `service.version`).
    #[arg(long, value_name = "VERSION")]
    baseline: String,
    /// The version being released.
    #[arg(long, value_name = "VERSION")]
    candidate: String,
    /// The candidate's share at each step, percent, not falling, ending at 100.
    #[arg(long, value_delimiter = ',', default_values_t = DEFAULT_STEPS)]
    steps: Vec<u32>,
    /// How long each step is watched before it is judged.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    window: Duration,
    /// Roll back a step still short of --min-requests after this long.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    max_window: Duration,
    /// The candidate's requests a step needs before it is judged (100 catch a candidate
    /// failing 20 % of requests in every window; 50 miss one window in sixteen).
    #[arg(long, default_value_t = 100)]
    min_requests: usize,
    /// Step up without asking the judge (to watch what a bad release does unchecked).
    #[arg(long)]
    no_judge: bool,
    /// Significance level of each test (the A/A false-alarm rate per step and metric).
    #[arg(long, default_value_t = JudgeConfig::default().alpha)]
    alpha: f64,
    /// How much slower than the baseline the candidate may be (0.25: 25 %).
    #[arg(long, default_value_t = JudgeConfig::default().latency_tolerance)]
    latency_tolerance: f64,
    /// How many more of its requests may fail, in absolute terms (0.02: two points).
    #[arg(long, default_value_t = JudgeConfig::default().error_tolerance)]
    error_tolerance: f64,
    /// The demo whose registry and collector to use (`gauntlet demo` prints the path).
    #[arg(
        long,
        value_name = "FILE",
        env = "GAUNTLET_DEMO",
        default_value = "gauntlet-demo/demo.json"
    )]
    demo: PathBuf,
    /// The registry's URL, instead of the demo's.
    #[arg(long, value_name = "URL")]
    registry: Option<String>,
    /// The collector's query API, instead of the demo's.
    #[arg(long, value_name = "URL")]
    collector: Option<String>,
    /// Also write the rollout (every step's judgement) as JSON.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

impl CanaryArgs {
    fn plan(&self) -> anyhow::Result<RolloutPlan> {
        let judge = JudgeConfig {
            alpha: self.alpha,
            latency_tolerance: self.latency_tolerance,
            error_tolerance: self.error_tolerance,
            ..JudgeConfig::default()
        };
        if !(0.0..0.5).contains(&judge.alpha) || judge.alpha == 0.0 {
            anyhow::bail!(
                "--alpha {}: a significance level, above 0 and below 0.5",
                judge.alpha
            );
        }
        if judge.latency_tolerance < 0.0 || !(0.0..1.0).contains(&judge.error_tolerance) {
            anyhow::bail!("--latency-tolerance is at least 0; --error-tolerance between 0 and 1");
        }
        let plan = RolloutPlan {
            service: self.service.clone(),
            baseline: self.baseline.clone(),
            candidate: self.candidate.clone(),
            steps: self.steps.clone(),
            window: self.window,
            max_window: self.max_window,
            min_requests: self.min_requests,
            judged: !self.no_judge,
            judge,
        };
        plan.check().map_err(anyhow::Error::msg)?;
        Ok(plan)
    }

    fn endpoints(&self) -> anyhow::Result<Endpoints> {
        let handle = || {
            DemoHandle::load(&self.demo).with_context(|| {
                format!(
                    "no --registry/--collector given, and the demo's handle {} cannot be read (start `gauntlet demo`, or name both URLs)",
                    self.demo.display()
                )
            })
        };
        let registry = match &self.registry {
            Some(url) => url.clone(),
            None => handle()?
                .services
                .get("registry")
                .and_then(|urls| urls.first().cloned())
                .context("the demo's handle lists no registry")?,
        };
        let collector = match &self.collector {
            Some(url) => url.clone(),
            None => handle()?.collector.api.context(
                "the demo sends its telemetry to a collector it did not start: name it with --collector",
            )?,
        };
        Ok(Endpoints {
            registry: RegistryClient::new(&registry),
            collector: QueryClient::new(&collector, None, Duration::from_secs(10)),
        })
    }
}

fn print_step(step: &StepReport) {
    let watched = step.watched.as_secs_f64();
    match &step.judgement {
        Some(j) => println!("  {:>3} %  {watched:>5.1}s  {j}", step.weight),
        None if step.weight >= 100 => println!("  {:>3} %  promoted", step.weight),
        None => println!("  {:>3} %  {watched:>5.1}s  not judged", step.weight),
    }
}

/// Exit 0 when promoted, 1 when rolled back, 130 when stopped.
pub async fn run(args: CanaryArgs) -> anyhow::Result<ExitCode> {
    let plan = args.plan()?;
    let to = args.endpoints()?;
    println!(
        "releasing {} {} against {} in steps of {:?} %, each watched {} (judge {}):",
        plan.service,
        plan.candidate,
        plan.baseline,
        plan.steps,
        humantime::format_duration(plan.window),
        if plan.judged { "on" } else { "off" }
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let ctrl_c = tokio::spawn(async move {
        super::stop_signal().await;
        let _ = stop.send(true);
    });
    let rollout = roll_out(&plan, &to, &print_step, stopped).await;
    ctrl_c.abort();
    let rollout = rollout?;
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&rollout)?)
            .with_context(|| format!("cannot write --json {}", path.display()))?;
    }
    Ok(match &rollout.outcome {
        Outcome::Promoted => {
            println!(
                "promoted: {} {} takes every call",
                plan.service, plan.candidate
            );
            ExitCode::SUCCESS
        }
        Outcome::RolledBack { at, reason } => {
            println!(
                "rolled back at {at} %: {reason}; {} {} takes every call again",
                plan.service, plan.baseline
            );
            ExitCode::from(1)
        }
        Outcome::Interrupted { at } => {
            println!("interrupted at {at} %: the weights stay as that step set them");
            ExitCode::from(130)
        }
    })
}
