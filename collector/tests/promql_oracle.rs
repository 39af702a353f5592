//! PromQL checked against Prometheus itself (Debian's `prometheus` 2.42, which
//! `scripts/test.sh` installs): the same samples go to a real Prometheus through its
//! remote-write receiver and to Gauntlet as OTLP metrics (cumulative and delta sums,
//! gauges, explicit-bucket histograms, summaries, a resource's `target_info`), with a
//! counter reset, a gap longer than the lookback and a series that ends with a
//! no-recorded-value point (Prometheus' staleness marker). Every query of the list must
//! give the same answer from both, instant at several times and as a range, within float
//! tolerance; `promtool` then queries Gauntlet as it queries Prometheus.
//!
//! The Prometheus names here are written out by hand from the compatibility specification,
//! not computed by Gauntlet's naming code: a naming mistake shows as a mismatch.

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use gauntlet_query_api::prometheus::{PromResponse, QueryData, SamplePair};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, Summary, SummaryDataPoint, metric, number_data_point,
    summary_data_point::ValueAtQuantile,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

const PROMETHEUS: &str = "/usr/bin/prometheus";
const PROMTOOL: &str = "/usr/bin/promtool";
const STEP_MS: i64 = 15_000;
const STEPS: i64 = 160;
const BOUNDS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];
const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

/// The queries both must answer alike: every supported function and operator.
const QUERIES: &[&str] = &[
    "app_requests_total",
    "app_requests_total{http_request_method=\"GET\"}",
    "app_requests_total{http_request_method!=\"GET\"}",
    "app_requests_total{job=~\"check.*\"}",
    "app_requests_total{job!~\"check.*\"}",
    "{__name__=~\"app_requests_total|queue_size_bytes\"}",
    "queue_size_bytes",
    "queue_size_bytes offset 5m",
    "app_requests_total offset 10m",
    "http_server_request_duration_seconds_bucket{le=\"0.1\"}",
    "http_server_request_duration_seconds_count",
    "http_server_request_duration_seconds_sum",
    "rpc_latency_milliseconds",
    "rpc_latency_milliseconds_count",
    "rpc_latency_milliseconds_sum",
    "pool_connections_in_use",
    "jobs_processed_total",
    "target_info",
    "rate(app_requests_total[1m])",
    "rate(app_requests_total[5m])",
    "irate(app_requests_total[1m])",
    "increase(app_requests_total[10m])",
    "delta(queue_size_bytes[5m])",
    "idelta(queue_size_bytes[2m])",
    "rate(jobs_processed_total[5m])",
    "increase(app_requests_total[5m] offset 5m)",
    "avg_over_time(queue_size_bytes[5m])",
    "min_over_time(queue_size_bytes[5m])",
    "max_over_time(queue_size_bytes[5m])",
    "sum_over_time(pool_connections_in_use[3m])",
    "count_over_time(app_requests_total[5m])",
    "last_over_time(queue_size_bytes[10m])",
    "stddev_over_time(queue_size_bytes[5m])",
    "stdvar_over_time(queue_size_bytes[5m])",
    "quantile_over_time(0.9, queue_size_bytes[10m])",
    "present_over_time(queue_size_bytes[1m])",
    "sum(app_requests_total)",
    "sum by (job) (rate(app_requests_total[5m]))",
    "sum without (instance) (app_requests_total)",
    "avg by (job) (queue_size_bytes)",
    "min(queue_size_bytes)",
    "max by (http_request_method) (app_requests_total)",
    "count(app_requests_total)",
    "count by (job) (app_requests_total)",
    "topk(2, app_requests_total)",
    "bottomk(1, queue_size_bytes)",
    "topk by (job) (1, app_requests_total)",
    "group by (job) (app_requests_total)",
    "stddev(queue_size_bytes)",
    "stdvar(queue_size_bytes)",
    "quantile(0.5, queue_size_bytes)",
    "histogram_quantile(0.99, sum by (le) (rate(http_server_request_duration_seconds_bucket[5m])))",
    "histogram_quantile(0.5, rate(http_server_request_duration_seconds_bucket[5m]))",
    "histogram_quantile(0.9, sum by (job, le) (rate(http_server_request_duration_seconds_bucket[5m])))",
    "app_requests_total * 2",
    "2 - queue_size_bytes",
    "app_requests_total / on (job, instance) group_left sum by (job, instance) (app_requests_total)",
    "sum by (job, instance) (app_requests_total) / on (job, instance) group_right app_requests_total",
    "rate(http_server_request_duration_seconds_sum[5m]) / rate(http_server_request_duration_seconds_count[5m])",
    "queue_size_bytes > 500",
    "queue_size_bytes > bool 500",
    "500 < queue_size_bytes",
    "app_requests_total == app_requests_total",
    "app_requests_total and on (job) queue_size_bytes",
    "app_requests_total unless on (job, instance) queue_size_bytes",
    "queue_size_bytes or pool_connections_in_use",
    "queue_size_bytes - on (job, instance) pool_connections_in_use",
    "queue_size_bytes - ignoring (http_route) pool_connections_in_use",
    "app_requests_total % 7",
    "queue_size_bytes ^ 0.5",
    "-queue_size_bytes",
    "abs(-queue_size_bytes)",
    "clamp_min(queue_size_bytes, 600)",
    "clamp_max(queue_size_bytes, 600)",
    "clamp(queue_size_bytes, 300, 600)",
    "round(queue_size_bytes / 7)",
    "round(queue_size_bytes, 5)",
    "ceil(queue_size_bytes / 3)",
    "floor(queue_size_bytes / 3)",
    "sqrt(queue_size_bytes)",
    "ln(queue_size_bytes)",
    "log2(queue_size_bytes)",
    "log10(queue_size_bytes)",
    "exp(queue_size_bytes / 1000)",
    "time()",
    "time() - 60",
    "vector(1)",
    "vector(time())",
    "scalar(sum(app_requests_total))",
    "sum(app_requests_total) * scalar(count(queue_size_bytes))",
    "1 + 2 * 3",
    "sort(queue_size_bytes)",
    "sort_desc(app_requests_total)",
];

/// One resource: a service instance.
struct Instance {
    job: &'static str,
    instance: &'static str,
}

const INSTANCES: [Instance; 3] = [
    Instance {
        job: "checkout",
        instance: "checkout-1",
    },
    Instance {
        job: "checkout",
        instance: "checkout-2",
    },
    Instance {
        job: "cart",
        instance: "cart-1",
    },
];

/// The samples of one step as Prometheus gets them (label set, value).
type PromSamples = Vec<(BTreeMap<String, String>, f64)>;

fn labels(name: &str, i: &Instance, extra: &[(&str, String)]) -> BTreeMap<String, String> {
    let mut m: BTreeMap<String, String> = extra
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    m.insert("__name__".into(), name.into());
    m.insert("job".into(), i.job.into());
    m.insert("instance".into(), i.instance.into());
    m
}

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        key_strindex: 0,
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
    }
}

fn number(start: u64, time: u64, v: f64, attrs: Vec<KeyValue>, flags: u32) -> NumberDataPoint {
    NumberDataPoint {
        attributes: attrs,
        start_time_unix_nano: start,
        time_unix_nano: time,
        value: (flags == 0).then_some(number_data_point::Value::AsDouble(v)),
        exemplars: vec![],
        flags,
    }
}

fn metric_of(name: &str, unit: &str, data: metric::Data) -> Metric {
    Metric {
        name: name.into(),
        description: format!("{name} for the oracle test"),
        unit: unit.into(),
        metadata: vec![],
        data: Some(data),
    }
}

/// The counter of instance `n`, method `m` at step `i` (a reset on cart's POST at step 80).
fn requests(n: usize, m: usize, i: i64) -> f64 {
    let i = if n == 2 && m == 1 && i >= 80 {
        i - 80
    } else {
        i
    };
    (i * (3 + n as i64 * 2 + m as i64) + (n as i64 * 7 + m as i64 * 3)) as f64
}

/// Whether checkout-2's GET series has a point at step `i` (a gap longer than the lookback).
fn gap(n: usize, m: usize, i: i64) -> bool {
    n == 1 && m == 0 && (50..80).contains(&i)
}

fn queue(n: usize, i: i64) -> f64 {
    300.0 + ((i * 37 + n as i64 * 101) % 500) as f64 + n as f64 * 0.25
}

/// Step `i`: the OTLP request for Gauntlet and the samples for Prometheus.
fn step(base_ms: i64, i: i64) -> (ExportMetricsServiceRequest, PromSamples) {
    let t_ms = base_ms + i * STEP_MS;
    let t = (t_ms as u64) * 1_000_000;
    let start = (base_ms as u64 - 60_000) * 1_000_000;
    let mut prom: PromSamples = Vec::new();
    let mut resources = Vec::new();
    for (n, inst) in INSTANCES.iter().enumerate() {
        let mut metrics = Vec::new();
        // A cumulative counter per method.
        let mut points = Vec::new();
        for (m, method) in ["GET", "POST"].iter().enumerate() {
            if gap(n, m, i) {
                continue;
            }
            let v = requests(n, m, i);
            let reset_start = if n == 2 && m == 1 && i >= 80 {
                (base_ms as u64 + 80 * STEP_MS as u64 - 1000) * 1_000_000
            } else {
                start
            };
            points.push(number(
                reset_start,
                t,
                v,
                vec![kv("http.request.method", method)],
                0,
            ));
            prom.push((
                labels(
                    "app_requests_total",
                    inst,
                    &[("http_request_method", method.to_string())],
                ),
                v,
            ));
        }
        metrics.push(metric_of(
            "app.requests",
            "{request}",
            metric::Data::Sum(Sum {
                data_points: points,
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: true,
            }),
        ));
        // A gauge; cart's ends at step 120 with a no-recorded-value point.
        let ended = n == 2 && i > 120;
        if !ended {
            let stale = n == 2 && i == 120;
            let v = queue(n, i);
            metrics.push(metric_of(
                "queue.size",
                "By",
                metric::Data::Gauge(Gauge {
                    data_points: vec![number(0, t, v, vec![], if stale { 1 } else { 0 })],
                }),
            ));
            prom.push((
                labels("queue_size_bytes", inst, &[]),
                if stale { f64::from_bits(STALE_NAN) } else { v },
            ));
        }
        // An up-down counter.
        let pool = (5 + (i * (n as i64 + 1)) % 11) as f64;
        metrics.push(metric_of(
            "pool.connections.in_use",
            "{connection}",
            metric::Data::Sum(Sum {
                data_points: vec![number(start, t, pool, vec![], 0)],
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: false,
            }),
        ));
        prom.push((labels("pool_connections_in_use", inst, &[]), pool));
        // A delta counter: Prometheus gets its running total.
        let delta = (i % 5 + n as i64) as f64;
        let total: f64 = (0..=i).map(|j| (j % 5 + n as i64) as f64).sum();
        let prev = (base_ms as u64 + (i as u64).saturating_sub(1) * STEP_MS as u64) * 1_000_000;
        let delta_start = if i == 0 { start } else { prev };
        metrics.push(metric_of(
            "jobs.processed",
            "{job}",
            metric::Data::Sum(Sum {
                data_points: vec![number(delta_start, t, delta, vec![], 0)],
                aggregation_temporality: AggregationTemporality::Delta as i32,
                is_monotonic: true,
            }),
        ));
        prom.push((labels("jobs_processed_total", inst, &[]), total));
        metrics.push(histogram(n, inst, i, start, t, &mut prom));
        metrics.push(summary(n, inst, i, start, t, &mut prom));
        prom.push((
            labels(
                "target_info",
                inst,
                &[("deployment_environment", "oracle".into())],
            ),
            1.0,
        ));
        resources.push(ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", inst.job),
                    kv("service.instance.id", inst.instance),
                    kv("deployment.environment", "oracle"),
                ],
                dropped_attributes_count: 0,
                entity_refs: vec![],
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "oracle".into(),
                    ..Default::default()
                }),
                metrics,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        });
    }
    (
        ExportMetricsServiceRequest {
            resource_metrics: resources,
        },
        prom,
    )
}

/// A cumulative histogram per route: per-bucket increments that vary with the step.
fn histogram(
    n: usize,
    inst: &Instance,
    i: i64,
    start: u64,
    t: u64,
    prom: &mut PromSamples,
) -> Metric {
    let mut points = Vec::new();
    for (r, route) in ["/cart", "/pay"].iter().enumerate() {
        let mut counts = vec![0u64; BOUNDS.len() + 1];
        let mut sum = 0.0;
        for j in 0..=i {
            for (b, c) in counts.iter_mut().enumerate() {
                let inc = ((j + b as i64 * 3 + n as i64 + r as i64 * 5) % 4) as u64;
                *c += inc;
                let mid = if b < BOUNDS.len() {
                    BOUNDS[b] * 0.75
                } else {
                    7.5
                };
                sum += inc as f64 * mid;
            }
        }
        let count: u64 = counts.iter().sum();
        let mut cumulative = 0u64;
        for (b, c) in counts.iter().enumerate() {
            cumulative += c;
            let le = if b < BOUNDS.len() {
                format!("{}", BOUNDS[b])
            } else {
                "+Inf".into()
            };
            prom.push((
                labels(
                    "http_server_request_duration_seconds_bucket",
                    inst,
                    &[("http_route", route.to_string()), ("le", le)],
                ),
                cumulative as f64,
            ));
        }
        let route_label = [("http_route", route.to_string())];
        prom.push((
            labels(
                "http_server_request_duration_seconds_sum",
                inst,
                &route_label,
            ),
            sum,
        ));
        prom.push((
            labels(
                "http_server_request_duration_seconds_count",
                inst,
                &route_label,
            ),
            count as f64,
        ));
        points.push(HistogramDataPoint {
            attributes: vec![kv("http.route", route)],
            start_time_unix_nano: start,
            time_unix_nano: t,
            count,
            sum: Some(sum),
            bucket_counts: counts,
            explicit_bounds: BOUNDS.to_vec(),
            exemplars: vec![],
            flags: 0,
            min: None,
            max: None,
        });
    }
    metric_of(
        "http.server.request.duration",
        "s",
        metric::Data::Histogram(Histogram {
            data_points: points,
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
        }),
    )
}

fn summary(
    n: usize,
    inst: &Instance,
    i: i64,
    start: u64,
    t: u64,
    prom: &mut PromSamples,
) -> Metric {
    let count = (i + 1) as u64 * (n as u64 + 2);
    let sum = count as f64 * 12.5;
    let quantiles: Vec<(f64, f64)> = [0.5, 0.9, 0.99]
        .iter()
        .map(|&q| (q, 10.0 * q + ((i + n as i64) % 7) as f64))
        .collect();
    for (q, v) in &quantiles {
        prom.push((
            labels(
                "rpc_latency_milliseconds",
                inst,
                &[("quantile", format!("{q}"))],
            ),
            *v,
        ));
    }
    prom.push((labels("rpc_latency_milliseconds_sum", inst, &[]), sum));
    prom.push((
        labels("rpc_latency_milliseconds_count", inst, &[]),
        count as f64,
    ));
    metric_of(
        "rpc.latency",
        "ms",
        metric::Data::Summary(Summary {
            data_points: vec![SummaryDataPoint {
                attributes: vec![],
                start_time_unix_nano: start,
                time_unix_nano: t,
                count,
                sum,
                quantile_values: quantiles
                    .iter()
                    .map(|&(quantile, value)| ValueAtQuantile { quantile, value })
                    .collect(),
                flags: 0,
            }],
        }),
    )
}

use common::prompb::{Label, Sample, TimeSeries, WriteRequest};

/// A Prometheus server of the test's own, killed when dropped.
struct Prometheus {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

async fn start_prometheus(client: &reqwest::Client) -> Prometheus {
    assert!(
        std::path::Path::new(PROMETHEUS).exists(),
        "{PROMETHEUS} is missing: install Debian's prometheus (apt-get install --no-install-recommends prometheus; scripts/test.sh does)"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(&config, "global:\n  scrape_interval: 1h\n").expect("config written");
    let port = free_port();
    let child = Command::new(PROMETHEUS)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--web.enable-remote-write-receiver")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus starts");
    let prometheus = Prometheus {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let ready = client
            .get(format!("{}/-/ready", prometheus.url))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ready {
            return prometheus;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "prometheus was not ready within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn remote_write(client: &reqwest::Client, url: &str, t_ms: i64, samples: &PromSamples) {
    let req = WriteRequest {
        timeseries: samples
            .iter()
            .map(|(labels, v)| TimeSeries {
                labels: labels
                    .iter()
                    .map(|(k, v)| Label {
                        name: k.clone(),
                        value: v.clone(),
                    })
                    .collect(),
                samples: vec![Sample {
                    value: *v,
                    timestamp: t_ms,
                }],
            })
            .collect(),
    };
    let body = snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .expect("snappy");
    let resp = client
        .post(format!("{url}/api/v1/write"))
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "snappy")
        .header("x-prometheus-remote-write-version", "0.1.0")
        .body(body)
        .send()
        .await
        .expect("remote write answered");
    let status = resp.status();
    assert!(
        status.is_success(),
        "remote write: {status} {}",
        resp.text().await.unwrap_or_default()
    );
}

async fn ask(
    client: &reqwest::Client,
    url: &str,
    path: &str,
    params: &[(&str, String)],
) -> PromResponse<QueryData> {
    let resp = client
        .post(format!("{url}{path}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            form_urlencoded::Serializer::new(String::new())
                .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())))
                .finish(),
        )
        .send()
        .await
        .expect("query answered");
    let text = resp.text().await.expect("body");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path} {params:?}: {e}: {text}"))
}

fn close(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

fn pairs_close(a: &[SamplePair], b: &[SamplePair]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.0 == y.0 && close(x.value(), y.value()))
}

/// Whether two answers agree: the same series (in any order) with close values.
fn same(ours: &QueryData, theirs: &QueryData) -> bool {
    match (ours, theirs) {
        (QueryData::Scalar(a), QueryData::Scalar(b)) => {
            pairs_close(std::slice::from_ref(a), std::slice::from_ref(b))
        }
        (QueryData::Vector(a), QueryData::Vector(b)) => {
            let mut a = a.clone();
            let mut b = b.clone();
            a.sort_by(|x, y| x.metric.cmp(&y.metric));
            b.sort_by(|x, y| x.metric.cmp(&y.metric));
            a.len() == b.len()
                && a.iter().zip(&b).all(|(x, y)| {
                    x.metric == y.metric
                        && pairs_close(
                            std::slice::from_ref(&x.value),
                            std::slice::from_ref(&y.value),
                        )
                })
        }
        (QueryData::Matrix(a), QueryData::Matrix(b)) => {
            let mut a = a.clone();
            let mut b = b.clone();
            a.sort_by(|x, y| x.metric.cmp(&y.metric));
            b.sort_by(|x, y| x.metric.cmp(&y.metric));
            a.len() == b.len()
                && a.iter()
                    .zip(&b)
                    .all(|(x, y)| x.metric == y.metric && pairs_close(&x.values, &y.values))
        }
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promql_answers_match_prometheus() {
    let client = reqwest::Client::new();
    let prometheus = start_prometheus(&client).await;
    let gauntlet = common::TestCollector::start().await;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let base = (now_ms - (STEPS + 2) * STEP_MS) / STEP_MS * STEP_MS;
    for i in 0..STEPS {
        let (otlp, prom) = step(base, i);
        remote_write(&client, &prometheus.url, base + i * STEP_MS, &prom).await;
        let resp = client
            .post(gauntlet.otlp_http("/v1/metrics"))
            .header("content-type", "application/x-protobuf")
            .body(otlp.encode_to_vec())
            .send()
            .await
            .expect("OTLP answered");
        assert_eq!(
            resp.status(),
            200,
            "{}",
            resp.text().await.unwrap_or_default()
        );
    }
    let ours = format!("http://{}", gauntlet.collector.addrs.http);
    let seconds = |ms: i64| format!("{:.3}", ms as f64 / 1000.0);
    let last = base + (STEPS - 1) * STEP_MS;
    // The end, inside the gap, just after the gauge went stale, and between two steps.
    let instants = [
        last,
        base + 70 * STEP_MS,
        base + 121 * STEP_MS + 7_000,
        base + 40 * STEP_MS + 3_500,
    ];
    let mut mismatches = Vec::new();
    let mut compared = 0;
    for q in QUERIES {
        for t in instants {
            let params = [("query", q.to_string()), ("time", seconds(t))];
            let (a, b) = (
                ask(&client, &ours, "/api/v1/query", &params).await,
                ask(&client, &prometheus.url, "/api/v1/query", &params).await,
            );
            compared += 1;
            match (&a, &b) {
                (PromResponse::Success { data: x, .. }, PromResponse::Success { data: y, .. })
                    if same(x, y) => {}
                _ => mismatches.push(format!(
                    "instant {q} @{t}:\n  gauntlet   {a:?}\n  prometheus {b:?}"
                )),
            }
        }
        let params = [
            ("query", q.to_string()),
            ("start", seconds(base + 10 * STEP_MS)),
            ("end", seconds(last)),
            ("step", "30s".to_string()),
        ];
        let (a, b) = (
            ask(&client, &ours, "/api/v1/query_range", &params).await,
            ask(&client, &prometheus.url, "/api/v1/query_range", &params).await,
        );
        compared += 1;
        // An empty answer agrees trivially: every query must select something somewhere.
        if matches!(&b, PromResponse::Success { data: QueryData::Matrix(m), .. } if m.is_empty()) {
            mismatches.push(format!(
                "range {q}: Prometheus answers nothing; the data does not exercise it"
            ));
        }
        match (&a, &b) {
            (PromResponse::Success { data: x, .. }, PromResponse::Success { data: y, .. })
                if same(x, y) => {}
            _ => mismatches.push(format!(
                "range {q}:\n  gauntlet   {a:?}\n  prometheus {b:?}"
            )),
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {compared} answers differ from Prometheus':\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    println!(
        "{compared} answers ({} queries) equal to Prometheus 2.42's",
        QUERIES.len()
    );
    promtool_agrees(&ours, &prometheus.url, base, last);
    gauntlet.shutdown().await;
}

/// `promtool query` reads Gauntlet's answers as it reads Prometheus': the same text out.
fn promtool_agrees(ours: &str, theirs: &str, base: i64, last: i64) {
    let run = |url: &str, args: &[String]| -> String {
        let out = Command::new(PROMTOOL)
            .args(args.iter().map(String::as_str).take(2))
            .arg(url)
            .args(args.iter().map(String::as_str).skip(2))
            .output()
            .expect("promtool runs");
        assert!(
            out.status.success(),
            "promtool {args:?} against {url}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        lines.sort();
        lines.join("\n")
    };
    let s = |x: &str| x.to_string();
    let at = format!("{:.3}", last as f64 / 1000.0);
    let cases: Vec<Vec<String>> = vec![
        vec![
            s("query"),
            s("instant"),
            s("sum by (job) (app_requests_total)"),
            format!("--time={at}"),
        ],
        vec![
            s("query"),
            s("instant"),
            s("http_server_request_duration_seconds_bucket{job=\"cart\",http_route=\"/pay\"}"),
            format!("--time={at}"),
        ],
        vec![
            s("query"),
            s("range"),
            s("count by (job) (queue_size_bytes)"),
            format!("--start={:.3}", (base + 100 * 15_000) as f64 / 1000.0),
            format!("--end={at}"),
            s("--step=1m"),
        ],
        vec![
            s("query"),
            s("series"),
            s("--match=pool_connections_in_use"),
        ],
        vec![s("query"), s("labels"), s("job")],
    ];
    for args in cases {
        let (a, b) = (run(ours, &args), run(theirs, &args));
        assert!(
            !b.is_empty(),
            "promtool {args:?} against Prometheus printed nothing"
        );
        assert_eq!(a, b, "promtool {args:?}");
    }
}
