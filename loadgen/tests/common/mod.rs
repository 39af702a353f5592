//! What the load generator's tests share: a quick plan against a URL, and a quiet run.
#![allow(dead_code)]

use std::time::Duration;

use gauntlet_loadgen::{Options, Plan, ProgressMode, Quick, RunResult};

/// `gauntlet load URL -c CONNECTIONS [-r RATE] -d DURATION`.
pub fn quick(url: &str, connections: u32, rate: Option<f64>, duration: Duration) -> Plan {
    Plan::quick(Quick {
        url: url.to_string(),
        method: gauntlet_loadgen::scenario::HttpMethod::GET,
        headers: vec![],
        body: None,
        connections,
        rate,
        duration,
        requests: None,
        timeout: Duration::from_secs(5),
        http2: false,
        thresholds: vec![],
    })
    .expect("plan")
}

/// Runs `plan` to its end, without progress output or telemetry.
pub async fn run(plan: Plan) -> RunResult {
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    let opts = Options {
        allow_remote: false,
        progress: ProgressMode::Off,
        otlp: None,
        otlp_sample: 0.0,
    };
    gauntlet_loadgen::run(plan, opts, stopped)
        .await
        .expect("run")
}
