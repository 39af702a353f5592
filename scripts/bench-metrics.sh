#!/usr/bin/env bash
# Metrics benchmark, Gauntlet beside Debian's Prometheus 2.42 in the same run (loopback only;
# every phase ends by itself):
# - ingest: SERVICES x SERIES cumulative histograms of 10 bounds (13 Prometheus samples a
#   point), a point per series every 10 s of data time over ROUNDS rounds ending now, a request
#   per service per round; Gauntlet over OTLP/HTTP protobuf, Prometheus over remote write.
#   OTLP data points/s, Prometheus samples/s, each process's CPU-µs per data point, RSS.
# - query: QSERIES histograms (13 Prometheus series each) over 24 h at 30 s, backfilled into
#   Prometheus with `promtool tsdb create-blocks-from openmetrics` and sent to Gauntlet over
#   OTLP; range queries over 1 h (step 15 s) and 24 h (step 5 m), p50/p99 of RUNS each.
#
# Usage: bash scripts/bench-metrics.sh [SERVICES=50] [SERIES=200] [ROUNDS=60] [QSERIES=80] [RUNS=20]
set -euo pipefail
cd "$(dirname "$0")/.."
SERVICES=${1:-50}
SERIES=${2:-200}
ROUNDS=${3:-60}
QSERIES=${4:-80}
RUNS=${5:-20}
CONNECTIONS=4

[ -x /usr/bin/prometheus ] && [ -x /usr/bin/promtool ] || {
  echo "Prometheus is missing: apt-get install --no-install-recommends prometheus" >&2; exit 2; }
cargo build --release --locked --bin gauntlet
cargo bench --locked -p gauntlet-collector --bench metrics --no-run
bench() { cargo bench --locked -q -p gauntlet-collector --bench metrics -- "$@"; }

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
val() { echo "$1" | sed -n "s/^$2=//p"; }
ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_mib() { awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Starts a collector on its own data dir; sets g_pid, g_otlp, g_api.
start_gauntlet() {
  "${CARGO_TARGET_DIR:-target}"/release/gauntlet collector --data-dir "$work/$1" --retention off --max-disk off \
    --otlp-grpc 127.0.0.1:0 --otlp-http 127.0.0.1:0 --zipkin off --http 127.0.0.1:0 \
    --max-query-points 50000000 --max-query-series 100000 >"$work/$1.out" 2>"$work/$1.err" &
  g_pid=$!; pids+=("$g_pid")
  for _ in $(seq 1 100); do grep -q "Press Ctrl-C" "$work/$1.out" 2>/dev/null && break; sleep 0.1; done
  g_otlp=$(sed -n 's#.*OTLP/HTTP *\(http://[0-9.:]*\).*#\1#p' "$work/$1.out")
  g_api=$(sed -n 's#.*Query API *\(http://[0-9.:]*\)/api/services.*#\1#p' "$work/$1.out")
  [ -n "$g_otlp" ] || { cat "$work/$1.err"; exit 1; }
}
# Starts Prometheus on a data dir; sets p_pid, p_url.
start_prometheus() {
  printf 'global:\n  scrape_interval: 1h\n' >"$work/prometheus.yml"
  local port; port=$(free_port)
  /usr/bin/prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/$1" \
    --storage.tsdb.retention.time=30d --web.listen-address="127.0.0.1:$port" \
    --web.enable-remote-write-receiver >"$work/$1.log" 2>&1 &
  p_pid=$!; pids+=("$p_pid")
  p_url="http://127.0.0.1:$port"
  for _ in $(seq 1 300); do curl -sf "$p_url/-/ready" >/dev/null 2>&1 && return; sleep 0.1; done
  echo "prometheus did not start:"; tail "$work/$1.log"; exit 1
}

echo "== ingest: $SERVICES services x $SERIES histograms, $ROUNDS rounds, $CONNECTIONS connections"
start_gauntlet gauntlet-ingest
before=$(cpu "$g_pid")
g=$(bench ingest gauntlet "$g_otlp/v1/metrics" "$SERVICES" "$SERIES" "$ROUNDS" "$CONNECTIONS")
g_cpu=$(awk -v a="$before" -v b="$(cpu "$g_pid")" -v t="$ticks" 'BEGIN {print (b - a) / t}')
g_rss=$(rss_mib "$g_pid")
kill "$g_pid"; wait "$g_pid" 2>/dev/null || true
g_bytes=$(du -sb "$work/gauntlet-ingest" | cut -f1)
start_prometheus prometheus-ingest
before=$(cpu "$p_pid")
p=$(bench ingest prometheus "$p_url/api/v1/write" "$SERVICES" "$SERIES" "$ROUNDS" "$CONNECTIONS")
p_cpu=$(awk -v a="$before" -v b="$(cpu "$p_pid")" -v t="$ticks" 'BEGIN {print (b - a) / t}')
p_rss=$(rss_mib "$p_pid")
kill "$p_pid"; wait "$p_pid" 2>/dev/null || true

points=$(val "$g" points)
printf "%-11s %12s %13s %13s %9s\n" "" "points/s" "samples/s" "CPU-µs/point" "RSS MiB"
printf "%-11s %12s %13s %13.1f %9s\n" gauntlet "$(val "$g" points_per_sec)" "$(val "$g" samples_per_sec)" \
  "$(awk -v c="$g_cpu" -v n="$points" 'BEGIN {print c * 1e6 / n}')" "$g_rss"
printf "%-11s %12s %13s %13.1f %9s\n" prometheus "$(val "$p" points_per_sec)" "$(val "$p" samples_per_sec)" \
  "$(awk -v c="$p_cpu" -v n="$points" 'BEGIN {print c * 1e6 / n}')" "$p_rss"
echo "ratio (gauntlet / prometheus samples/s): $(awk -v a="$(val "$g" samples_per_sec)" -v b="$(val "$p" samples_per_sec)" 'BEGIN {printf "%.2f", a / b}')"
echo "gauntlet bytes per point on disk: $(awk -v b="$g_bytes" -v n="$points" 'BEGIN {printf "%.0f", b / n}')"

echo "== query: $QSERIES histograms ($((QSERIES * 13)) Prometheus series) over 24 h at 30 s"
bench backfill-openmetrics "$work/history.om" "$QSERIES" 24 30 >/dev/null
/usr/bin/promtool tsdb create-blocks-from openmetrics "$work/history.om" "$work/prometheus-query" >/dev/null
rm -f "$work/history.om"
start_prometheus prometheus-query
start_gauntlet gauntlet-query
bench backfill-otlp "$g_otlp/v1/metrics" "$QSERIES" 24 30 >/dev/null
printf "%-70s %6s %18s %18s\n" query range "gauntlet p50/p99" "prometheus p50/p99"
for q in 'sum by (job) (rate(http_server_request_duration_seconds_count[1m]))' \
         'histogram_quantile(0.99, sum by (le) (rate(http_server_request_duration_seconds_bucket[5m])))'; do
  for r in "3600 15" "86400 300"; do
    set -- $r
    a=$(bench query "$g_api" "$q" "$1" "$2" "$RUNS")
    b=$(bench query "$p_url" "$q" "$1" "$2" "$RUNS")
    [ "$(val "$a" series)" = "$(val "$b" series)" ] || echo "  (series differ: gauntlet $(val "$a" series), prometheus $(val "$b" series))"
    printf "%-70s %6s %18s %18s\n" "${q:0:70}" "$(( $1 / 3600 ))h" "$(val "$a" p50_ms)/$(val "$a" p99_ms) ms" \
      "$(val "$b" p50_ms)/$(val "$b" p99_ms) ms"
  done
done
