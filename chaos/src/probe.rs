//! Looking once: each probe measures what a caller of the demo would see (HTTP answers, a
//! load run against its thresholds, traces in the collector, error rates, notifications) or
//! what a mechanism reports (breaker states, calls per instance, the registry's list), and
//! says whether its tolerance was met and what it saw.

use std::collections::{BTreeMap, HashMap};
use std::time::{Instant, SystemTime};

use gauntlet_loadgen::ProgressMode;
use gauntlet_loadgen::scenario::{Plan, ScenarioFile};
use gauntlet_query_api::SpanKind;
use gauntlet_query_api::jaeger::Trace;

use crate::activity::{
    BalanceProbe, BreakerProbe, CallsProbe, DeliveredProbe, ErrorRateProbe, HttpProbe, Kind,
    LoadProbe, MetricProbe, OrdersProbe, ReadModelProbe, RegistryProbe, ReleasedProbe, TracesProbe,
    Window,
};
use crate::error::ActivityError;
use crate::run::{Ctx, lock, micros};
use gauntlet_demo_system::platform::resilience::BREAKER_DISABLED;

/// A probe's answer: whether the tolerance was met, and what was seen.
type Seen = Result<(bool, String), ActivityError>;

/// A probe's answer, and whether looking again could change it.
pub(crate) struct Look {
    pub(crate) ok: bool,
    pub(crate) detail: String,
    /// The answer is final (a mechanism the demo runs without never changes state), so a
    /// probe with `within` stops waiting: a control would otherwise wait out every deadline
    /// of the mechanism it lacks.
    pub(crate) settled: bool,
}

impl From<(bool, String)> for Look {
    fn from((ok, detail): (bool, String)) -> Self {
        Look {
            ok,
            detail,
            settled: false,
        }
    }
}

pub(crate) type Looked = Result<Look, ActivityError>;

/// Looks once.
pub(crate) async fn look(ctx: &Ctx, kind: &Kind) -> Looked {
    let seen = match kind {
        Kind::Http(p) => p.look(ctx).await,
        Kind::Load(p) => p.look(ctx).await,
        Kind::Breaker(p) => return p.look(ctx).await,
        Kind::Calls(p) => p.look(ctx).await,
        Kind::Registry(p) => p.look(ctx).await,
        Kind::Traces(p) => p.look(ctx).await,
        Kind::ErrorRate(p) => p.look(ctx).await,
        Kind::Metric(p) => p.look(ctx).await,
        Kind::Delivered(p) => p.look(ctx).await,
        Kind::Balance(p) => p.look(ctx).await,
        Kind::Released(p) => p.look(ctx).await,
        Kind::ReadModel(p) => p.look(ctx).await,
        Kind::Orders(p) => p.look(ctx).await,
        action => Err(ActivityError::NotAProbe(action.label())),
    };
    seen.map(Look::from)
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

impl BreakerProbe {
    async fn look(&self, ctx: &Ctx) -> Looked {
        let mut seen = Vec::new();
        for url in ctx.demo.urls_of(self.service) {
            let report = ctx.demo.resilience(&url).await?;
            let snap = report.upstream(self.upstream.name()).ok_or_else(|| {
                ActivityError::NotAnUpstream {
                    service: self.service,
                    url: url.clone(),
                    upstream: self.upstream,
                }
            })?;
            seen.push(snap.circuit_breaker.clone());
        }
        let want = self.state.name();
        Ok(Look {
            ok: !seen.is_empty() && seen.iter().all(|x| x == want),
            detail: format!(
                "{} → {}: {} (want {want})",
                self.service,
                self.upstream,
                seen.join(", ")
            ),
            settled: !seen.is_empty() && seen.iter().all(|x| x == BREAKER_DISABLED),
        })
    }
}

impl CallsProbe {
    /// Calls to the instance counted over every instance of the calling service.
    async fn count(&self, ctx: &Ctx, target: &str) -> Result<u64, ActivityError> {
        let mut n = 0;
        for url in ctx.demo.urls_of(self.service) {
            let report = ctx.demo.resilience(&url).await?;
            n += report
                .upstream(self.instance.service.name())
                .and_then(|u| u.calls_per_instance.get(target).copied())
                .unwrap_or(0);
        }
        Ok(n)
    }

    async fn look(&self, ctx: &Ctx) -> Seen {
        let target = ctx.demo.url_of(self.instance)?;
        let before = self.count(ctx, &target).await?;
        tokio::time::sleep(self.over).await;
        let calls = self.count(ctx, &target).await?.saturating_sub(before);
        Ok((
            self.min.is_none_or(|m| calls >= m) && self.max.is_none_or(|m| calls <= m),
            format!(
                "{} called {} {calls} times in {}{}",
                self.service,
                self.instance,
                humantime::format_duration(self.over),
                bounds(self.min, self.max)
            ),
        ))
    }
}

impl RegistryProbe {
    async fn look(&self, ctx: &Ctx) -> Seen {
        let id = self.instance;
        let url = ctx.demo.url_of(id)?;
        let healthy = ctx.demo.healthy(id.service).await?;
        let bare = |a: &str| {
            a.trim_start_matches("http://")
                .trim_end_matches('/')
                .to_string()
        };
        let is_listed = healthy.iter().any(|v| bare(&v.address) == bare(&url));
        Ok((
            is_listed == self.listed,
            format!(
                "{id} {} listed ({} healthy {} instance{})",
                if is_listed { "is" } else { "is not" },
                healthy.len(),
                id.service,
                if healthy.len() == 1 { "" } else { "s" }
            ),
        ))
    }
}

impl ErrorRateProbe {
    async fn look(&self, ctx: &Ctx) -> Seen {
        let service = self.service.name();
        let (start, end) = window_us(ctx, self.window);
        let found = ctx
            .demo
            .traces(service, None, &BTreeMap::new(), start, end)
            .await?;
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
            rate <= self.max,
            format!(
                "{:.2}% of {} server spans of {service} failed (max {:.2}%)",
                rate * 100.0,
                seen.len(),
                self.max * 100.0
            ),
        ))
    }
}

impl MetricProbe {
    async fn look(&self, ctx: &Ctx) -> Seen {
        use gauntlet_query_api::prometheus::QueryData;
        let values: Vec<(String, f64)> = match ctx.demo.promql(&self.query).await? {
            QueryData::Scalar(v) => vec![(String::new(), v.value())],
            QueryData::Vector(samples) => samples
                .into_iter()
                .map(|s| {
                    let labels: Vec<String> =
                        s.metric.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
                    (format!("{{{}}}", labels.join(", ")), s.value.value())
                })
                .collect(),
            other => {
                return Ok((
                    false,
                    format!(
                        "the query gives a {}, not a number or an instant vector",
                        match other {
                            QueryData::Matrix(_) => "range vector",
                            _ => "string",
                        }
                    ),
                ));
            }
        };
        Ok(judge_values(&values, self.min, self.max))
    }
}

/// Whether every value is within `min..=max` (NaN never is), and what was seen.
fn judge_values(values: &[(String, f64)], min: Option<f64>, max: Option<f64>) -> (bool, String) {
    let want = match (min, max) {
        (Some(a), Some(b)) => format!("want {a}..={b}"),
        (Some(a), None) => format!("want at least {a}"),
        (None, Some(b)) => format!("want at most {b}"),
        (None, None) => "no bound".into(),
    };
    if values.is_empty() {
        return (false, format!("the query selected nothing ({want})"));
    }
    let within = |v: f64| min.is_none_or(|a| v >= a) && max.is_none_or(|b| v <= b);
    let outside: Vec<String> = values
        .iter()
        .filter(|(_, v)| !within(*v))
        .map(|(l, v)| format!("{l} {v}"))
        .collect();
    let shown: Vec<String> = values
        .iter()
        .take(5)
        .map(|(l, v)| format!("{l} {v}"))
        .collect();
    if outside.is_empty() {
        (true, format!("{} ({want})", shown.join("; ")))
    } else {
        (false, format!("outside: {} ({want})", outside.join("; ")))
    }
}

impl DeliveredProbe {
    async fn look(&self, ctx: &Ctx) -> Seen {
        let customer = self.customer.replace("{{run}}", &ctx.run_id);
        let orders = ctx.demo.orders_of(&customer).await?;
        let notes = ctx.demo.notifications_of(&customer).await?;
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
}

impl HttpProbe {
    async fn look(&self, ctx: &Ctx) -> Seen {
        let h = self;
        let base = ctx.demo.target_url(&h.target)?;
        let url = format!("{}{}", base.trim_end_matches('/'), h.path);
        let mut req = ctx.demo.http().request(h.method.clone(), &url);
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
}

impl LoadProbe {
    async fn look(&self, ctx: &Ctx) -> Seen {
        let l = self;
        let path = ctx.dir.join(&l.scenario);
        let scenario = |reason: String| ActivityError::Scenario {
            path: path.display().to_string(),
            reason,
        };
        // Off the runtime's threads: the file is read on a blocking one.
        let text = tokio::fs::read_to_string(&path)
            .await
            .map_err(|e| scenario(e.to_string()))?;
        let mut file: ScenarioFile = toml::from_str(&text).map_err(|e| scenario(e.to_string()))?;
        for s in &mut file.scenarios {
            if let Some(d) = &l.duration
                && s.stages.is_empty()
            {
                s.duration = Some(humantime::format_duration(*d).to_string());
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
        let plan = Plan::compile(file, &vars).map_err(|e| scenario(e.to_string()))?;
        let opts = gauntlet_loadgen::Options {
            allow_remote: false,
            progress: ProgressMode::Off,
            otlp: Some(ctx.demo.handle.collector.otlp_http.clone()),
            otlp_sample: 0.0,
        };
        let r = gauntlet_loadgen::run(plan, opts, ctx.stop.clone()).await?;
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
        // Every threshold it was judged on, kept or not: a passing step with few checks
        // passed reads as a contradiction without the bound it met.
        for v in &r.verdicts {
            detail.push_str(&format!(
                "; {} {}: {} (measured {})",
                if v.passed { "kept" } else { "breached" },
                v.scope,
                v.expr,
                v.measured()
            ));
        }
        if r.interrupted {
            return Ok((false, format!("{detail} (interrupted)")));
        }
        Ok((!r.breached(), detail))
    }
}

impl TracesProbe {
    async fn look(&self, ctx: &Ctx) -> Seen {
        let t = self;
        let (start, end) = window_us(ctx, t.window);
        let found = ctx
            .demo
            .traces(
                t.service.name(),
                t.operation.as_deref(),
                &t.tags,
                start,
                end,
            )
            .await?;
        let matched: Vec<&Trace> = found
            .iter()
            .filter(|tr: &&Trace| match &t.event {
                None => true,
                Some(ev) => tr
                    .spans_of(t.service.name())
                    .any(|sp| sp.has_event(ev, &t.event_attributes)),
            })
            .collect();
        if let Some(tag) = &t.per {
            return Ok(t.per_tag(tag, &matched));
        }
        let matching = matched.len();
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
}

impl TracesProbe {
    /// The matching traces grouped by the value of `tag` on the operation's span; the
    /// largest group held to min/max.
    fn per_tag(&self, tag: &str, traces: &[&Trace]) -> (bool, String) {
        let mut groups: BTreeMap<String, usize> = BTreeMap::new();
        for tr in traces {
            let value = tr
                .spans_of(self.service.name())
                .filter(|sp| {
                    self.operation
                        .as_deref()
                        .is_none_or(|op| sp.operation_name == op)
                })
                .find_map(|sp| {
                    sp.text(tag)
                        .map(str::to_string)
                        .or_else(|| sp.int(tag).map(|v| v.to_string()))
                });
            if let Some(v) = value {
                *groups.entry(v).or_default() += 1;
            }
        }
        let largest = groups.iter().max_by_key(|(_, n)| **n);
        let most = largest.map_or(0, |(_, n)| *n);
        let ok = !groups.is_empty()
            && self.min.is_none_or(|m| most >= m)
            && self.max.is_none_or(|m| most <= m);
        let twice = groups.values().filter(|n| **n > 1).count();
        (
            ok,
            format!(
                "{} traces of {} over {} values of {tag}; the most for one: {most}{} ({twice} values with more than one){}",
                traces.len(),
                self.service,
                groups.len(),
                largest
                    .map(|(v, _)| format!(" ({tag} = {v})"))
                    .unwrap_or_default(),
                bounds(self.min.map(|m| m as u64), self.max.map(|m| m as u64))
            ),
        )
    }
}

impl OrdersProbe {
    async fn look(&self, ctx: &Ctx) -> Seen {
        let customer = self.customer.replace("{{run}}", &ctx.run_id);
        let orders = ctx.demo.orders_of(&customer).await?;
        if orders.is_empty() {
            return Ok((false, format!("{customer} has no orders: nothing to check")));
        }
        let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
        for o in &orders {
            *by_status.entry(o.status.as_str()).or_default() += 1;
        }
        let wanted = by_status.get(self.status.as_str()).copied().unwrap_or(0);
        Ok((
            wanted == orders.len(),
            format!(
                "{wanted} of {customer}'s {} orders {}; by status: {}",
                orders.len(),
                self.status.as_str(),
                by_status
                    .iter()
                    .map(|(s, n)| format!("{s} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ))
    }
}

impl BalanceProbe {
    /// Calls to each instance of the upstream, summed over every instance of the caller.
    async fn counts(&self, ctx: &Ctx) -> Result<BTreeMap<String, u64>, ActivityError> {
        let mut per: BTreeMap<String, u64> = ctx
            .demo
            .urls_of(self.upstream)
            .into_iter()
            .map(|u| (u, 0))
            .collect();
        for url in ctx.demo.urls_of(self.service) {
            let report = ctx.demo.resilience(&url).await?;
            let Some(up) = report.upstream(self.upstream.name()) else {
                continue;
            };
            for (instance, n) in &up.calls_per_instance {
                if let Some(c) = per.get_mut(instance) {
                    *c += n;
                }
            }
        }
        Ok(per)
    }

    async fn look(&self, ctx: &Ctx) -> Seen {
        let before = self.counts(ctx).await?;
        tokio::time::sleep(self.over).await;
        let after = self.counts(ctx).await?;
        let calls: Vec<u64> = after
            .iter()
            .map(|(k, n)| n.saturating_sub(before.get(k).copied().unwrap_or(0)))
            .collect();
        let total: u64 = calls.iter().sum();
        let even = 1.0 / calls.len().max(1) as f64;
        let shares: Vec<f64> = calls
            .iter()
            .map(|n| *n as f64 / total.max(1) as f64)
            .collect();
        let ok = total > 0
            && shares
                .iter()
                .all(|s| (s - even).abs() <= even * self.tolerance + 1e-9);
        let listed: Vec<String> = shares
            .iter()
            .zip(&calls)
            .enumerate()
            .map(|(i, (s, n))| format!("{}-{}: {n} ({:.0} %)", self.upstream, i + 1, s * 100.0))
            .collect();
        Ok((
            ok,
            format!(
                "{} called {} {total} times in {}: {} (want {:.0} % ± {:.0} % each)",
                self.service,
                self.upstream,
                humantime::format_duration(self.over),
                listed.join(", "),
                even * 100.0,
                even * self.tolerance * 100.0
            ),
        ))
    }
}

impl ReleasedProbe {
    async fn look(&self, ctx: &Ctx) -> Seen {
        use gauntlet_demo_system::inventory::ReservationStatus;
        use gauntlet_demo_system::orders::OrderStatus;
        let customer = self.customer.replace("{{run}}", &ctx.run_id);
        let orders = ctx.demo.orders_of(&customer).await?;
        let cancelled: Vec<_> = orders
            .iter()
            .filter(|o| o.status == OrderStatus::Cancelled)
            .collect();
        if cancelled.is_empty() {
            return Ok((
                false,
                format!("{customer} has no cancelled orders: nothing to check"),
            ));
        }
        let mut held = Vec::new();
        for o in &cancelled {
            if let Some(r) = ctx.demo.reservation(&o.id).await?
                && r.status != ReservationStatus::Released
            {
                held.push(o.id.as_str());
            }
        }
        Ok((
            held.is_empty(),
            format!(
                "{} cancelled orders of {customer}: {} still hold their stock{}",
                cancelled.len(),
                held.len(),
                held.first()
                    .map(|id| format!(" (e.g. {id})"))
                    .unwrap_or_default()
            ),
        ))
    }
}

impl ReadModelProbe {
    async fn look(&self, ctx: &Ctx) -> Seen {
        let customer = self.customer.replace("{{run}}", &ctx.run_id);
        let orders = ctx.demo.orders_of(&customer).await?;
        let history = ctx.demo.history_of(&customer).await?;
        if orders.is_empty() {
            return Ok((false, format!("{customer} has no orders: nothing to check")));
        }
        let mut seen: HashMap<&str, Vec<gauntlet_demo_system::orders::OrderStatus>> =
            HashMap::new();
        for v in &history {
            seen.entry(v.order_id.as_str()).or_default().push(v.status);
        }
        let missing: Vec<&str> = orders
            .iter()
            .map(|o| o.id.as_str())
            .filter(|id| !seen.contains_key(id))
            .collect();
        let twice = seen.values().filter(|s| s.len() > 1).count();
        // Converged: the read model shows each order in the state orders has it in.
        let behind = orders
            .iter()
            .filter(|o| seen.get(o.id.as_str()).is_some_and(|s| s[0] != o.status))
            .count();
        Ok((
            missing.is_empty() && twice == 0 && behind == 0,
            format!(
                "orders has {} orders of {customer}; order-history lists {} of them, misses {}{}, lists {twice} twice, {behind} in another state than orders",
                orders.len(),
                orders.len() - missing.len(),
                missing.len(),
                missing
                    .first()
                    .map(|id| format!(" (e.g. {id})"))
                    .unwrap_or_default()
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::judge_values;

    #[test]
    fn metric_values_are_judged_each_and_nothing_selected_fails() {
        let v = |pairs: &[f64]| -> Vec<(String, f64)> {
            pairs
                .iter()
                .map(|x| (format!("{{i=\"{x}\"}}"), *x))
                .collect()
        };
        assert!(judge_values(&v(&[0.2, 0.4]), None, Some(0.5)).0);
        let (ok, seen) = judge_values(&v(&[0.2, 0.9]), None, Some(0.5));
        assert!(!ok);
        assert!(
            seen.contains("0.9") && !seen.contains("outside: {i=\"0.2\"}"),
            "{seen}"
        );
        assert!(
            !judge_values(&v(&[f64::NAN]), Some(0.0), None).0,
            "NaN is never within"
        );
        let (ok, seen) = judge_values(&[], Some(1.0), None);
        assert!(!ok && seen.contains("selected nothing"), "{seen}");
        assert!(
            judge_values(&v(&[2.0]), Some(2.0), Some(2.0)).0,
            "bounds are inclusive"
        );
    }
}
