//! The metrics benchmark `scripts/bench-metrics.sh` drives: the same histograms to Gauntlet
//! (OTLP/HTTP protobuf) and to Prometheus (remote write), and the same PromQL to both.
//!
//! Subcommands (each prints `key=value` lines the script reads):
//! - `ingest gauntlet|prometheus URL SERVICES SERIES_PER_SERVICE ROUNDS CONNECTIONS`: every
//!   series a cumulative histogram of 10 bounds (13 Prometheus samples a point), one point per
//!   series every 10 s of data time, ending now; a request per service per round (what an
//!   SDK's periodic export sends), the services of a round in parallel over CONNECTIONS.
//! - `backfill-otlp URL SERIES HOURS RESOLUTION_S` and `backfill-openmetrics FILE SERIES
//!   HOURS RESOLUTION_S`: the same history for both (Prometheus through `promtool tsdb
//!   create-blocks-from openmetrics`).
//! - `query URL QUERY RANGE_S STEP_S RUNS`: a range query ending now, RUNS times after a
//!   warm-up: p50 and p99 in ms, and the series answered.
//!
//! Loopback only; every phase ends by itself.

use std::io::Write;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Histogram, HistogramDataPoint, Metric, ResourceMetrics, ScopeMetrics,
    metric,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

const BOUNDS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];
const NAME: &str = "http_server_request_duration_seconds";

/// One series: its service and point attributes.
#[derive(Clone)]
struct Series {
    service: String,
    route: String,
    method: &'static str,
    status: &'static str,
}

fn series_of(services: usize, per_service: usize) -> Vec<Vec<Series>> {
    (0..services)
        .map(|s| {
            (0..per_service)
                .map(|i| Series {
                    service: format!("svc-{s:03}"),
                    route: format!("/api/r{:03}", i / 4),
                    method: if i % 2 == 0 { "GET" } else { "POST" },
                    status: if (i / 2) % 2 == 0 { "200" } else { "500" },
                })
                .collect()
        })
        .collect()
}

/// The histogram's per-bucket counts after `round` rounds (deterministic, different per
/// series and bucket), and its sum.
fn counts(series: usize, round: u64) -> (Vec<u64>, f64) {
    let mut counts = vec![0u64; BOUNDS.len() + 1];
    let mut sum = 0.0;
    for (b, c) in counts.iter_mut().enumerate() {
        let per_round = ((series * 7 + b * 13) % 5) as u64;
        *c = per_round * (round + 1);
        let mid = BOUNDS.get(b).map_or(7.5, |x| x * 0.75);
        sum += *c as f64 * mid;
    }
    (counts, sum)
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

/// One OTLP request: a service's series, at the given rounds' times.
fn otlp_request(service: &[Series], first: usize, times_ns: &[(u64, u64)]) -> Vec<u8> {
    let mut points = Vec::with_capacity(service.len() * times_ns.len());
    for (i, s) in service.iter().enumerate() {
        for &(round, t) in times_ns {
            let (bucket_counts, sum) = counts(first + i, round);
            points.push(HistogramDataPoint {
                attributes: vec![
                    kv("http.route", &s.route),
                    kv("http.request.method", s.method),
                    kv("http.response.status_code", s.status),
                ],
                start_time_unix_nano: 1,
                time_unix_nano: t,
                count: bucket_counts.iter().sum(),
                sum: Some(sum),
                bucket_counts,
                explicit_bounds: BOUNDS.to_vec(),
                exemplars: vec![],
                flags: 0,
                min: None,
                max: None,
            });
        }
    }
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![kv("service.name", &service[0].service)],
                dropped_attributes_count: 0,
                entity_refs: vec![],
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: None,
                metrics: vec![Metric {
                    name: "http.server.request.duration".into(),
                    description: String::new(),
                    unit: "s".into(),
                    metadata: vec![],
                    data: Some(metric::Data::Histogram(Histogram {
                        data_points: points,
                        aggregation_temporality: AggregationTemporality::Cumulative as i32,
                    })),
                }],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
    .encode_to_vec()
}

#[path = "../tests/common/prompb.rs"]
mod prompb;
use prompb::{Label, Sample, TimeSeries, WriteRequest};

/// The 13 Prometheus series of one histogram series, each with its (name, labels).
fn prom_series(s: &Series) -> Vec<(String, Vec<(String, String)>)> {
    let base = vec![
        ("http_request_method".to_string(), s.method.to_string()),
        (
            "http_response_status_code".to_string(),
            s.status.to_string(),
        ),
        ("http_route".to_string(), s.route.clone()),
        ("job".to_string(), s.service.clone()),
    ];
    let mut out = Vec::with_capacity(13);
    for b in 0..=BOUNDS.len() {
        let mut l = base.clone();
        let le = BOUNDS.get(b).map_or("+Inf".to_string(), |x| format!("{x}"));
        l.push(("le".into(), le));
        out.push((format!("{NAME}_bucket"), l));
    }
    out.push((format!("{NAME}_sum"), base.clone()));
    out.push((format!("{NAME}_count"), base));
    out
}

/// The 13 sample values of a histogram point, in [`prom_series`]' order.
fn prom_values(series: usize, round: u64) -> Vec<f64> {
    let (c, sum) = counts(series, round);
    let mut out = Vec::with_capacity(13);
    let mut cumulative = 0;
    for n in &c {
        cumulative += n;
        out.push(cumulative as f64);
    }
    out.push(sum);
    out.push(cumulative as f64);
    out
}

fn remote_write_request(service: &[Series], first: usize, round: u64, t_ms: i64) -> Vec<u8> {
    let mut timeseries = Vec::with_capacity(service.len() * 13);
    for (i, s) in service.iter().enumerate() {
        for ((name, labels), value) in prom_series(s)
            .into_iter()
            .zip(prom_values(first + i, round))
        {
            let mut l = vec![Label {
                name: "__name__".into(),
                value: name,
            }];
            l.extend(
                labels
                    .into_iter()
                    .map(|(name, value)| Label { name, value }),
            );
            l.sort_by(|a, b| a.name.cmp(&b.name));
            timeseries.push(TimeSeries {
                labels: l,
                samples: vec![Sample {
                    value,
                    timestamp: t_ms,
                }],
            });
        }
    }
    snap::raw::Encoder::new()
        .compress_vec(&WriteRequest { timeseries }.encode_to_vec())
        .unwrap_or_default()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

async fn post(client: &reqwest::Client, url: &str, body: Vec<u8>, prometheus: bool) {
    let mut req = client.post(url).body(body);
    req = if prometheus {
        req.header("content-type", "application/x-protobuf")
            .header("content-encoding", "snappy")
            .header("x-prometheus-remote-write-version", "0.1.0")
    } else {
        req.header("content-type", "application/x-protobuf")
    };
    match req.send().await {
        Ok(r) if r.status().is_success() => {}
        Ok(r) => panic!(
            "{url} answered {}: {}",
            r.status(),
            r.text().await.unwrap_or_default()
        ),
        Err(e) => panic!("{url}: {e}"),
    }
}

async fn ingest(args: &[String]) {
    let [target, url, services, per, rounds, connections] = args else {
        panic!("ingest gauntlet|prometheus URL SERVICES SERIES_PER_SERVICE ROUNDS CONNECTIONS");
    };
    let prometheus = target == "prometheus";
    let (services, per): (usize, usize) = (services.parse().expect("n"), per.parse().expect("n"));
    let rounds: u64 = rounds.parse().expect("rounds");
    let connections: usize = connections.parse().expect("connections");
    let all = series_of(services, per);
    let client = reqwest::Client::new();
    let start_ms = now_ms() - rounds as i64 * 10_000;
    let mut build = Duration::ZERO;
    let mut send = Duration::ZERO;
    for round in 0..rounds {
        let t_ms = start_ms + round as i64 * 10_000;
        let built = Instant::now();
        let bodies: Vec<Vec<u8>> = all
            .iter()
            .enumerate()
            .map(|(s, svc)| {
                if prometheus {
                    remote_write_request(svc, s * per, round, t_ms)
                } else {
                    otlp_request(svc, s * per, &[(round, t_ms as u64 * 1_000_000)])
                }
            })
            .collect();
        build += built.elapsed();
        let sent = Instant::now();
        let mut queue = bodies.into_iter();
        loop {
            let batch: Vec<Vec<u8>> = queue.by_ref().take(connections).collect();
            if batch.is_empty() {
                break;
            }
            let tasks: Vec<_> = batch
                .into_iter()
                .map(|b| {
                    let (client, url) = (client.clone(), url.clone());
                    tokio::spawn(async move { post(&client, &url, b, prometheus).await })
                })
                .collect();
            for t in tasks {
                t.await.expect("sender");
            }
        }
        send += sent.elapsed();
    }
    let points = (services * per) as u64 * rounds;
    println!("points={points}");
    println!("samples={}", points * 13);
    println!("send_seconds={:.3}", send.as_secs_f64());
    println!("build_seconds={:.3}", build.as_secs_f64());
    println!("points_per_sec={:.0}", points as f64 / send.as_secs_f64());
    println!(
        "samples_per_sec={:.0}",
        points as f64 * 13.0 / send.as_secs_f64()
    );
}

/// The query benchmark's series: `n` histograms over 8 services.
fn history_series(n: usize) -> Vec<Vec<Series>> {
    let per = n.div_ceil(8);
    series_of(8, per)
}

fn history(args: &[String]) -> (Vec<Vec<Series>>, usize, i64, u64) {
    let [series, hours, resolution] = args else {
        panic!("SERIES HOURS RESOLUTION_S");
    };
    let n: usize = series.parse().expect("series");
    let hours: i64 = hours.parse().expect("hours");
    let resolution: u64 = resolution.parse().expect("resolution");
    let rounds = (hours * 3600) as u64 / resolution;
    let first_ms = now_ms() - hours * 3_600_000;
    let all = history_series(n);
    let per = all[0].len();
    (all, per, first_ms, rounds)
}

async fn backfill_otlp(args: &[String]) {
    let (all, per, first_ms, rounds) = history(&args[1..]);
    let resolution: u64 = args[3].parse().expect("resolution");
    let client = reqwest::Client::new();
    let mut points = 0u64;
    // An hour of a service's points a request.
    let chunk = (3600 / resolution).max(1);
    for (s, svc) in all.iter().enumerate() {
        let mut round = 0;
        while round < rounds {
            let times: Vec<(u64, u64)> = (round..(round + chunk).min(rounds))
                .map(|r| (r, (first_ms as u64 + r * resolution * 1000) * 1_000_000))
                .collect();
            points += (times.len() * svc.len()) as u64;
            post(&client, &args[0], otlp_request(svc, s * per, &times), false).await;
            round += chunk;
        }
    }
    println!("points={points}");
}

fn backfill_openmetrics(args: &[String]) {
    let (all, per, first_ms, rounds) = history(&args[1..]);
    let resolution: u64 = args[3].parse().expect("resolution");
    let file = std::fs::File::create(&args[0]).expect("openmetrics file");
    let mut out = std::io::BufWriter::new(file);
    writeln!(out, "# TYPE {NAME} histogram").expect("write");
    let mut samples = 0u64;
    for (s, svc) in all.iter().enumerate() {
        for (i, series) in svc.iter().enumerate() {
            for (k, (name, labels)) in prom_series(series).into_iter().enumerate() {
                let labels: Vec<String> =
                    labels.iter().map(|(a, b)| format!("{a}=\"{b}\"")).collect();
                let labels = labels.join(",");
                for r in 0..rounds {
                    let v = prom_values(s * per + i, r)[k];
                    let t = (first_ms as u64 + r * resolution * 1000) as f64 / 1000.0;
                    writeln!(out, "{name}{{{labels}}} {v} {t:.3}").expect("write");
                    samples += 1;
                }
            }
        }
    }
    writeln!(out, "# EOF").expect("write");
    println!("samples={samples}");
}

async fn query(args: &[String]) {
    let [url, query, range_s, step_s, runs] = args else {
        panic!("query URL QUERY RANGE_S STEP_S RUNS");
    };
    let (range_s, runs): (i64, usize) =
        (range_s.parse().expect("range"), runs.parse().expect("runs"));
    let client = reqwest::Client::new();
    let mut ms = Vec::with_capacity(runs);
    let mut answered = 0;
    for i in 0..=runs {
        let end = now_ms() as f64 / 1000.0;
        let params = [
            ("query", query.clone()),
            ("start", format!("{:.3}", end - range_s as f64)),
            ("end", format!("{end:.3}")),
            ("step", step_s.clone()),
        ];
        let began = Instant::now();
        let resp = client
            .post(format!("{url}/api/v1/query_range"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())))
                    .finish(),
            )
            .send()
            .await
            .expect("query answered");
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.expect("JSON");
        let took = began.elapsed().as_secs_f64() * 1000.0;
        assert!(status.is_success(), "{query}: {body}");
        answered = body["data"]["result"].as_array().map_or(0, Vec::len);
        if i > 0 {
            ms.push(took);
        }
    }
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() as f64 * q).ceil() as usize).clamp(1, ms.len()) - 1];
    println!("p50_ms={:.1}", at(0.5));
    println!("p99_ms={:.1}", at(0.99));
    println!("series={answered}");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    match args.first().map(String::as_str) {
        Some("ingest") => ingest(&args[1..]).await,
        Some("backfill-otlp") => backfill_otlp(&args[1..]).await,
        Some("backfill-openmetrics") => backfill_openmetrics(&args[1..]),
        Some("query") => query(&args[1..]).await,
        _ => eprintln!("usage: see the top of collector/benches/metrics.rs"),
    }
}
