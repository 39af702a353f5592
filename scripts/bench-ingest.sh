#!/usr/bin/env bash
# OTLP/HTTP protobuf ingest benchmark: acknowledged (durable) spans/s, the collector's
# CPU-seconds per million spans and peak RSS, against the decode-only and store-only limits
# measured in the same run. Loopback only; every phase ends by itself.
# Usage: bash scripts/bench-ingest.sh [SECONDS=20] [CONNECTIONS=4]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN=${1:-20}
CONNECTIONS=${2:-4}

cargo build --release --locked --bin gauntlet
cargo bench --locked -p gauntlet-collector --bench ingest --no-run
bench() { cargo bench --locked -q -p gauntlet-collector --bench ingest -- "$@"; }

work=$(mktemp -d)
collector_pid=""
cleanup() {
  [ -n "$collector_pid" ] && kill "$collector_pid" 2>/dev/null && wait "$collector_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "== limits (decode only on one core; store only through the SQLite write path)"
limits=$(bench limits 2000000)
echo "$limits"

echo "== collector under ${CONNECTIONS} connections for ${SECONDS_TO_RUN}s"
./target/release/gauntlet collector --data-dir "$work/data" --retention off --max-disk off \
  --otlp-grpc 127.0.0.1:0 --otlp-http 127.0.0.1:0 --zipkin off --http 127.0.0.1:0 \
  >"$work/out" 2>"$work/err" &
collector_pid=$!
for _ in $(seq 1 100); do
  grep -q "Press Ctrl-C" "$work/out" 2>/dev/null && break
  sleep 0.1
done
otlp=$(sed -n 's#.*OTLP/HTTP *\(http://[0-9.:]*\).*#\1#p' "$work/out")
[ -n "$otlp" ] || { echo "collector did not start:"; cat "$work/err"; exit 1; }

ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$collector_pid/stat"; }
cpu_before=$(cpu)
blast=$(bench blast "$otlp/v1/traces" "$CONNECTIONS" "$SECONDS_TO_RUN")
cpu_after=$(cpu)
echo "$blast"
rss_kib=$(awk '/VmHWM/ {print $2}' "/proc/$collector_pid/status")
store_bytes=$(du -sb "$work/data" | cut -f1)

val() { echo "$1" | sed -n "s/^$2=//p"; }
acked=$(val "$blast" acked_spans)
rate=$(val "$blast" acked_spans_per_sec)
decode=$(val "$limits" decode_only_spans_per_sec)
store=$(val "$limits" store_only_rows_per_sec)
cpu_secs=$(awk -v a="$cpu_before" -v b="$cpu_after" -v t="$ticks" 'BEGIN {printf "%.2f", (b - a) / t}')

echo "== results"
awk -v rate="$rate" -v acked="$acked" -v cpu="$cpu_secs" -v rss="$rss_kib" -v dec="$decode" \
    -v st="$store" -v bytes="$store_bytes" 'BEGIN {
  printf "acknowledged spans/s (OTLP/HTTP protobuf, durable): %d\n", rate
  printf "collector CPU-seconds: %.2f  -> per million spans: %.2f  (spans per CPU-second: %d)\n", cpu, cpu / (acked / 1e6), acked / cpu
  printf "collector peak RSS: %.1f MiB\n", rss / 1024
  printf "store on disk after the run: %.1f MiB (%.0f bytes/span)\n", bytes / 1048576, bytes / acked
  printf "decode-only limit (1 core): %d spans/s  -> end-to-end is %.2f of it\n", dec, rate / dec
  printf "store-only limit: %d rows/s  -> end-to-end is %.2f of it\n", st, rate / st
}'
