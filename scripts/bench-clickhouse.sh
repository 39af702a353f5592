#!/usr/bin/env bash
# The ClickHouse store's benchmark, on the ClickHouse engine the tests use (chDB behind
# scripts/chdb_http.py): OTLP/HTTP protobuf ingest through `gauntlet collector --store
# clickhouse` of realistic batches (128 traces x 4 spans per 512-span request, fresh random
# IDs) until SPANS are stored, beside the raw insert rate of the same rows straight through the
# `clickhouse` crate's inserter (the limit) in the same run; then trace-by-ID and correlation
# lookups (p50/p99) at that size, and the same fill and lookups on the SQLite store. The
# adapter reports its own share of the time (a real server has no adapter). With --rollups:
# only the ClickHouse store, its SPANS spans' start times spread over 24 hours, then RED over
# the last 1, 6 and 24 hours from the rollups and from the spans, and the dependencies, p50/p99
# of 20 each (as bench-ingest.sh --rollups does for SQLite; the spans' minutes, all before
# the collector's first edge pass, are counted live). Loopback only.
#
# Usage: bash scripts/bench-clickhouse.sh [--rollups] [SPANS=5000000] [CONNECTIONS=4]
set -euo pipefail
cd "$(dirname "$0")/.."
ROLLUPS=""
if [ "${1:-}" = "--rollups" ]; then ROLLUPS=1; shift; fi
SPANS=${1:-5000000}
CONNECTIONS=${2:-4}
[[ "$SPANS" =~ ^[0-9]+$ ]] || { echo "SPANS=$SPANS: a number of spans" >&2; exit 2; }
python3 -c 'import chdb, lz4.block, clickhouse_cityhash' 2>/dev/null ||
  { echo "needs chdb, lz4, clickhouse-cityhash (bash scripts/test.sh installs them)" >&2; exit 1; }

cargo build --release --locked --bin gauntlet
cargo bench --locked -p gauntlet-collector --bench ingest --no-run
bench() { cargo bench --locked -q -p gauntlet-collector --bench ingest -- "$@"; }

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
val() { echo "$1" | sed -n "s/^$2=//p"; }
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

ch_port=$(port)
python3 scripts/chdb_http.py --data "$work/ch" --port "$ch_port" >"$work/ch.out" 2>"$work/ch.err" &
pids+=($!)
for _ in $(seq 1 100); do grep -q listening "$work/ch.out" 2>/dev/null && break; sleep 0.1; done
ch="http://127.0.0.1:$ch_port"
stats() { curl -s "$ch/adapter-stats"; }

# Starts a collector with the given store flags; sets pid, otlp, api.
start_collector() {
  "${CARGO_TARGET_DIR:-target}"/release/gauntlet collector --data-dir "$work/$1" --retention off --max-disk off \
    --otlp-grpc 127.0.0.1:0 --otlp-http 127.0.0.1:0 --zipkin off --http 127.0.0.1:0 "${@:2}" \
    >"$work/$1.out" 2>"$work/$1.err" &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 1 200); do grep -q "Press Ctrl-C" "$work/$1.out" 2>/dev/null && break; sleep 0.1; done
  otlp=$(sed -n 's#.*OTLP/HTTP *\(http://[0-9.:]*\).*#\1#p' "$work/$1.out")
  api=$(sed -n 's#.*Query API *\(http://[0-9.:]*\)/api/services.*#\1#p' "$work/$1.out")
  [ -n "$otlp" ] && [ -n "$api" ] || { echo "collector did not start:"; cat "$work/$1.err"; exit 1; }
}
ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }

if [ -n "$ROLLUPS" ]; then
  echo "== ClickHouse store: $SPANS spans over 24 hours of start times, $CONNECTIONS connections"
  start_collector ch-collector --store clickhouse --clickhouse-url "$ch" --clickhouse-database otel
  c0=$(cpu "$pid")
  run=$(bench grow realistic "$otlp/v1/traces" "$api" "$SPANS" "$CONNECTIONS" "$((SPANS / 10))" 86400)
  echo "$run"
  c1=$(cpu "$pid")
  echo "== RED over the last 1, 6 and 24 hours: rollups, and spans; then the dependencies"
  bench red realistic "$api" 86400
  echo "fill: $(val "$run" acked_spans_per_sec) spans/s acknowledged, $(val "$run" readable_spans_per_sec) readable;" \
    "collector CPU $(awk -v a="$c0" -v b="$c1" -v t="$ticks" -v n="$(val "$run" acked_spans)" 'BEGIN {printf "%.2f", (b - a) / t * 1e6 / n}') µs per span"
  exit 0
fi

echo "== the limit: 1M realistic rows through the clickhouse crate's inserter (4096 rows an INSERT)"
s0=$(stats)
raw=$(bench clickhouse-raw realistic "$ch" gauntlet_raw 1000000 4096)
s1=$(stats)
echo "$raw"
raw_rate=$(val "$raw" raw_insert_rows_per_sec)

echo "== ClickHouse store: grow to $SPANS spans over $CONNECTIONS connections"
start_collector ch-collector --store clickhouse --clickhouse-url "$ch" --clickhouse-database otel
c0=$(cpu "$pid"); s2=$(stats)
run=$(bench grow realistic "$otlp/v1/traces" "$api" "$SPANS" "$CONNECTIONS")
echo "$run"
ch_rate=$(val "$run" acked_spans_per_sec)
ch_acked=$(val "$run" acked_spans)
# An acknowledgement means the spool has it; the grow waited until the newest acknowledged
# trace could be read back (settle_seconds) before its lookups: that is the stored rate.
stored_rate=$(val "$run" readable_spans_per_sec)
stored=$(curl -s "$ch/" --data-binary "SELECT count() FROM otel.otel_traces")
[ "$stored" -ge "$ch_acked" ] || echo "warning: ClickHouse holds $stored of $ch_acked acknowledged spans" >&2
c1=$(cpu "$pid"); s3=$(stats)
kill "$pid"; wait "$pid" 2>/dev/null || true

echo "== SQLite store: grow to $SPANS spans"
start_collector sqlite
run_sq=$(bench grow realistic "$otlp/v1/traces" "$api" "$SPANS" "$CONNECTIONS")
echo "$run_sq"
kill "$pid"; wait "$pid" 2>/dev/null || true

share() { # the adapter's share of its request time between two stats snapshots
  python3 -c "import json,sys; a=json.loads(sys.argv[1]); b=json.loads(sys.argv[2]);
rs=b['request_seconds']-a['request_seconds']; es=b['engine_seconds']-a['engine_seconds'];
print(f'{rs:.1f} s in requests, {es:.1f} s in chDB, adapter {100*(rs-es)/max(rs,1e-9):.0f}%')" "$1" "$2"
}
echo "== results (realistic shape; acked = committed to ClickHouse or to the spool)"
printf "%-22s %12s %12s\n" "" "spans/s" "of the limit"
printf "%-22s %12s\n" "raw inserter (limit)" "$raw_rate"
printf "%-22s %12s %12s   (acknowledged: in the spool)\n" "through Gauntlet, acked" "$ch_rate" "$(awk -v a="$ch_rate" -v b="$raw_rate" 'BEGIN {printf "%.2f", a / b}')"
printf "%-22s %12s %12s   (readable: until the newest acknowledged trace is found)\n" "through Gauntlet, stored" "$stored_rate" "$(awk -v a="$stored_rate" -v b="$raw_rate" 'BEGIN {printf "%.2f", a / b}')"
echo "refused while the spool was full (503, retried): $(val "$run" refused_spans) spans"
echo "collector CPU: $(awk -v a="$c0" -v b="$c1" -v t="$ticks" -v n="$ch_acked" 'BEGIN {printf "%.2f", (b - a) / t * 1e6 / n}') µs per span"
echo "adapter, raw phase:      $(share "$s0" "$s1")"
echo "adapter, Gauntlet phase: $(share "$s2" "$s3")"
printf "%-12s %9s %9s %9s %9s %9s %9s\n" "at $SPANS" "id p50" "id p99" "corr p50" "corr p99" "search p50" "search p99"
for name in clickhouse sqlite; do
  r=$run; [ "$name" = sqlite ] && r=$run_sq
  printf "%-12s %9s %9s %9s %9s %9s %9s\n" "$name" "$(val "$r" trace_by_id_p50_ms)" "$(val "$r" trace_by_id_p99_ms)" \
    "$(val "$r" correlation_p50_ms)" "$(val "$r" correlation_p99_ms)" "$(val "$r" search_p50_ms)" "$(val "$r" search_p99_ms)"
done
