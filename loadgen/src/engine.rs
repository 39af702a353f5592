//! Runs a [`Plan`]: virtual users (one connection each) per scenario, in the closed model
//! (each VU loops as fast as answers come) or the open model (iterations start on a
//! schedule, whatever the answers do). In the open model a VU takes the next ticket of a
//! shared counter and latency is measured from that ticket's intended time, wrk2-style, so
//! a stalled server shows as the queueing delay its users would see (no coordinated
//! omission); sends that went out late are counted.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use gauntlet_query_api::markers;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::check::capture;
use crate::http::{Answer, Connections, Outgoing, TargetError, resolve};
use crate::metrics::{ErrorKind, Interval, Outcome, Recorder, Stats};
use crate::otlp::{Exporter, RequestSpan, TraceIds};
use crate::progress::{Progress, ProgressMode, Snapshot};
use crate::scenario::{End, Executor, FixedUrl, Plan, Scenario, Step};
use crate::threshold::Verdict;

/// How late a timer may wake: tokio rounds a deadline up to its next millisecond tick and
/// parks in whole milliseconds, so a wake-up lands up to 2 ms after its time.
pub(crate) const TIMER_SLACK: Duration = Duration::from_millis(2);

const TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");
const CORRELATION: http::HeaderName = http::HeaderName::from_static("x-correlation-id");

/// How to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Send to hosts other than loopback.
    pub allow_remote: bool,
    pub progress: ProgressMode,
    /// OTLP/HTTP endpoint for the generator's own spans and run markers.
    pub otlp: Option<String>,
    /// Share of successful requests whose spans are exported (failed ones always are).
    pub otlp_sample: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("{0}")]
    Url(String),
}

/// One second of the run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Point {
    /// Seconds since the start (the second that ended then).
    pub t: u32,
    pub requests: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// What a run measured.
#[derive(Debug)]
pub struct RunResult {
    pub run_id: String,
    pub started: SystemTime,
    pub elapsed: Duration,
    pub names: Vec<String>,
    pub by_name: Vec<Stats>,
    pub scenarios: Vec<(String, Stats)>,
    pub all: Stats,
    pub timeline: Vec<Point>,
    pub verdicts: Vec<Verdict>,
    /// The intended rate of the open-model scenarios, summed.
    pub target_rps: Option<f64>,
    /// `open`, `closed` or `mixed`.
    pub model: &'static str,
    /// Stopped early (Ctrl-C).
    pub interrupted: bool,
    /// The trace holding the run's markers, when exported.
    pub marker_trace: Option<String>,
}

impl RunResult {
    pub fn breached(&self) -> bool {
        self.verdicts.iter().any(|v| !v.passed)
    }
}

/// What every VU shares.
struct Shared {
    plan: Plan,
    opts: Options,
    run_id: String,
    start: Instant,
    started: SystemTime,
    seq: AtomicU64,
    /// Per scenario: the next open-model ticket, or the iterations started (closed, counted).
    counters: Vec<AtomicU64>,
    addrs: Mutex<HashMap<String, SocketAddr>>,
    exporter: Option<Exporter>,
    stop: watch::Receiver<bool>,
}

impl Shared {
    fn system_time(&self, at: Instant) -> SystemTime {
        self.started + at.saturating_duration_since(self.start)
    }

    async fn addr_of(&self, authority: &str) -> Result<SocketAddr, TargetError> {
        if let Some(a) = self
            .addrs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(authority)
        {
            return Ok(*a);
        }
        let a = resolve(authority, self.opts.allow_remote).await?;
        self.addrs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(authority.to_string(), a);
        Ok(a)
    }

    fn stopped(&self) -> bool {
        *self.stop.borrow()
    }
}

/// The request's size on the wire, near enough: request line, headers, body.
fn wire_bytes(
    step: &Step,
    target: &FixedUrl,
    headers: &[(http::HeaderName, String)],
    body: &str,
) -> u64 {
    (step.method.as_str().len() + target.text.len() + 12 + body.len()) as u64
        + headers
            .iter()
            .map(|(k, v)| (k.as_str().len() + v.len() + 4) as u64)
            .sum::<u64>()
}

/// A step's URL (`None` when fixed), headers and body, rendered for one request.
type Rendered = (
    Option<String>,
    Vec<(http::HeaderName, String)>,
    Option<String>,
);

/// Runs `plan` until every scenario ends or `stop` turns true.
pub async fn run(
    plan: Plan,
    opts: Options,
    stop: watch::Receiver<bool>,
) -> Result<RunResult, RunError> {
    let run_id = uuid::Uuid::now_v7().simple().to_string();
    if !opts.allow_remote
        && let Some((scenario, source)) = plan.scenarios.iter().find_map(|s| {
            s.source
                .and_then(|src| src.ends().into_iter().find(|ip| !ip.is_loopback()))
                .map(|ip| (s.name.clone(), ip))
        })
    {
        return Err(TargetError::RemoteSource {
            scenario,
            from: source,
        }
        .into());
    }
    let addrs = resolve_hosts(&plan, opts.allow_remote).await?;
    let (exporter, export_task) = match &opts.otlp {
        Some(url) => {
            let (e, t) = Exporter::start(url, markers::LOADGEN_SERVICE, &run_id, opts.otlp_sample);
            (Some(e), Some(t))
        }
        None => (None, None),
    };
    let shared = Arc::new(Shared {
        counters: plan.scenarios.iter().map(|_| AtomicU64::new(0)).collect(),
        plan,
        opts,
        run_id: run_id.clone(),
        start: Instant::now(),
        started: SystemTime::now(),
        seq: AtomicU64::new(0),
        addrs: Mutex::new(addrs),
        exporter,
        stop,
    });
    start_marker(&shared).await;
    let (recorders, elapsed, timeline) = drive(&shared).await;
    let plan = &shared.plan;
    let tally = Tally::of(plan, &recorders);
    let verdicts = tally.verdicts(plan, elapsed.as_secs_f64());
    let interrupted = shared.stopped();
    let marker_trace = end_markers(&shared, &verdicts, &tally.all).await;
    let names = plan.names.clone();
    let started = shared.started;
    let (target_rps, model) = (target_rps(plan), model(plan));
    // Dropping the last handle closes the exporter's queue; it flushes, then ends.
    drop(shared);
    if let Some(t) = export_task {
        let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
    }
    Ok(RunResult {
        run_id,
        started,
        elapsed,
        names,
        by_name: tally.by_name,
        scenarios: tally.scenarios,
        all: tally.all,
        timeline,
        verdicts,
        target_rps,
        model,
        interrupted,
        marker_trace,
    })
}

/// Every host the plan can already name, resolved (and checked against `allow_remote`)
/// before the first request.
async fn resolve_hosts(
    plan: &Plan,
    allow_remote: bool,
) -> Result<HashMap<String, SocketAddr>, RunError> {
    let mut addrs = HashMap::new();
    for s in &plan.scenarios {
        for step in s
            .setup
            .iter()
            .chain(s.flows.iter().flat_map(|f| f.steps.iter()))
        {
            if let Ok(url) = step.url.render(0, |v| plan.vars.get(v).map(String::as_str)) {
                let uri: http::Uri = url
                    .parse()
                    .map_err(|e| RunError::Url(format!("{url:?}: {e}")))?;
                if let Some(a) = uri.authority() {
                    let addr = resolve(a.as_str(), allow_remote).await?;
                    addrs.insert(a.as_str().to_string(), addr);
                }
            }
        }
    }
    Ok(addrs)
}

/// The `load.start` marker, naming the scenarios.
async fn start_marker(shared: &Shared) {
    let Some(e) = &shared.exporter else {
        return;
    };
    let names: Vec<&str> = shared
        .plan
        .scenarios
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    let attrs = vec![("gauntlet.scenarios".to_string(), names.join(","))];
    e.marker(
        markers::LOAD_START,
        shared.started,
        shared.started,
        attrs,
        false,
    )
    .await;
}

/// Starts every virtual user and watches them to the end (or to the hard stop), one
/// timeline point and one progress update a second. Returns the users' recorders, the time
/// the run took and its timeline.
async fn drive(shared: &Arc<Shared>) -> (Vec<Arc<Mutex<Recorder>>>, Duration, Vec<Point>) {
    let mut recorders = Vec::new();
    let mut vus = tokio::task::JoinSet::new();
    for (si, scenario) in shared.plan.scenarios.iter().enumerate() {
        for vu in 0..scenario.executor.max_vus() {
            let rec = Arc::new(Mutex::new(Recorder::default()));
            recorders.push(rec.clone());
            vus.spawn(run_vu(shared.clone(), si, vu, rec));
        }
    }
    let progress = Progress::new(
        shared.opts.progress,
        shared.plan.duration(),
        shared.plan.request_budget(),
    );
    let mut timeline = Vec::new();
    let mut totals = Interval::default();
    let mut tick = tokio::time::interval_at(
        shared.start + Duration::from_secs(1),
        Duration::from_secs(1),
    );
    // The run is bounded: by time (its longest scenario, plus the last requests' timeout)
    // or by count.
    let hard_stop = shared
        .plan
        .duration()
        .map(|d| shared.start + d + shared.plan.timeout + Duration::from_secs(5));
    loop {
        tokio::select! {
            joined = vus.join_next() => {
                if joined.is_none() {
                    break;
                }
            }
            _ = tick.tick() => {
                let second = collect_interval(&recorders);
                totals.merge(&second);
                timeline.push(point(timeline.len() as u32 + 1, &second));
                progress.update(&snapshot(shared, &totals, &second));
            }
            _ = async {
                match hard_stop {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {
                vus.abort_all();
                while vus.join_next().await.is_some() {}
                break;
            }
        }
    }
    let elapsed = shared.start.elapsed();
    let last = collect_interval(&recorders);
    if last.requests > 0 {
        timeline.push(point(timeline.len() as u32 + 1, &last));
    }
    progress.finish();
    (recorders, elapsed, timeline)
}

fn snapshot(shared: &Shared, totals: &Interval, second: &Interval) -> Snapshot {
    Snapshot {
        elapsed: shared.start.elapsed(),
        requests: totals.requests,
        errors: totals.failures,
        rps: second.requests as f64,
        p99_ms: if second.latency.is_empty() {
            0.0
        } else {
            second.latency.value_at_quantile(0.99) as f64 / 1000.0
        },
    }
}

/// The run's statistics by request name, by scenario and in all.
struct Tally {
    by_name: Vec<Stats>,
    scenarios: Vec<(String, Stats)>,
    all: Stats,
}

impl Tally {
    fn of(plan: &Plan, recorders: &[Arc<Mutex<Recorder>>]) -> Self {
        let mut by_name = vec![Stats::default(); plan.names.len()];
        for rec in recorders {
            let r = rec.lock().unwrap_or_else(|p| p.into_inner());
            for (i, s) in r.by_name.iter().enumerate() {
                if let Some(s) = s {
                    by_name[i].merge(s);
                }
            }
        }
        let mut scenarios: Vec<(String, Stats)> = plan
            .scenarios
            .iter()
            .map(|s| (s.name.clone(), Stats::default()))
            .collect();
        let mut all = Stats::default();
        for (i, s) in by_name.iter().enumerate() {
            scenarios[plan.name_scenario[i]].1.merge(s);
            all.merge(s);
        }
        Self {
            by_name,
            scenarios,
            all,
        }
    }

    /// Each threshold judged on the statistics of its scope (`scenario:NAME`,
    /// `request:NAME`, or the whole run).
    fn verdicts(&self, plan: &Plan, secs: f64) -> Vec<Verdict> {
        plan.thresholds
            .iter()
            .map(|(scope, t)| {
                let stats = match scope.split_once(':') {
                    Some(("scenario", n)) => self
                        .scenarios
                        .iter()
                        .find(|(name, _)| name == n)
                        .map(|(_, s)| s),
                    Some(("request", n)) => plan
                        .names
                        .iter()
                        .position(|x| x == n)
                        .map(|i| &self.by_name[i]),
                    _ => Some(&self.all),
                };
                t.judge(scope, stats.unwrap_or(&self.all), secs)
            })
            .collect()
    }
}

/// `open`, `closed` or `mixed`: the models of the plan's scenarios.
fn model(plan: &Plan) -> &'static str {
    let open = plan
        .scenarios
        .iter()
        .filter(|s| s.executor.is_open())
        .count();
    match open {
        0 => "closed",
        n if n == plan.scenarios.len() => "open",
        _ => "mixed",
    }
}

/// The open scenarios' target rates summed, if any has one.
fn target_rps(plan: &Plan) -> Option<f64> {
    plan.scenarios
        .iter()
        .filter_map(|s| s.executor.target_rate())
        .reduce(|a, b| a + b)
}

/// One `load.threshold` marker per verdict and the `load.stop` marker; returns the run's
/// marker trace ID.
async fn end_markers(shared: &Shared, verdicts: &[Verdict], all: &Stats) -> Option<String> {
    let e = shared.exporter.as_ref()?;
    let now = SystemTime::now();
    for v in verdicts {
        e.marker(
            markers::LOAD_THRESHOLD,
            now,
            now,
            vec![
                ("gauntlet.threshold.scope".into(), v.scope.clone()),
                ("gauntlet.threshold.expr".into(), v.expr.clone()),
                ("gauntlet.threshold.value".into(), format!("{:.3}", v.value)),
                ("gauntlet.threshold.passed".into(), v.passed.to_string()),
            ],
            !v.passed,
        )
        .await;
    }
    e.marker(
        markers::LOAD_STOP,
        shared.started,
        now,
        vec![
            ("gauntlet.requests".into(), all.requests.to_string()),
            ("gauntlet.errors".into(), all.failures.to_string()),
        ],
        verdicts.iter().any(|v| !v.passed),
    )
    .await;
    Some(e.run_trace_hex())
}

fn collect_interval(recorders: &[Arc<Mutex<Recorder>>]) -> Interval {
    let mut second = Interval::default();
    for rec in recorders {
        let taken = rec
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take_interval();
        second.merge(&taken);
    }
    second
}

fn point(t: u32, i: &Interval) -> Point {
    let q = |x: f64| {
        if i.latency.is_empty() {
            0.0
        } else {
            i.latency.value_at_quantile(x) as f64 / 1000.0
        }
    };
    Point {
        t,
        requests: i.requests,
        errors: i.failures,
        p50_ms: q(0.5),
        p90_ms: q(0.9),
        p99_ms: q(0.99),
        max_ms: i.latency.max() as f64 / 1000.0,
    }
}

/// One virtual user of scenario `si`.
async fn run_vu(shared: Arc<Shared>, si: usize, index: u32, rec: Arc<Mutex<Recorder>>) {
    let scenario = &shared.plan.scenarios[si];
    let begin = shared.start + scenario.start_after;
    let mut stop = shared.stop.clone();
    if !sleep_until(begin, &mut stop).await {
        return;
    }
    let mut vu = Vu {
        shared: &shared,
        scenario,
        conns: Connections::from(scenario.source.map(|s| s.for_vu(index))),
        captured: HashMap::new(),
        setup_done: false,
        rec: &rec,
        last_addr: None,
    };
    let counter = &shared.counters[si];
    loop {
        if shared.stopped() {
            return;
        }
        let since = Instant::now().saturating_duration_since(begin);
        match &scenario.executor {
            Executor::ConstantVus { end, .. } => {
                match end {
                    End::After(d) if since >= *d => return,
                    End::Iterations(n) if counter.fetch_add(1, Ordering::Relaxed) >= *n => return,
                    _ => {}
                }
                vu.iteration(None).await;
                if !vu.think(&mut stop).await {
                    return;
                }
            }
            Executor::RampingVus { .. } => {
                if since >= scenario.executor.duration().unwrap_or_default() {
                    return;
                }
                if index >= scenario.executor.active_vus(since) {
                    // Not this VU's turn yet (or any more): look again shortly.
                    if !sleep_until(Instant::now() + Duration::from_millis(50), &mut stop).await {
                        return;
                    }
                    continue;
                }
                vu.iteration(None).await;
                if !vu.think(&mut stop).await {
                    return;
                }
            }
            Executor::ConstantArrivalRate { .. } | Executor::RampingArrivalRate { .. } => {
                let ticket = counter.fetch_add(1, Ordering::Relaxed);
                let Some(offset) = scenario.executor.intended_start(ticket) else {
                    return;
                };
                let intended = begin + offset;
                if !sleep_until(intended, &mut stop).await {
                    return;
                }
                vu.iteration(Some(intended)).await;
            }
        }
    }
}

/// Sleeps until `at`; false if the run was stopped meanwhile.
async fn sleep_until(at: Instant, stop: &mut watch::Receiver<bool>) -> bool {
    if *stop.borrow() {
        return false;
    }
    if at <= Instant::now() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep_until(at) => true,
        _ = stop.wait_for(|s| *s) => false,
    }
}

struct Vu<'a> {
    shared: &'a Shared,
    scenario: &'a Scenario,
    conns: Connections,
    /// Values captured from earlier answers.
    captured: HashMap<String, String>,
    setup_done: bool,
    rec: &'a Mutex<Recorder>,
    /// The last host resolved, and where it went (most flows use one host).
    last_addr: Option<(String, SocketAddr)>,
}

impl Vu<'_> {
    /// The scenario's think time; false if the run was stopped meanwhile.
    async fn think(&self, stop: &mut watch::Receiver<bool>) -> bool {
        let t = self.scenario.think_time;
        t.is_zero() || sleep_until(Instant::now() + t, stop).await
    }

    /// Runs the setup once, then one flow; the flow stops at its first failed step (as a
    /// user would), since later steps usually depend on it.
    async fn iteration(&mut self, intended: Option<Instant>) {
        let mut intended = intended;
        if !self.setup_done {
            self.setup_done = true;
            for step in &self.scenario.setup {
                if !self.exec(step, intended.take(), None).await {
                    break;
                }
            }
        }
        let Some(flow) = self.scenario.pick_flow() else {
            return;
        };
        let row = self
            .scenario
            .csv
            .as_ref()
            .and_then(|c| c.next_row().map(|r| (c.clone(), r.to_vec())));
        for step in &flow.steps {
            let row = row
                .as_ref()
                .map(|(c, r)| (c.columns.as_slice(), r.as_slice()));
            if !self.exec(step, intended.take(), row).await {
                break;
            }
        }
    }

    /// Sends one step; returns whether it succeeded.
    async fn exec(
        &mut self,
        step: &Step,
        intended: Option<Instant>,
        row: Option<(&[String], &[String])>,
    ) -> bool {
        let shared = self.shared;
        let seq = shared.seq.fetch_add(1, Ordering::Relaxed);
        let mut outcome = Outcome::new(step.name);
        let Ok((rendered_url, mut headers, body)) = self.render(step, seq, row) else {
            outcome.error = Some(ErrorKind::Template);
            self.record(&outcome);
            return false;
        };
        let target = match (&step.fixed_url, rendered_url) {
            (Some(f), _) => Cow::Borrowed(f),
            (None, Some(u)) => match FixedUrl::parse(&u).filter(|_| u.starts_with("http://")) {
                Some(f) => Cow::Owned(f),
                None => {
                    outcome.error = Some(ErrorKind::Protocol);
                    self.record(&outcome);
                    return false;
                }
            },
            (None, None) => return false,
        };
        let Some(addr) = self.addr_of(&target.authority).await else {
            outcome.error = Some(ErrorKind::Connect);
            self.record(&outcome);
            return false;
        };
        let ids = TraceIds::random();
        let correlation_id = format!("{}-{seq}", &shared.run_id[..12.min(shared.run_id.len())]);
        let body = body.unwrap_or_default();
        if !body.is_empty()
            && !headers
                .iter()
                .any(|(k, _)| *k == http::header::CONTENT_TYPE)
        {
            headers.push((http::header::CONTENT_TYPE, "application/json".into()));
        }
        headers.push((TRACEPARENT, ids.traceparent()));
        headers.push((CORRELATION, correlation_id.clone()));
        outcome.bytes_out = wire_bytes(step, &target, &headers, &body);
        let req = Outgoing {
            method: &step.method,
            uri: &target.uri,
            authority: &target.authority,
            headers: &headers,
            body: body.as_bytes(),
        };
        let (from, done) = self.send(addr, &req, intended, &mut outcome, step).await;
        if let Some(e) = &shared.exporter
            && e.wants(outcome.failed)
        {
            e.request(RequestSpan {
                ids,
                name: shared.plan.names[step.name].clone(),
                scenario: self.scenario.name.clone(),
                method: step.method.to_string(),
                url: target.text.clone(),
                correlation_id,
                status: outcome.status,
                error: outcome.error_text(),
                failed: outcome.failed,
                start: shared.system_time(from),
                end: shared.system_time(done),
            });
        }
        self.record(&outcome);
        !outcome.failed
    }

    /// Sends the request and judges the answer into `outcome`; returns when its latency
    /// counts from and when the answer was in.
    async fn send(
        &mut self,
        addr: SocketAddr,
        req: &Outgoing<'_>,
        intended: Option<Instant>,
        outcome: &mut Outcome,
        step: &Step,
    ) -> (Instant, Instant) {
        let shared = self.shared;
        let sent = Instant::now();
        // Latency counts from the intended time when the send was held back (every
        // connection busy: the server's slowness); a send within the timer's granularity
        // of its time counts from when it went out (the generator's own wake-up jitter).
        let from = match intended {
            Some(i) if sent.saturating_duration_since(i) > TIMER_SLACK => i,
            _ => sent,
        };
        outcome.send_delay = intended.map(|i| sent.saturating_duration_since(i));
        let answer = self
            .conns
            .send(addr, shared.plan.http2, req, shared.plan.timeout)
            .await;
        let done = Instant::now();
        self.judge(step, &answer, done.saturating_duration_since(from), outcome);
        (from, done)
    }

    /// The step's URL (unless it is fixed), headers and body with this request's values:
    /// captured ones first, then the CSV row's `csv.COLUMN`, then the plan's variables.
    fn render(
        &self,
        step: &Step,
        seq: u64,
        row: Option<(&[String], &[String])>,
    ) -> Result<Rendered, crate::template::TemplateError> {
        let (captured, vars) = (&self.captured, &self.shared.plan.vars);
        let lookup = |name: &str| -> Option<&str> {
            if let Some(v) = captured.get(name) {
                return Some(v.as_str());
            }
            if let (Some(col), Some((cols, vals))) = (name.strip_prefix("csv."), row) {
                return cols
                    .iter()
                    .position(|c| c == col)
                    .and_then(|i| vals.get(i))
                    .map(String::as_str);
            }
            vars.get(name).map(String::as_str)
        };
        let url = match &step.fixed_url {
            Some(_) => None,
            None => Some(step.url.render(seq, lookup)?),
        };
        let mut headers = Vec::with_capacity(step.headers.len() + 3);
        for (k, v) in &step.headers {
            headers.push((k.clone(), v.render(seq, lookup)?));
        }
        let body = step
            .body
            .as_ref()
            .map(|b| b.render(seq, lookup))
            .transpose()?;
        Ok((url, headers, body))
    }

    /// The address of `authority`: the last one used when it is the same host, else
    /// resolved (once per run). `None` when it cannot be (logged).
    async fn addr_of(&mut self, authority: &str) -> Option<SocketAddr> {
        if let Some((a, addr)) = &self.last_addr
            && a == authority
        {
            return Some(*addr);
        }
        match self.shared.addr_of(authority).await {
            Ok(addr) => {
                self.last_addr = Some((authority.to_string(), addr));
                Some(addr)
            }
            Err(e) => {
                tracing::warn!(error = %e, "request not sent");
                None
            }
        }
    }

    /// Fills `outcome` from the answer: status, latency, checks, and the captures this
    /// virtual user keeps for its next steps.
    fn judge(
        &mut self,
        step: &Step,
        answer: &Result<Answer, ErrorKind>,
        latency: Duration,
        outcome: &mut Outcome,
    ) {
        let a = match answer {
            Ok(a) => a,
            Err(kind) => {
                outcome.error = Some(*kind);
                // A timeout took at least this long; other failures have no latency.
                if *kind == ErrorKind::Timeout {
                    outcome.latency = Some(latency);
                }
                outcome.checks_failed = step.checks.len() as u32;
                return;
            }
        };
        outcome.status = Some(a.status);
        outcome.latency = Some(latency);
        outcome.bytes_in = a.wire_bytes;
        outcome.failed = !step.status_ok(a.status);
        let json = step
            .needs_json()
            .then(|| serde_json::from_slice::<serde_json::Value>(&a.body).ok())
            .flatten();
        for c in &step.checks {
            if c.passes(a.status, &a.body, json.as_ref(), latency) {
                outcome.checks_passed += 1;
            } else {
                outcome.checks_failed += 1;
            }
        }
        let Some(j) = &json else {
            return;
        };
        for (var, pointer) in &step.captures {
            match capture(j, pointer) {
                Some(v) => {
                    self.captured.insert(var.clone(), v);
                }
                None => {
                    self.captured.remove(var);
                }
            }
        }
    }

    fn record(&self, o: &Outcome) {
        self.rec.lock().unwrap_or_else(|p| p.into_inner()).record(o);
    }
}
