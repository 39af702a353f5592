//! `gauntlet collector`: flags → [`gauntlet_collector::Config`], then run until stopped.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use std::io::Write;

use anyhow::Context;
use clap::{Args, ValueEnum};
use gauntlet_collector::query::access::AuthToken;
use gauntlet_collector::store::StoreConfig;
use gauntlet_collector::store::clickhouse::ClickHouseConfig;
use gauntlet_collector::store::sqlite::{SegmentLimits, SqliteConfig, Sync};
use gauntlet_collector::{Collector, Config};
use gauntlet_dashboards::links;

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  gauntlet collector
  gauntlet collector --data-dir /var/lib/gauntlet --retention 7d --max-disk 50GiB
  gauntlet collector --otlp-http 0.0.0.0:4318 --http 0.0.0.0:16686   # listen beyond loopback
  GAUNTLET_CLICKHOUSE_PASSWORD=... gauntlet collector --store clickhouse \
      --clickhouse-url http://127.0.0.1:8123 --clickhouse-database otel --clickhouse-user gauntlet

Send telemetry with OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 (HTTP) or
http://127.0.0.1:4317 (gRPC); look at it in a browser at http://127.0.0.1:16686/search (the
UI), or query http://127.0.0.1:16686/api/services.")]
pub struct CollectorArgs {
    /// Where to listen for OTLP/gRPC.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:4317")]
    otlp_grpc: SocketAddr,
    /// Where to listen for OTLP/HTTP (protobuf and JSON on /v1/traces and /v1/logs).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:4318")]
    otlp_http: SocketAddr,
    /// Where to listen for Zipkin v2 JSON (POST /api/v2/spans); `off` to disable.
    #[arg(long, value_name = "ADDR|off", default_value = "127.0.0.1:9411", value_parser = parse_optional_addr)]
    zipkin: OrOff<SocketAddr>,
    /// Where to serve the query API (Jaeger-compatible /api/..., logs, correlations, /metrics).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:16686")]
    http: SocketAddr,
    /// Which store keeps the data.
    #[arg(long, value_enum, default_value_t = StoreArg::Sqlite)]
    store: StoreArg,
    /// ClickHouse's HTTP interface (with --store clickhouse).
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8123")]
    clickhouse_url: String,
    /// The database of the OpenTelemetry tables (created with them when missing).
    #[arg(long, value_name = "NAME", default_value = "otel")]
    clickhouse_database: String,
    /// The ClickHouse user; its password comes from GAUNTLET_CLICKHOUSE_PASSWORD, never from
    /// the command line (which every user of the machine can read).
    #[arg(long, value_name = "USER")]
    clickhouse_user: Option<String>,
    /// Create replicated tables ON CLUSTER this cluster, with distributed tables in front
    /// sharded by trace ID (see the README for a 3-node cluster with ClickHouse Keeper).
    #[arg(long, value_name = "CLUSTER")]
    clickhouse_cluster: Option<String>,
    /// Exports are acknowledged once written to a spool under --data-dir (a write-ahead log)
    /// and inserted into ClickHouse from it, in order and in large inserts; while ClickHouse
    /// is down they wait there. Past this size, exports are refused (503 with Retry-After)
    /// until it drains.
    #[arg(long, value_name = "SIZE", default_value = "1GiB", value_parser = parse_size)]
    clickhouse_spool_max: u64,
    /// Directory of the embedded SQLite store (with --store clickhouse: of the spool);
    /// created if missing.
    #[arg(long, value_name = "DIR", default_value = "gauntlet-data")]
    data_dir: PathBuf,
    /// Largest request accepted, before and after decompression (e.g. 64MiB).
    #[arg(long, value_name = "SIZE", default_value = "64MiB", value_parser = parse_size)]
    max_body: u64,
    /// Request bodies held in memory at once, over every receiver; past it, exports are
    /// refused with a retry hint (HTTP 429, gRPC UNAVAILABLE) until memory frees.
    #[arg(long, value_name = "SIZE", default_value = "256MiB", value_parser = parse_size)]
    max_inflight: u64,
    /// Delete data received longer ago than this (e.g. 72h, 7d); `off` keeps it forever.
    #[arg(long, value_name = "DURATION|off", default_value = "72h", value_parser = parse_optional_duration)]
    retention: OrOff<Duration>,
    /// Delete the oldest data while the store is larger than this (e.g. 10GiB); `off` for no limit.
    #[arg(long, value_name = "SIZE|off", default_value = "10GiB", value_parser = parse_optional_size)]
    max_disk: OrOff<u64>,
    /// How often retention runs.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    retention_interval: Duration,
    /// Series one PromQL query may select (each histogram bucket counts as one, as in
    /// Prometheus); a query past it is refused with a message saying so.
    #[arg(long, value_name = "N", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    max_query_series: u64,
    /// Stored metric points one PromQL query may read; past it the query is refused, so a
    /// query's memory stays bounded.
    #[arg(long, value_name = "N", default_value_t = 5_000_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    max_query_points: u64,
    /// Commit durability: `normal` survives a crashed or killed process; `full` also
    /// survives power loss, at a cost in ingest rate.
    #[arg(long, value_enum, default_value_t = SyncArg::Normal)]
    sync: SyncArg,
    /// Spans and logs a segment file takes before it is sealed (its trace-ID and
    /// correlation-ID lookups written into it in key order, on another thread) and the next
    /// one begins.
    /// The open segment finds IDs through maps in memory: about 60 bytes per trace it holds,
    /// twice that while the previous one is being sealed. Smaller segments use less memory;
    /// each lookup then visits more files.
    #[arg(long, value_name = "ROWS", default_value_t = 1_000_000,
          value_parser = clap::value_parser!(u64).range(1_000..))]
    segment_rows: u64,
    /// A browser origin allowed to export to OTLP/HTTP (the OpenTelemetry JS SDK in a web
    /// page): its CORS preflights and exports are answered for it. Repeatable;
    /// `scheme://host[:port]` as the browser sends it, or `*` for any. None by default.
    #[arg(long, value_name = "ORIGIN")]
    cors_origin: Vec<gauntlet_collector::otlp::http::CorsOrigin>,
    /// A bearer token the query API requires (`Authorization: Bearer TOKEN`); /health and
    /// /ready stay open. Prefer the environment variable: a command line is visible to
    /// every user of the machine.
    #[arg(long, value_name = "TOKEN", env = "GAUNTLET_AUTH_TOKEN", hide_env_values = true,
          value_parser = parse_token)]
    auth_token: Option<AuthToken>,
    /// A bearer token every OTLP (HTTP and gRPC) and Zipkin export must carry
    /// (`Authorization: Bearer TOKEN`; the OpenTelemetry SDKs send it from
    /// OTEL_EXPORTER_OTLP_HEADERS). Without it a receiver off loopback takes data from anyone.
    #[arg(long, value_name = "TOKEN", env = "GAUNTLET_INGEST_TOKEN", hide_env_values = true,
          value_parser = parse_token)]
    ingest_token: Option<AuthToken>,
    /// Serve the query API on a non-loopback --http address without a token. Without this
    /// (or a token) the collector refuses to: anyone who reaches it could read everything.
    #[arg(long)]
    insecure_ui: bool,
}

fn parse_token(s: &str) -> Result<AuthToken, String> {
    AuthToken::new(s)
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum StoreArg {
    /// SQLite files under --data-dir: nothing to install, one machine.
    Sqlite,
    /// A ClickHouse server or cluster (--clickhouse-*), in the OpenTelemetry Collector's
    /// schema; --retention becomes the tables' TTL on the data's own timestamps.
    Clickhouse,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SyncArg {
    Normal,
    Full,
}

/// A flag value that may also be `off`.
#[derive(Debug, Clone, Copy)]
struct OrOff<T>(Option<T>);

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (use forms like 30s, 72h, 7d)"))
}

fn parse_optional_duration(s: &str) -> Result<OrOff<Duration>, String> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(OrOff(None));
    }
    parse_duration(s).map(|d| OrOff(Some(d)))
}

fn parse_size(s: &str) -> Result<u64, String> {
    s.parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| format!("{e} (use forms like 512KiB, 64MiB, 10GiB)"))
}

fn parse_optional_size(s: &str) -> Result<OrOff<u64>, String> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(OrOff(None));
    }
    parse_size(s).map(|n| OrOff(Some(n)))
}

fn parse_optional_addr(s: &str) -> Result<OrOff<SocketAddr>, String> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(OrOff(None));
    }
    s.parse()
        .map(|a| OrOff(Some(a)))
        .map_err(|e| format!("{e} (use HOST:PORT like 127.0.0.1:9411, or off)"))
}

pub async fn run(args: CollectorArgs) -> anyhow::Result<()> {
    let config = Config {
        otlp_grpc: args.otlp_grpc,
        otlp_http: args.otlp_http,
        zipkin: args.zipkin.0,
        http: args.http,
        store: match args.store {
            StoreArg::Clickhouse => StoreConfig::ClickHouse(ClickHouseConfig {
                url: args.clickhouse_url.clone(),
                database: args.clickhouse_database.clone(),
                user: args.clickhouse_user.clone(),
                password: std::env::var("GAUNTLET_CLICKHOUSE_PASSWORD").ok(),
                cluster: args.clickhouse_cluster.clone(),
                ttl: args.retention.0,
                spool_dir: Some(args.data_dir.join("clickhouse-spool")),
                spool_max_bytes: args.clickhouse_spool_max,
                edge_passes: true,
            }),
            StoreArg::Sqlite => StoreConfig::Sqlite(SqliteConfig {
                sync: match args.sync {
                    SyncArg::Normal => Sync::Normal,
                    SyncArg::Full => Sync::Full,
                },
                segments: SegmentLimits {
                    rows: args.segment_rows,
                    // Retention by disk use drops whole segments: keep each a small share.
                    bytes: args
                        .max_disk
                        .0
                        .map_or(1 << 30, |max| (max / 8).clamp(1 << 20, 1 << 30)),
                },
                ..SqliteConfig::new(args.data_dir)
            }),
        },
        max_body: usize::try_from(args.max_body).context("--max-body is too large")?,
        max_inflight: usize::try_from(args.max_inflight).context("--max-inflight is too large")?,
        retention: args.retention.0,
        max_disk: args.max_disk.0,
        retention_interval: args.retention_interval,
        cors_origins: args.cors_origin,
        auth_token: args.auth_token,
        ingest_token: args.ingest_token,
        insecure_ui: args.insecure_ui,
        promql: gauntlet_collector::promql::Limits {
            max_series: usize::try_from(args.max_query_series)
                .context("--max-query-series is too large")?,
            max_points: usize::try_from(args.max_query_points)
                .context("--max-query-points is too large")?,
        },
        ..Config::with_defaults()
    };
    let collector = Collector::start(config).await?;
    let a = collector.addrs;
    let mut banner = format!(
        "gauntlet collector is running\n  OTLP/gRPC   {}\n  OTLP/HTTP   http://{}   (OTEL_EXPORTER_OTLP_ENDPOINT)\n",
        a.otlp_grpc, a.otlp_http
    );
    if let Some(z) = a.zipkin {
        banner += &format!("  Zipkin      http://{z}/api/v2/spans\n");
    }
    let base = format!("http://{}", a.http);
    banner += &format!(
        "  UI          {}   (service map: {})\n  Query API   {base}/api/services\n  PromQL      {base}/api/v1/query   (Prometheus' HTTP API: promtool, Grafana)\n  Metrics     {base}/metrics   (the collector's own)\nPress Ctrl-C to stop.\n",
        links::search(&base),
        links::map(&base),
    );
    // Not println!: a closed stdout (e.g. `| head`) must not take the collector down.
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(banner.as_bytes()).and_then(|()| out.flush());
    drop(out);
    collector.run_until(super::stop_signal()).await;
    Ok(())
}
