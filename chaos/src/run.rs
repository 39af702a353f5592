//! Runs an experiment against a demo: the steady state before (the method runs only if it
//! holds), the method (background activities joined at its end), the steady state after,
//! then the rollbacks, always, also after Ctrl-C. `chaos.start` and `chaos.stop` markers
//! (spans of service `gauntlet-chaos`) frame the fault window in the collector.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gauntlet_demo_system::topology::InstanceId;
use gauntlet_loadgen::ProgressMode;
use gauntlet_loadgen::otlp::Exporter;
use gauntlet_loadgen::scenario::{Plan, ScenarioFile};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::activity::{self, Activity, HttpProbe, Kind, LoadProbe, TracesProbe, Window};
use crate::report::{Outcome, Phase, Report, SCHEMA, Status, line};
use crate::target::Demo;
use gauntlet_query_api::SpanKind;
use gauntlet_query_api::jaeger::Trace;
use gauntlet_query_api::markers;

use crate::Experiment;

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Print each activity's line as it ends (the terminal report, live).
    pub live: bool,
}

/// A probe's answer: whether the tolerance was met, and what was seen.
type Looked = Result<(bool, String), String>;

struct Ctx {
    demo: Demo,
    dir: std::path::PathBuf,
    run_id: String,
    started: Instant,
    started_at: SystemTime,
    method_started: Mutex<Option<SystemTime>>,
    stop: watch::Receiver<bool>,
    live: bool,
    log: Mutex<Vec<Outcome>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn micros(t: SystemTime) -> i64 {
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
        log: Mutex::new(Vec::new()),
    });
    if ctx.live {
        println!("{} (validates {})", exp.title, exp.validates.name());
    }
    let attrs = |status: Option<Status>| {
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
    };

    let interrupted = stopped(stop.clone());
    let main = async {
        let held = steady_state(&ctx, exp, Phase::Before).await;
        if !held {
            return;
        }
        let now = SystemTime::now();
        *lock(&ctx.method_started) = Some(now);
        if let Some((m, _)) = &markers {
            m.marker(markers::CHAOS_START, now, now, attrs(None), false)
                .await;
        }
        if !method(&ctx, exp).await {
            return;
        }
        steady_state(&ctx, exp, Phase::After).await;
    };
    let was_interrupted = tokio::select! {
        _ = main => false,
        _ = interrupted => true,
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
    let status = if was_interrupted {
        Status::Interrupted
    } else if activities.iter().any(|o| !o.probe && o.error.is_some()) {
        Status::Aborted
    } else if activities.iter().any(|o| o.probe && !o.ok) {
        Status::Deviated
    } else {
        Status::Completed
    };
    let mut marker_trace = None;
    if let Some((m, task)) = markers {
        let start = lock(&ctx.method_started).unwrap_or(ctx.started_at);
        let now = SystemTime::now();
        // The stop, and one span over the whole fault window for views that draw ranges.
        for (name, from) in [
            (markers::CHAOS_STOP, now),
            (markers::CHAOS_FAULT_WINDOW, start),
        ] {
            m.marker(
                name,
                from,
                now,
                attrs(Some(status)),
                status != Status::Completed,
            )
            .await;
        }
        marker_trace = Some(m.run_trace_hex());
        drop(m);
        let _ = task.await;
    }
    let report = Report {
        schema: SCHEMA.into(),
        title: exp.title.clone(),
        validates: exp.validates,
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
            status.says(),
            status.exit_code(),
            report.elapsed_s
        );
    }
    report
}

/// Resolves when `stop` turns true (never, if its sender is gone without saying so).
async fn stopped(mut stop: watch::Receiver<bool>) {
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

/// Runs one activity (with `within` retries and `pause_after`) and says how it went.
async fn perform(ctx: &Ctx, phase: Phase, a: &Activity) -> Outcome {
    let t = Instant::now();
    let at_s = ctx.started.elapsed().as_secs_f64();
    let probe = a.kind.is_probe();
    let result: Looked = if probe {
        match a.within {
            None => look(ctx, &a.kind).await,
            Some(within) => {
                let deadline = t + within;
                loop {
                    let r = look(ctx, &a.kind).await;
                    if matches!(r, Ok((true, _))) || Instant::now() >= deadline {
                        break r.map(|(ok, d)| {
                            if ok {
                                (ok, format!("{d} (after {:.1}s)", t.elapsed().as_secs_f64()))
                            } else {
                                (ok, format!("{d} (still, after {}s)", within.as_secs()))
                            }
                        });
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        }
    } else {
        act(ctx, &a.kind).await.map(|d| (true, d))
    };
    if let Some(p) = a.pause_after {
        tokio::time::sleep(p).await;
    }
    let (ok, detail, error) = match result {
        Ok((ok, detail)) => (ok, detail, None),
        Err(e) => (false, String::new(), Some(e)),
    };
    Outcome {
        phase,
        name: a.name.clone(),
        kind: a.kind.label().to_string(),
        probe,
        background: a.background,
        ok,
        error,
        detail,
        at_s,
        took_s: t.elapsed().as_secs_f64(),
    }
}

fn instance(name: &str) -> Result<InstanceId, String> {
    activity::instance(name)
}

/// Carries out an action; what was done, in words.
async fn act(ctx: &Ctx, kind: &Kind) -> Result<String, String> {
    let demo = &ctx.demo;
    let s = |e: crate::target::TargetError| e.to_string();
    let proxies = |edge: &str, i: &Option<String>| -> Result<Vec<String>, String> {
        let id = i.as_deref().map(instance).transpose()?;
        demo.proxies(edge, id).map_err(s)
    };
    match kind {
        Kind::AddToxic {
            edge,
            instance: i,
            toxic,
        } => {
            let names = proxies(edge, i)?;
            for p in &names {
                demo.add_toxic(p, toxic).await.map_err(s)?;
            }
            let t = toxic.clone().into_toxic().map_err(|e| e.error)?;
            Ok(format!(
                "{} toxic {:?} ({} {}) on {}",
                t.kind,
                t.name,
                t.stream.as_str(),
                serde_json::to_string(&t.attributes).unwrap_or_default(),
                names.join(", ")
            ))
        }
        Kind::RemoveToxic {
            edge,
            instance: i,
            toxic,
        } => {
            let mut removed = Vec::new();
            for p in proxies(edge, i)? {
                if demo.remove_toxic(&p, toxic).await.map_err(s)? {
                    removed.push(p);
                }
            }
            Ok(if removed.is_empty() {
                format!("{toxic:?} was on no proxy of {edge}")
            } else {
                format!("removed {toxic:?} from {}", removed.join(", "))
            })
        }
        Kind::DisableProxy { edge, instance: i } | Kind::EnableProxy { edge, instance: i } => {
            let enabled = matches!(kind, Kind::EnableProxy { .. });
            let names = proxies(edge, i)?;
            for p in &names {
                demo.set_enabled(p, enabled).await.map_err(s)?;
            }
            Ok(format!(
                "{} {}",
                if enabled { "enabled" } else { "disabled" },
                names.join(", ")
            ))
        }
        Kind::Kill { instance: i }
        | Kind::Restart { instance: i }
        | Kind::Start { instance: i }
        | Kind::Pause { instance: i }
        | Kind::Resume { instance: i } => {
            let id = instance(i)?;
            let done = demo.supervise(id, kind.label()).await.map_err(s)?;
            Ok(format!("{}: {}", done.id, done.done))
        }
        Kind::Sleep { duration } => {
            tokio::select! {
                _ = tokio::time::sleep(*duration) => {}
                _ = stopped(ctx.stop.clone()) => {}
            }
            Ok(format!("waited {}", humantime::format_duration(*duration)))
        }
        probe => Err(format!("{} is a probe, not an action", probe.label())),
    }
}

/// Looks once; whether the tolerance was met, and what was seen.
async fn look(ctx: &Ctx, kind: &Kind) -> Looked {
    let s = |e: crate::target::TargetError| e.to_string();
    let demo = &ctx.demo;
    match kind {
        Kind::Http(h) => http(ctx, h).await,
        Kind::Load(l) => load(ctx, l).await,
        Kind::Breaker {
            service,
            upstream,
            state,
        } => {
            let svc = activity::service(service)?;
            let mut seen = Vec::new();
            for url in demo.urls_of(svc) {
                let report = demo.resilience(&url).await.map_err(s)?;
                let snap = report.upstream(upstream).ok_or_else(|| {
                    format!(
                        "{service} at {url} does not call {upstream} (see its /admin/resilience)"
                    )
                })?;
                seen.push(snap.circuit_breaker.clone());
            }
            let ok = !seen.is_empty() && seen.iter().all(|x| x == state.name());
            Ok((
                ok,
                format!(
                    "{service} → {upstream}: {} (want {})",
                    seen.join(", "),
                    state.name()
                ),
            ))
        }
        Kind::Calls {
            service,
            instance: i,
            over,
            min,
            max,
        } => {
            let svc = activity::service(service)?;
            let id = instance(i)?;
            let target = demo.url_of(id).map_err(s)?;
            let upstream = id.service.name();
            let count = || async {
                let mut n = 0;
                for url in demo.urls_of(svc) {
                    let report = demo.resilience(&url).await.map_err(s)?;
                    n += report
                        .upstream(upstream)
                        .and_then(|u| u.calls_per_instance.get(&target).copied())
                        .unwrap_or(0);
                }
                Ok::<u64, String>(n)
            };
            let before = count().await?;
            tokio::time::sleep(*over).await;
            let calls = count().await? - before;
            let ok = min.is_none_or(|m| calls >= m) && max.is_none_or(|m| calls <= m);
            Ok((
                ok,
                format!(
                    "{service} called {i} {calls} times in {}{}",
                    humantime::format_duration(*over),
                    bounds(*min, *max)
                ),
            ))
        }
        Kind::Registry {
            instance: i,
            listed,
        } => {
            let id = instance(i)?;
            let url = demo.url_of(id).map_err(s)?;
            let healthy = demo.healthy(id.service).await.map_err(s)?;
            let bare = |a: &str| {
                a.trim_start_matches("http://")
                    .trim_end_matches('/')
                    .to_string()
            };
            let is_listed = healthy.iter().any(|v| bare(&v.address) == bare(&url));
            Ok((
                is_listed == *listed,
                format!(
                    "{i} {} listed ({} healthy {} instance{})",
                    if is_listed { "is" } else { "is not" },
                    healthy.len(),
                    id.service,
                    if healthy.len() == 1 { "" } else { "s" }
                ),
            ))
        }
        Kind::Traces(t) => traces(ctx, t).await,
        Kind::ErrorRate {
            service,
            window,
            max,
        } => {
            let (start, end) = window_us(ctx, *window);
            let found = demo
                .traces(service, None, &BTreeMap::new(), start, end)
                .await
                .map_err(s)?;
            let mut seen: HashMap<&str, bool> = HashMap::new();
            for t in &found {
                for sp in t.spans_of(service) {
                    if sp.kind() == Some(SpanKind::Server) {
                        seen.insert(sp.span_id.as_str(), sp.is_error());
                    }
                }
            }
            if seen.is_empty() {
                return Ok((false, format!("no server spans of {service} in the window")));
            }
            let errors = seen.values().filter(|e| **e).count();
            let rate = errors as f64 / seen.len() as f64;
            Ok((
                rate <= *max,
                format!(
                    "{:.2}% of {} server spans of {service} failed (max {:.2}%)",
                    rate * 100.0,
                    seen.len(),
                    max * 100.0
                ),
            ))
        }
        Kind::Delivered { customer } => {
            let customer = customer.replace("{{run}}", &ctx.run_id);
            let orders = demo.orders_of(&customer).await.map_err(s)?;
            let notes = demo.notifications_of(&customer).await.map_err(s)?;
            let finished: Vec<_> = orders.iter().filter(|o| o.status.is_finished()).collect();
            if finished.is_empty() {
                return Ok((
                    false,
                    format!("{customer} has no finished orders: nothing to check"),
                ));
            }
            let mut per_order: HashMap<&str, usize> = HashMap::new();
            for n in &notes {
                *per_order.entry(n.order_id.as_str()).or_default() += 1;
            }
            let missing: Vec<&str> = finished
                .iter()
                .filter(|o| !per_order.contains_key(o.id.as_str()))
                .map(|o| o.id.as_str())
                .collect();
            let twice: Vec<&str> = per_order
                .iter()
                .filter(|(_, n)| **n > 1)
                .map(|(id, _)| *id)
                .collect();
            let example = |ids: &[&str]| {
                ids.first()
                    .map(|id| format!(" (e.g. {id})"))
                    .unwrap_or_default()
            };
            Ok((
                missing.is_empty() && twice.is_empty(),
                format!(
                    "{} finished orders of {customer}: {} never notified{}, {} notified more than once{}",
                    finished.len(),
                    missing.len(),
                    example(&missing),
                    twice.len(),
                    example(&twice)
                ),
            ))
        }
        action => Err(format!("{} is an action, not a probe", action.label())),
    }
}

fn bounds(min: Option<u64>, max: Option<u64>) -> String {
    match (min, max) {
        (Some(a), Some(b)) => format!(" (want {a}-{b})"),
        (Some(a), None) => format!(" (want at least {a})"),
        (None, Some(b)) => format!(" (want at most {b})"),
        (None, None) => String::new(),
    }
}

/// The window a collector probe reads, in microseconds; the end is a little ahead so spans
/// ending now are in.
fn window_us(ctx: &Ctx, w: Window) -> (i64, i64) {
    let now = SystemTime::now();
    let start = match w {
        Window::Experiment => ctx.started_at,
        Window::Method => lock(&ctx.method_started).unwrap_or(ctx.started_at),
        Window::Last(d) => now - d,
    };
    (micros(start), micros(now) + 1_000_000)
}

async fn http(ctx: &Ctx, h: &HttpProbe) -> Looked {
    let base = ctx.demo.target_url(&h.target).map_err(|e| e.to_string())?;
    let url = format!("{}{}", base.trim_end_matches('/'), h.path);
    let method = reqwest::Method::from_bytes(h.method.as_bytes()).map_err(|e| e.to_string())?;
    let mut req = ctx.demo.http().request(method, &url);
    for (k, v) in &h.headers {
        req = req.header(k, v);
    }
    if let Some(b) = &h.body {
        req = req.body(b.clone());
    }
    let t = Instant::now();
    let r = match req.send().await {
        Ok(r) => r,
        Err(e) => return Ok((false, format!("{} {url}: no answer: {e}", h.method))),
    };
    let status = r.status().as_u16();
    let body = r.text().await.unwrap_or_default();
    let took = t.elapsed();
    let mut why = Vec::new();
    match h.status {
        Some(want) if want != status => why.push(format!("want status {want}")),
        None if !(200..300).contains(&status) => why.push("want a 2xx status".into()),
        _ => {}
    }
    if let Some(needle) = &h.body_contains
        && !body.contains(needle.as_str())
    {
        why.push(format!("the body lacks {needle:?}"));
    }
    if let Some(limit) = h.latency_under
        && took >= limit
    {
        why.push(format!("want under {}", humantime::format_duration(limit)));
    }
    Ok((
        why.is_empty(),
        format!(
            "{} {} → {status} in {:.0} ms{}",
            h.method,
            h.path,
            took.as_secs_f64() * 1000.0,
            if why.is_empty() {
                String::new()
            } else {
                format!(" ({})", why.join("; "))
            }
        ),
    ))
}

async fn load(ctx: &Ctx, l: &LoadProbe) -> Looked {
    let path = ctx.dir.join(&l.scenario);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut file: ScenarioFile =
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    for s in &mut file.scenarios {
        if let Some(d) = &l.duration
            && s.stages.is_empty()
        {
            s.duration = Some(d.clone());
            s.iterations = None;
        }
        if let Some(r) = l.rate
            && s.rate.is_some()
        {
            s.rate = Some(r);
        }
    }
    if !l.thresholds.is_empty() {
        file.thresholds = l.thresholds.clone();
    }
    let mut vars = vec![
        ("gateway".to_string(), ctx.demo.handle.gateway.clone()),
        ("run".to_string(), ctx.run_id.clone()),
    ];
    vars.extend(l.vars.iter().map(|(k, v)| (k.clone(), v.clone())));
    let plan = Plan::compile(file, &vars).map_err(|e| e.to_string())?;
    let opts = gauntlet_loadgen::Options {
        allow_remote: false,
        progress: ProgressMode::Off,
        otlp: Some(ctx.demo.handle.collector.otlp_http.clone()),
        otlp_sample: 0.0,
    };
    let r = gauntlet_loadgen::run(plan, opts, ctx.stop.clone())
        .await
        .map_err(|e| e.to_string())?;
    let all = &r.all;
    let checks = all.checks_passed + all.checks_failed;
    let mut detail = format!(
        "{} requests, {} failed, checks {:.2}%, p50 {:.0} ms, p99 {:.0} ms",
        all.requests,
        all.failures,
        if checks == 0 {
            100.0
        } else {
            all.checks_passed as f64 * 100.0 / checks as f64
        },
        all.latency.value_at_quantile(0.5) as f64 / 1000.0,
        all.latency.value_at_quantile(0.99) as f64 / 1000.0,
    );
    for v in r.verdicts.iter().filter(|v| !v.passed) {
        detail.push_str(&format!(
            "; breached {}: {} (measured {:.3})",
            v.scope, v.expr, v.value
        ));
    }
    if r.interrupted {
        return Ok((false, format!("{detail} (interrupted)")));
    }
    Ok((!r.breached(), detail))
}

async fn traces(ctx: &Ctx, t: &TracesProbe) -> Looked {
    let (start, end) = window_us(ctx, t.window);
    let found = ctx
        .demo
        .traces(&t.service, t.operation.as_deref(), &t.tags, start, end)
        .await
        .map_err(|e| e.to_string())?;
    let matching = found
        .iter()
        .filter(|tr: &&Trace| match &t.event {
            None => true,
            Some(ev) => tr
                .spans_of(&t.service)
                .any(|sp| sp.has_event(ev, &t.event_attributes)),
        })
        .count();
    let ok = t.min.is_none_or(|m| matching >= m) && t.max.is_none_or(|m| matching <= m);
    let what = match &t.event {
        Some(ev) if t.event_attributes.is_empty() => format!(" with event {ev}"),
        Some(ev) => format!(
            " with event {ev} {}",
            t.event_attributes
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        None => String::new(),
    };
    Ok((
        ok,
        format!(
            "{matching} traces of {}{what} (of {} in the window){}",
            t.service,
            found.len(),
            bounds(t.min.map(|m| m as u64), t.max.map(|m| m as u64))
        ),
    ))
}
