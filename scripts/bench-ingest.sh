#!/usr/bin/env bash
# OTLP/HTTP protobuf ingest benchmark, per request shape: acknowledged (durable) spans/s, the
# collector's CPU-µs per span and peak RSS, bytes per span on disk, against the decode-only
# and store-only limits measured in the same run. With --grow N: ingest until N spans are
# stored, printing the rate per tenth, then trace-by-ID, correlation and search latencies at
# that size. With --logs N: log exports instead (512 records a request, the shape's records per
# trace) until N logs are stored, then log query latencies (by trace, correlation, service,
# body text, severity). With --rollups N: N spans of the realistic shape whose start times
# cover 24 hours, then RED over the last 1, 6 and 24 hours from the rollups (a step of whole
# 10 s buckets) and from the spans (a step one second longer), and the dependencies (what
# the service map draws) over the same windows, p50/p99 of 20 each. Without
# --grow, each shape's blast also goes to rotel (PyPI, blackhole exporter) in the same run.
# Loopback only; every phase ends by itself.
#
# Usage: bash scripts/bench-ingest.sh [--shape friendly|realistic|worst|all] [--grow SPANS]
#                                     [--logs LOGS] [--rollups SPANS] [SECONDS=20] [CONNECTIONS=4]
# Shapes (512 spans a request, fresh random trace and correlation IDs every pair of requests:
# the second of a pair is the next service's half of the first's traces, called by them):
#   friendly  32 traces x 16 spans    realistic  128 traces x 4 spans    worst  512 x 1
set -euo pipefail
cd "$(dirname "$0")/.."

SHAPE=all
GROW=""
LOGS=""
ROLLUPS=""
POSITIONAL=()
while [ $# -gt 0 ]; do
  case "$1" in
    --shape) SHAPE=$2; shift 2 ;;
    --grow) GROW=$2; shift 2 ;;
    --logs) LOGS=$2; shift 2 ;;
    --rollups) ROLLUPS=$2; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) POSITIONAL+=("$1"); shift ;;
  esac
done
SECONDS_TO_RUN=${POSITIONAL[0]:-20}
CONNECTIONS=${POSITIONAL[1]:-4}
case "$SHAPE" in
  all) SHAPES=(friendly realistic worst) ;;
  friendly|realistic|worst) SHAPES=("$SHAPE") ;;
  *) echo "--shape $SHAPE: use friendly, realistic, worst or all" >&2; exit 2 ;;
esac
if [ -n "$GROW" ] && ! [[ "$GROW" =~ ^[0-9]+$ ]]; then
  echo "--grow $GROW: a number of spans, e.g. 50000000" >&2
  exit 2
fi
if [ -n "$ROLLUPS" ] && ! [[ "$ROLLUPS" =~ ^[0-9]+$ ]]; then
  echo "--rollups $ROLLUPS: a number of spans, e.g. 50000000" >&2
  exit 2
fi
if [ -n "$LOGS" ] && ! [[ "$LOGS" =~ ^[0-9]+$ ]]; then
  echo "--logs $LOGS: a number of log records, e.g. 10000000" >&2
  exit 2
fi

cargo build --release --locked --bin gauntlet
cargo bench --locked -p gauntlet-collector --bench ingest --no-run
bench() { cargo bench --locked -q -p gauntlet-collector --bench ingest -- "$@"; }

work=$(mktemp -d)
collector_pid=""
stop_collector() {
  if [ -n "$collector_pid" ]; then
    kill "$collector_pid" 2>/dev/null && wait "$collector_pid" 2>/dev/null || true
    collector_pid=""
  fi
}
cleanup() { stop_collector; rm -rf "$work"; }
trap cleanup EXIT

val() { echo "$1" | sed -n "s/^$2=//p"; }
summary=()

# A fresh collector on ephemeral loopback ports: sets collector_pid, otlp and api.
start_collector() {
  rm -rf "$work/data"
  "${CARGO_TARGET_DIR:-target}"/release/gauntlet collector --data-dir "$work/data" --retention off --max-disk off \
    --otlp-grpc 127.0.0.1:0 --otlp-http 127.0.0.1:0 --zipkin off --http 127.0.0.1:0 \
    >"$work/out" 2>"$work/err" &
  collector_pid=$!
  for _ in $(seq 1 100); do
    grep -q "Press Ctrl-C" "$work/out" 2>/dev/null && break
    sleep 0.1
  done
  otlp=$(sed -n 's#.*OTLP/HTTP *\(http://[0-9.:]*\).*#\1#p' "$work/out")
  api=$(sed -n 's#.*Query API *\(http://[0-9.:]*\)/api/services.*#\1#p' "$work/out")
  [ -n "$otlp" ] && [ -n "$api" ] || { echo "collector did not start:"; cat "$work/err"; exit 1; }
}
ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/${1:-$collector_pid}/stat"; }

# The same-run peer: rotel (a Rust OpenTelemetry collector, from PyPI into a temporary
# virtualenv) with its blackhole exporter, taking the same blast on loopback.
ROTEL_VERSION=0.0.1a15
rotel_bin=""
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
rotel_blast() { # shape → "spans/s CPU-µs/span", or "- -" when rotel cannot be had
  if [ -z "$rotel_bin" ]; then
    python3 -m venv "$work/rotel" >/dev/null && "$work/rotel/bin/pip" install -q "rotel==$ROTEL_VERSION" >&2 \
      && rotel_bin=$(find "$work/rotel" -name rotel-agent -type f | head -1)
    [ -n "$rotel_bin" ] || { echo "- -"; return; }
  fi
  local port gport pid out c0 c1
  port=$(free_port); gport=$(free_port)
  "$rotel_bin" start --exporter blackhole --otlp-http-endpoint "127.0.0.1:$port" \
    --otlp-grpc-endpoint "127.0.0.1:$gport" >"$work/rotel.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  c0=$(cpu "$pid")
  out=$(bench blast "$1" "http://127.0.0.1:$port/v1/traces" "$CONNECTIONS" "$SECONDS_TO_RUN")
  c1=$(cpu "$pid")
  kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  awk -v r="$(val "$out" acked_spans_per_sec)" -v n="$(val "$out" acked_spans)" -v a="$c0" -v b="$c1" -v t="$ticks" \
    'BEGIN { if (n > 0) printf "%d %.2f", r, (b - a) / t * 1e6 / n; else print "- -" }'
}
# Shows each line as it comes (through this shell's own stderr: `tee /dev/stderr` would reopen
# a redirected log and write over it) and keeps it for the summary.
shown() { while IFS= read -r line; do echo "$line" >&2; echo "$line"; done; }

if [ -n "$ROLLUPS" ]; then
  start_collector
  cpu_before=$(cpu)
  echo "== realistic: $ROLLUPS spans over 24 hours of start times, ${CONNECTIONS} connections"
  run=$(bench grow realistic "$otlp/v1/traces" "$api" "$ROLLUPS" "$CONNECTIONS" \
    "$((ROLLUPS / 10))" 86400 | shown)
  cpu_after=$(cpu)
  echo "== RED over the last 1, 6 and 24 hours: rollups, and spans; then the dependencies"
  red=$(bench red realistic "$api" 86400 | shown)
  rss_kib=$(awk '/VmHWM/ {print $2}' "/proc/$collector_pid/status")
  stop_collector
  acked=$(val "$run" acked_spans)
  echo "== results"
  awk -v rate="$(val "$run" acked_spans_per_sec)" -v acked="$acked" -v rss="$rss_kib" \
      -v cpu="$(awk -v a="$cpu_before" -v b="$cpu_after" -v t="$ticks" 'BEGIN {print (b - a) / t}')" \
      -v bytes="$(du -sb "$work/data" | cut -f1)" 'BEGIN {
    printf "ingest: %d spans/s, %d spans, %.2f CPU-µs/span, %.0f MiB RSS, %.0f B/span\n", rate, acked,
      cpu * 1e6 / acked, rss / 1024, bytes / acked
  }'
  echo "$red"
  exit 0
fi

if [ -n "$LOGS" ]; then
  for shape in "${SHAPES[@]}"; do
    start_collector
    cpu_before=$(cpu)
    echo "== $shape logs: growing the store to $LOGS logs over ${CONNECTIONS} connections"
    run=$(bench logs "$shape" "$otlp/v1/logs" "$api" "$LOGS" "$CONNECTIONS" | shown)
    cpu_after=$(cpu)
    rss_kib=$(awk '/VmHWM/ {print $2}' "/proc/$collector_pid/status")
    stop_collector
    store_bytes=$(du -sb "$work/data" | cut -f1)
    acked=$(val "$run" acked_logs)
    line=$(awk -v shape="$shape" -v rate="$(val "$run" acked_logs_per_sec)" -v acked="$acked" \
        -v cpu="$(awk -v a="$cpu_before" -v b="$cpu_after" -v t="$ticks" 'BEGIN {print (b - a) / t}')" \
        -v rss="$rss_kib" -v bytes="$store_bytes" 'BEGIN {
      printf "%-10s %10d %12d %9.2f %9.1f %9.0f", shape, rate, acked, cpu * 1e6 / acked, rss / 1024,
        bytes / acked
    }')
    for q in trace correlation service text errors; do
      line="$line $(printf '%7s/%-7s' "$(val "$run" "logs_by_${q}_p50_ms")" "$(val "$run" "logs_by_${q}_p99_ms")")"
    done
    summary+=("$line")
  done
  echo "== results (acked = OTLP/HTTP protobuf log records acknowledged, i.e. committed; query p50/p99 ms)"
  printf "%-10s %10s %12s %9s %9s %9s %15s %15s %15s %15s %15s\n" shape "acked/s" "acked" "CPU-µs/log" \
    "RSS MiB" "B/log" "by trace" "by correlation" "by service" "text (q)" "errors"
  printf '%s\n' "${summary[@]}"
  exit 0
fi

for shape in "${SHAPES[@]}"; do
  echo "== $shape: limits (decode only on one core; store only through the SQLite write path)"
  limits=$(bench limits "$shape" 2000000)
  echo "$limits"

  start_collector
  cpu_before=$(cpu)
  if [ -n "$GROW" ]; then
    echo "== $shape: growing the store to $GROW spans over ${CONNECTIONS} connections"
    run=$(bench grow "$shape" "$otlp/v1/traces" "$api" "$GROW" "$CONNECTIONS" | shown)
  else
    echo "== $shape: collector under ${CONNECTIONS} connections for ${SECONDS_TO_RUN}s"
    run=$(bench blast "$shape" "$otlp/v1/traces" "$CONNECTIONS" "$SECONDS_TO_RUN")
    echo "$run"
  fi
  cpu_after=$(cpu)
  rss_kib=$(awk '/VmHWM/ {print $2}' "/proc/$collector_pid/status")
  stop_collector
  store_bytes=$(du -sb "$work/data" | cut -f1)

  acked=$(val "$run" acked_spans)
  rate=$(val "$run" acked_spans_per_sec)
  decode=$(val "$limits" decode_only_spans_per_sec)
  prost=$(val "$limits" decode_prost_spans_per_sec)
  store=$(val "$limits" store_only_rows_per_sec)
  cpu_secs=$(awk -v a="$cpu_before" -v b="$cpu_after" -v t="$ticks" 'BEGIN {printf "%.2f", (b - a) / t}')
  line=$(awk -v shape="$shape" -v rate="$rate" -v acked="$acked" -v cpu="$cpu_secs" -v rss="$rss_kib" \
      -v dec="$decode" -v pr="$prost" -v st="$store" -v bytes="$store_bytes" 'BEGIN {
    printf "%-10s %10d %12d %9.2f %9.1f %9.0f %10d %10d %6.2f %10d %6.2f", shape, rate, acked, cpu * 1e6 / acked,
      rss / 1024, bytes / acked, dec, st, rate / st, pr, dec / pr
  }')
  if [ -z "$GROW" ]; then
    echo "== $shape: rotel $ROTEL_VERSION (blackhole exporter), the same blast"
    read -r peer peer_cpu <<<"$(rotel_blast "$shape")"
    echo "rotel_spans_per_sec=$peer rotel_cpu_us_per_span=$peer_cpu"
    line="$line $(awk -v r="$rate" -v p="$peer" -v c="$peer_cpu" 'BEGIN {
      if (p == "-") printf "%10s %9s %7s", "-", "-", "-"; else printf "%10d %9.2f %7.2f", p, c, r / p }')"
  fi
  if [ -n "$GROW" ]; then
    line="$line $(printf '%9s %9s %9s %9s %9s %9s' "$(val "$run" trace_by_id_p50_ms)" "$(val "$run" trace_by_id_p99_ms)" \
      "$(val "$run" correlation_p50_ms)" "$(val "$run" correlation_p99_ms)" \
      "$(val "$run" search_p50_ms)" "$(val "$run" search_p99_ms)")"
  fi
  summary+=("$line")
done

echo "== results (acked = OTLP/HTTP protobuf spans acknowledged, i.e. committed)"
header=$(printf "%-10s %10s %12s %9s %9s %9s %10s %10s %6s %10s %6s" shape "acked/s" "acked" "CPU-µs/sp" "RSS MiB" "B/span" \
  "decode/s" "store/s" "/store" "prost/s" "/prost")
[ -z "$GROW" ] && header="$header $(printf '%10s %9s %7s' "rotel/s" "rotel-µs" "/rotel")"
[ -n "$GROW" ] && header="$header $(printf '%9s %9s %9s %9s %9s %9s' "id p50" "id p99" "corr p50" \
  "corr p99" "search p50" "search p99")"
echo "$header"
printf '%s\n' "${summary[@]}"
