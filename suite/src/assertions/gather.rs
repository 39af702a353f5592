//! From a trigger to the trace sets the specs are checked on. A request is sent with a
//! fresh `traceparent` and `X-Correlation-ID`, so its spans are found by ID; a correlation
//! ID or a trace ID names them; a window (the last minutes, a load run's) takes every trace
//! that started in it. A set is complete when no new span arrived for the quiet period,
//! with the asynchronous hops followed (every trace of the correlation ID, and the traces
//! its spans link to), or when the time limit passed (the report says which).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gauntlet_query_api::CORRELATION_KEYS;
use gauntlet_query_api::client::{ClientError, QueryClient};
use gauntlet_query_api::jaeger::Trace;
use gauntlet_query_api::params::{TimelineQuery, TraceSearch};

use super::file::{Assertions, RequestSpec, Scope};
use super::span_set::SpanSet;

/// What the specs are checked after.
#[derive(Debug, Clone)]
pub enum Target {
    /// The file's `[trigger]` request.
    Request,
    Correlation(String),
    Trace(String),
    /// Every trace that started between these times.
    Window {
        start: SystemTime,
        end: SystemTime,
    },
}

/// Where the system and its collector are.
#[derive(Debug, Clone)]
pub struct System {
    pub gateway: String,
    pub collector: QueryClient,
}

/// A set of traces checked together: one correlation ID's, or one trace.
#[derive(Debug, Clone)]
pub struct Unit {
    /// `correlation 0193…` or `trace 4bf9…`.
    pub label: String,
    pub spans: SpanSet,
}

#[derive(Debug)]
pub struct Gathered {
    /// What was done or read, for the report.
    pub trigger: String,
    pub units: Vec<Unit>,
    /// Every set went quiet before the time limit.
    pub complete: bool,
    /// The trigger request's IDs, when one was sent.
    pub correlation_id: Option<String>,
    pub trace_id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum GatherError {
    #[error("the trigger request {what} failed: {reason}")]
    Trigger { what: String, reason: String },
    #[error("{0}")]
    Collector(#[from] ClientError),
    #[error("{0}")]
    Usage(String),
}

/// Runs the trigger and reads the trace sets it made.
pub async fn gather(
    a: &Assertions,
    target: &Target,
    system: &System,
) -> Result<Gathered, GatherError> {
    match target {
        Target::Request => {
            let Some(spec) = &a.trigger else {
                return Err(GatherError::Usage(format!(
                    "{} has no [trigger]: name a correlation ID, a trace ID or a window",
                    a.path.display()
                )));
            };
            let sent = send(spec, &system.gateway).await?;
            let (label, id) = match a.scope {
                Scope::Correlation => (
                    Target::Correlation(sent.correlation_id.clone()),
                    &sent.correlation_id,
                ),
                Scope::Trace => (Target::Trace(sent.trace_id.clone()), &sent.trace_id),
            };
            let (unit, complete) = one_unit(&label, a, &system.collector).await?;
            Ok(Gathered {
                trigger: format!("{} → {} ({id})", sent.what, sent.status),
                units: vec![unit],
                complete,
                correlation_id: Some(sent.correlation_id),
                trace_id: Some(sent.trace_id),
            })
        }
        Target::Correlation(_) | Target::Trace(_) => {
            let (unit, complete) = one_unit(target, a, &system.collector).await?;
            if unit.spans.is_empty() {
                return Err(GatherError::Usage(format!(
                    "no span of {} reached the collector in {}",
                    unit.label,
                    humantime::format_duration(a.timeout)
                )));
            }
            Ok(Gathered {
                trigger: unit.label.clone(),
                units: vec![unit],
                complete,
                correlation_id: None,
                trace_id: None,
            })
        }
        Target::Window { start, end } => window(a, *start, *end, &system.collector).await,
    }
}

struct Sent {
    what: String,
    status: u16,
    trace_id: String,
    correlation_id: String,
}

fn fill(text: &str, gateway: &str, token: &str) -> String {
    let mut out = text.replace("{{gateway}}", gateway.trim_end_matches('/'));
    out = out.replace("{{token}}", token);
    while out.contains("{{uuid}}") {
        out = out.replacen("{{uuid}}", &uuid::Uuid::new_v4().to_string(), 1);
    }
    out
}

async fn send(spec: &RequestSpec, gateway: &str) -> Result<Sent, GatherError> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_default();
    let token = match &spec.token {
        Some(t) => fetch_token(&http, &fill(&t.url, gateway, ""), &t.body, &t.pointer).await?,
        None => String::new(),
    };
    let url = fill(&spec.url, gateway, &token);
    let what = format!("{} {url}", spec.method);
    let fail = |reason: String| GatherError::Trigger {
        what: what.clone(),
        reason,
    };
    let method = reqwest::Method::from_bytes(spec.method.as_bytes())
        .map_err(|_| fail(format!("{:?} is not an HTTP method", spec.method)))?;
    let trace_id = format!("{:032x}", fastrand::u128(1..));
    let correlation_id = format!("gauntlet-assert-{}", uuid::Uuid::new_v4());
    let mut request = http
        .request(method, &url)
        .header(
            "traceparent",
            format!("00-{trace_id}-{:016x}-01", fastrand::u64(1..)),
        )
        .header("x-correlation-id", &correlation_id);
    for (k, v) in &spec.headers {
        request = request.header(k.as_str(), fill(v, gateway, &token));
    }
    if let Some(body) = &spec.body {
        request = request
            .header("content-type", "application/json")
            .body(fill(body, gateway, &token));
    }
    let response = request.send().await.map_err(|e| fail(e.to_string()))?;
    let status = response.status().as_u16();
    let wanted = spec
        .status
        .map_or(response.status().is_success(), |s| s == status);
    if !wanted {
        let body = response.text().await.unwrap_or_default();
        return Err(fail(format!(
            "it answered {status}: {}",
            body.chars().take(300).collect::<String>()
        )));
    }
    Ok(Sent {
        what,
        status,
        trace_id,
        correlation_id,
    })
}

async fn fetch_token(
    http: &reqwest::Client,
    url: &str,
    body: &str,
    pointer: &str,
) -> Result<String, GatherError> {
    let fail = |reason: String| GatherError::Trigger {
        what: format!("for a token, POST {url}"),
        reason,
    };
    let response = http
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| fail(e.to_string()))?;
    let status = response.status();
    let json: serde_json::Value = response.json().await.map_err(|e| fail(e.to_string()))?;
    match json.pointer(pointer).and_then(|v| v.as_str()) {
        Some(t) if status.is_success() => Ok(t.to_string()),
        _ => Err(fail(format!(
            "it answered {status} without a text at {pointer}"
        ))),
    }
}

/// Polls one correlation ID's or trace's spans until they stop changing.
async fn one_unit(
    target: &Target,
    a: &Assertions,
    client: &QueryClient,
) -> Result<(Unit, bool), GatherError> {
    let label = match target {
        Target::Correlation(id) => format!("correlation {id}"),
        Target::Trace(id) => format!("trace {id}"),
        Target::Request | Target::Window { .. } => {
            return Err(GatherError::Usage(
                "a single trace set is read by a correlation or trace ID".into(),
            ));
        }
    };
    let started = Instant::now();
    let (mut last_count, mut last_change) = (0usize, Instant::now());
    loop {
        let traces = read(target, client).await?;
        let spans = SpanSet::new(&traces);
        if spans.len() != last_count {
            (last_count, last_change) = (spans.len(), Instant::now());
        }
        let quiet = last_count > 0 && last_change.elapsed() >= a.quiet;
        if quiet || started.elapsed() >= a.timeout {
            return Ok((Unit { label, spans }, quiet));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The traces of an ID now, with the traces their spans link to.
async fn read(target: &Target, client: &QueryClient) -> Result<Vec<Trace>, GatherError> {
    let ids = match target {
        Target::Correlation(id) => match client.timeline(id, &TimelineQuery::default()).await {
            Ok(t) => t.traces,
            Err(ClientError::Refused { status: 404, .. }) => Vec::new(),
            Err(e) => return Err(e.into()),
        },
        Target::Trace(id) => vec![id.clone()],
        _ => Vec::new(),
    };
    let mut traces = BTreeMap::new();
    let mut wanted = ids;
    // Links lead to traces outside the ID (a consumer's to its producer's); follow them a
    // few hops, no further.
    for _ in 0..4 {
        for id in wanted.drain(..) {
            if traces.contains_key(&id) {
                continue;
            }
            match client.trace(&id).await {
                Ok(t) => {
                    traces.insert(id, t);
                }
                Err(ClientError::Refused { status: 404, .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        wanted = SpanSet::new(traces.values()).linked_traces_missing();
        wanted.retain(|id| !traces.contains_key(id));
        if wanted.is_empty() {
            break;
        }
    }
    Ok(traces.into_values().collect())
}

fn nanos(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos() as i64
}

/// Every trace that started in the window (and the quiet period after it, where the
/// asynchronous hops of its last requests land), grouped by correlation ID or by trace.
async fn window(
    a: &Assertions,
    start: SystemTime,
    end: SystemTime,
    client: &QueryClient,
) -> Result<Gathered, GatherError> {
    let settle = (end + a.quiet)
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    tokio::time::sleep(settle).await;
    let mut traces: BTreeMap<String, Trace> = BTreeMap::new();
    let mut truncated = false;
    for service in client.services().await? {
        // Gauntlet's own tools (load, chaos, run markers) are not the system.
        if gauntlet_query_api::markers::SOURCES
            .iter()
            .any(|s| s.service == service)
        {
            continue;
        }
        let search = TraceSearch {
            service,
            start_ns: Some(nanos(start)),
            end_ns: Some(nanos(end + a.quiet)),
            limit: Some(TraceSearch::MAX_LIMIT),
            ..Default::default()
        };
        let found = client.traces(&search).await?;
        truncated |= found.len() >= TraceSearch::MAX_LIMIT;
        for t in found {
            traces.insert(t.trace_id.clone(), t);
        }
    }
    let mut groups: HashMap<String, Vec<Trace>> = HashMap::new();
    for t in traces.into_values() {
        let key = match a.scope {
            Scope::Correlation => correlation_of(&t).map_or_else(
                || format!("trace {}", t.trace_id),
                |c| format!("correlation {c}"),
            ),
            Scope::Trace => format!("trace {}", t.trace_id),
        };
        groups.entry(key).or_default().push(t);
    }
    let mut units: Vec<Unit> = groups
        .into_iter()
        .map(|(label, traces)| Unit {
            label,
            spans: SpanSet::new(&traces),
        })
        .collect();
    units.sort_by(|a, b| a.label.cmp(&b.label));
    let shown = |t: SystemTime| humantime::format_rfc3339_seconds(t).to_string();
    Ok(Gathered {
        trigger: format!(
            "every trace from {} to {} ({} sets{})",
            shown(start),
            shown(end),
            units.len(),
            if truncated {
                ", more than a search answers: some left out"
            } else {
                ""
            }
        ),
        units,
        complete: !truncated,
        correlation_id: None,
        trace_id: None,
    })
}

fn correlation_of(t: &Trace) -> Option<String> {
    t.spans.iter().find_map(|s| {
        CORRELATION_KEYS
            .iter()
            .find_map(|k| s.text(k).filter(|v| !v.is_empty()).map(str::to_string))
    })
}

/// The window of a load or chaos run, from its markers (within the last day).
pub async fn run_window(
    client: &QueryClient,
    run_id: &str,
) -> Result<(SystemTime, SystemTime), GatherError> {
    let now = SystemTime::now();
    let query = gauntlet_query_api::params::MarkersQuery {
        start_ns: Some(nanos(now - Duration::from_secs(24 * 3600))),
        end_ns: Some(nanos(now)),
        limit: Some(gauntlet_query_api::params::MarkersQuery::MAX_LIMIT),
    };
    let mine: Vec<_> = client
        .markers(&query)
        .await?
        .into_iter()
        .filter(|m| m.run_id.as_deref() == Some(run_id))
        .collect();
    let (Some(start), Some(end)) = (
        mine.iter().map(|m| m.time).min(),
        mine.iter().map(|m| m.end.max(m.time)).max(),
    ) else {
        return Err(GatherError::Usage(format!(
            "no marker of run {run_id:?} in the last day: `gauntlet load run` and `gauntlet chaos run` print their run ID"
        )));
    };
    let at = |us: i64| UNIX_EPOCH + Duration::from_micros(us.max(0) as u64);
    Ok((at(start), at(end)))
}
