//! Runs an experiment against a demo: the steady state before (the method runs only if it
//! holds), the method (background activities joined at its end), the steady state after,
//! then the rollbacks, always, also after Ctrl-C. `chaos.start` and `chaos.stop` markers
//! (spans of service `gauntlet-chaos`) frame the fault window in the collector.
//!
//! Against a demo that runs without the pattern the experiment validates (its handle lists
//! it as disabled), the run is the pattern's *control*: every phase runs whatever the
//! probes say, so every evidence probe is measured, and the report says whether one failed.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gauntlet_loadgen::otlp::Exporter;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::action::act;
use crate::activity::Activity;
use crate::error::ActivityError;
use crate::probe::look;
use crate::report::{Mode, Outcome, Phase, Report, SCHEMA, Status, line};
use crate::target::Demo;
use gauntlet_query_api::markers;

use crate::Experiment;

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Print each activity's line as it ends (the terminal report, live).
    pub live: bool,
}

/// What every activity of one run shares.
pub(crate) struct Ctx {
    pub(crate) demo: Demo,
    /// The experiment file's directory: scenario paths are relative to it.
    pub(crate) dir: std::path::PathBuf,
    pub(crate) run_id: String,
    started: Instant,
    pub(crate) started_at: SystemTime,
    /// When the method began: collector probes' default window starts there.
    pub(crate) method_started: Mutex<Option<SystemTime>>,
    pub(crate) stop: watch::Receiver<bool>,
    live: bool,
    mode: Mode,
    log: Mutex<Vec<Outcome>>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn micros(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Runs `exp` against `demo` until it ends or `stop` turns true; the rollbacks run either
/// way. `experiment` is the file's name, for the report.
pub async fn run(
    exp: &Experiment,
    experiment: &str,
    demo: Demo,
    opts: RunOptions,
    stop: watch::Receiver<bool>,
) -> Report {
    let run_id = format!("chaos-{:08x}", fastrand::u32(..));
    let mode = if demo.handle.disabled.contains(&exp.validates) {
        Mode::Control
    } else {
        Mode::Experiment
    };
    let markers = demo.handle.collector.api.as_ref().map(|_| {
        Exporter::start(
            &demo.handle.collector.otlp_http,
            markers::CHAOS_SERVICE,
            &run_id,
            0.0,
        )
    });
    let ctx = Arc::new(Ctx {
        demo,
        dir: exp.dir.clone(),
        run_id: run_id.clone(),
        started: Instant::now(),
        started_at: SystemTime::now(),
        method_started: Mutex::new(None),
        stop: stop.clone(),
        live: opts.live,
        mode,
        log: Mutex::new(Vec::new()),
    });
    announce(&ctx, exp);
    let was_interrupted = tokio::select! {
        _ = phases(&ctx, exp, markers.as_ref().map(|(m, _)| m)) => false,
        _ = stopped(stop.clone()) => true,
    };
    if was_interrupted && ctx.live {
        println!("interrupted: running the rollbacks");
    }
    if !exp.rollbacks.is_empty() {
        print_phase(&ctx, Phase::Rollback);
    }
    for a in &exp.rollbacks {
        let o = perform(&ctx, Phase::Rollback, a).await;
        record(&ctx, o);
    }
    let activities = std::mem::take(&mut *lock(&ctx.log));
    let status = status_of(&activities, was_interrupted);
    let marker_trace = match markers {
        Some(m) => Some(close_markers(&ctx, exp, m, status).await),
        None => None,
    };
    let report = Report {
        schema: SCHEMA.into(),
        title: exp.title.clone(),
        validates: exp.validates,
        mode,
        experiment: experiment.to_string(),
        run_id,
        status,
        started_unix_ms: (micros(ctx.started_at) / 1000) as u64,
        elapsed_s: ctx.started.elapsed().as_secs_f64(),
        marker_trace,
        activities,
    };
    if ctx.live {
        println!(
            "result: {} (exit {}, {:.1}s)",
            report.says(),
            report.exit_code(),
            report.elapsed_s
        );
    }
    report
}

/// The run's first lines, when printing live.
fn announce(ctx: &Ctx, exp: &Experiment) {
    if !ctx.live {
        return;
    }
    println!("{} (validates {})", exp.title, exp.validates.name());
    if ctx.mode == Mode::Control {
        println!(
            "control run: this demo runs without {}; every phase runs, and it proves the pattern only if an evidence probe fails",
            exp.validates
        );
    }
}

/// Steady state before, the method (its start marked), steady state after; in an
/// experiment each stops the run when it fails, in a control only an action that could not
/// be carried out does.
async fn phases(ctx: &Arc<Ctx>, exp: &Experiment, markers: Option<&Exporter>) {
    let control = ctx.mode == Mode::Control;
    if !steady_state(ctx, exp, Phase::Before).await && !control {
        return;
    }
    let now = SystemTime::now();
    *lock(&ctx.method_started) = Some(now);
    if let Some(m) = markers {
        m.marker(
            markers::CHAOS_START,
            now,
            now,
            marker_attrs(exp, None),
            false,
        )
        .await;
    }
    if !method(ctx, exp).await {
        return;
    }
    steady_state(ctx, exp, Phase::After).await;
}

/// What the run's markers say about it.
fn marker_attrs(exp: &Experiment, status: Option<Status>) -> Vec<(String, String)> {
    let mut a = vec![
        ("gauntlet.experiment".to_string(), exp.title.clone()),
        (
            "gauntlet.validates".to_string(),
            exp.validates.name().to_string(),
        ),
    ];
    if let Some(s) = status {
        a.push((
            "gauntlet.status".to_string(),
            format!("{s:?}").to_lowercase(),
        ));
    }
    a
}

/// Interrupted, aborted (an action could not be carried out), deviated (a probe's
/// tolerance was not met) or completed.
fn status_of(activities: &[Outcome], interrupted: bool) -> Status {
    if interrupted {
        Status::Interrupted
    } else if activities.iter().any(|o| !o.probe && o.error.is_some()) {
        Status::Aborted
    } else if activities.iter().any(|o| o.probe && !o.ok) {
        Status::Deviated
    } else {
        Status::Completed
    }
}

/// Exports the stop marker and one span over the whole fault window (for views that draw
/// ranges), waits for the exporter to send them, and gives the markers' trace ID.
async fn close_markers(
    ctx: &Ctx,
    exp: &Experiment,
    (m, task): (Exporter, tokio::task::JoinHandle<()>),
    status: Status,
) -> String {
    let start = lock(&ctx.method_started).unwrap_or(ctx.started_at);
    let now = SystemTime::now();
    for (name, from) in [
        (markers::CHAOS_STOP, now),
        (markers::CHAOS_FAULT_WINDOW, start),
    ] {
        let attrs = marker_attrs(exp, Some(status));
        m.marker(name, from, now, attrs, status != Status::Completed)
            .await;
    }
    let trace = m.run_trace_hex();
    drop(m);
    let _ = task.await;
    trace
}

/// Resolves when `stop` turns true (never, if its sender is gone without saying so).
pub(crate) async fn stopped(mut stop: watch::Receiver<bool>) {
    if stop.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn print_phase(ctx: &Ctx, phase: Phase) {
    if ctx.live {
        println!("{}:", phase.title());
    }
}

fn record(ctx: &Ctx, o: Outcome) {
    if ctx.live {
        println!("{}", line(&o));
    }
    lock(&ctx.log).push(o);
}

/// Every probe of the hypothesis, in order; whether all held.
async fn steady_state(ctx: &Arc<Ctx>, exp: &Experiment, phase: Phase) -> bool {
    print_phase(ctx, phase);
    if ctx.live {
        println!("  ({})", exp.steady_state.title);
    }
    let mut held = true;
    for p in &exp.steady_state.probes {
        let o = perform(ctx, phase, p).await;
        held &= o.ok;
        record(ctx, o);
    }
    held
}

/// The method's activities in order, background ones alongside; false if an action could
/// not be carried out (the rest of the method and the hypothesis after are skipped).
async fn method(ctx: &Arc<Ctx>, exp: &Experiment) -> bool {
    print_phase(ctx, Phase::Method);
    let mut background = JoinSet::new();
    let mut carried_out = true;
    for a in &exp.method {
        if a.background {
            let (ctx, a) = (ctx.clone(), a.clone());
            background.spawn(async move {
                let o = perform(&ctx, Phase::Method, &a).await;
                record(&ctx, o);
            });
            continue;
        }
        let o = perform(ctx, Phase::Method, a).await;
        let failed_action = !o.probe && o.error.is_some();
        record(ctx, o);
        if failed_action {
            carried_out = false;
            break;
        }
    }
    while background.join_next().await.is_some() {}
    carried_out
}

/// Looks at a probe, again every 250 ms until it holds, its answer is settled or its
/// `within` has passed.
async fn wait_for(ctx: &Ctx, a: &Activity) -> Result<(bool, String), ActivityError> {
    let t = Instant::now();
    let Some(within) = a.within else {
        return look(ctx, &a.kind).await.map(|l| (l.ok, l.detail));
    };
    let deadline = t + within;
    loop {
        // An error (a service restarting) is looked past until the deadline.
        let seen = look(ctx, &a.kind).await;
        let late = Instant::now() >= deadline;
        match seen {
            Ok(l) if l.ok => {
                let took = t.elapsed().as_secs_f64();
                return Ok((true, format!("{} (after {took:.1}s)", l.detail)));
            }
            Ok(l) if l.settled => {
                return Ok((false, format!("{} (settled: it cannot change)", l.detail)));
            }
            Ok(l) if late => {
                return Ok((
                    false,
                    format!("{} (still, after {}s)", l.detail, within.as_secs()),
                ));
            }
            Err(e) if late => return Err(e),
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// Runs one activity (with `within` retries and `pause_after`) and says how it went.
async fn perform(ctx: &Ctx, phase: Phase, a: &Activity) -> Outcome {
    let t = Instant::now();
    let at_s = ctx.started.elapsed().as_secs_f64();
    let probe = a.kind.is_probe();
    let result = if probe {
        wait_for(ctx, a).await
    } else {
        act(ctx, &a.kind).await.map(|d| (true, d))
    };
    if let Some(p) = a.pause_after {
        tokio::time::sleep(p).await;
    }
    let (ok, detail, error) = match result {
        Ok((ok, detail)) => (ok, detail, None),
        Err(e) => (false, String::new(), Some(e.to_string())),
    };
    Outcome {
        phase,
        name: a.name.clone(),
        kind: a.kind.label().to_string(),
        probe,
        evidence: a.evidence,
        background: a.background,
        ok,
        error,
        detail,
        at_s,
        took_s: t.elapsed().as_secs_f64(),
    }
}
