#!/usr/bin/env bash
# A/B of collector builds under the same ingest blast: each round starts every binary in
# turn on a fresh data directory and ephemeral loopback ports, blasts it for SECONDS (the
# ingest benchmark's `blast`, OTLP/HTTP protobuf, 4 connections) and prints its acknowledged
# spans/s and CPU-µs per acknowledged span (from /proc). Every other round runs the binaries
# in reverse order: on a shared host the one started second tends to measure a few percent
# better, and ABBA cancels that. Then the mean of each. Loopback only; every run ends by itself.
#
# Usage: bash scripts/ab-ingest.sh [--shape friendly|realistic|worst] SECONDS ROUNDS BIN...
# e.g. build the commit before into another target directory, copy both `gauntlet` binaries
# out, then: bash scripts/ab-ingest.sh 20 4 /tmp/gauntlet-before target/release/gauntlet
set -euo pipefail
cd "$(dirname "$0")/.."

SHAPE=realistic
if [ "${1:-}" = "--shape" ]; then SHAPE=$2; shift 2; fi
case "${1:-}" in -h|--help|"") sed -n '2,11p' "$0"; exit 0 ;; esac
[ $# -ge 3 ] || { echo "usage: bash scripts/ab-ingest.sh [--shape S] SECONDS ROUNDS BIN..." >&2; exit 2; }
SECS=$1; ROUNDS=$2; shift 2
BINS=("$@")
for bin in "${BINS[@]}"; do
  [ -x "$bin" ] || { echo "not an executable: $bin" >&2; exit 2; }
done

cargo bench --locked -q -p gauntlet-collector --bench ingest --no-run
bench() { cargo bench --locked -q -p gauntlet-collector --bench ingest -- "$@"; }
ticks=$(getconf CLK_TCK)
work=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

# One blast at one binary: prints "spans/s cpu-µs/span".
measure() {
  local bin=$1 run
  run=$(mktemp -d -p "$work")
  "$bin" collector --data-dir "$run/data" --retention off --max-disk off \
    --otlp-grpc 127.0.0.1:0 --otlp-http 127.0.0.1:0 --zipkin off --http 127.0.0.1:0 \
    >"$run/out" 2>"$run/err" &
  pid=$!
  for _ in $(seq 1 100); do grep -q "Press Ctrl-C" "$run/out" 2>/dev/null && break; sleep 0.1; done
  local otlp
  otlp=$(sed -n 's#.*OTLP/HTTP *\(http://[0-9.:]*\).*#\1#p' "$run/out")
  [ -n "$otlp" ] || { echo "$bin did not start:" >&2; cat "$run/err" >&2; exit 1; }
  local c0 c1 out acked rate
  c0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  out=$(bench blast "$SHAPE" "$otlp/v1/traces" 4 "$SECS")
  c1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
  rm -rf "$run"
  acked=$(sed -n 's/^acked_spans=//p' <<<"$out")
  rate=$(sed -n 's/^acked_spans_per_sec=//p' <<<"$out")
  [ "${acked:-0}" -gt 0 ] || { echo "$bin acknowledged nothing" >&2; exit 1; }
  awk -v r="$rate" -v c=$((c1 - c0)) -v t="$ticks" -v a="$acked" 'BEGIN {printf "%d %.3f\n", r, c / t * 1e6 / a}'
}

declare -A rates cpus
for r in $(seq 1 "$ROUNDS"); do
  order=("${BINS[@]}")
  if [ $((r % 2)) -eq 0 ]; then
    order=(); for ((i = ${#BINS[@]} - 1; i >= 0; i--)); do order+=("${BINS[$i]}"); done
  fi
  for bin in "${order[@]}"; do
    read -r rate cpu <<<"$(measure "$bin")"
    echo "round $r  $bin  $rate spans/s  $cpu CPU-µs/span"
    rates[$bin]="${rates[$bin]:-} $rate"
    cpus[$bin]="${cpus[$bin]:-} $cpu"
  done
done
echo "== means over $ROUNDS rounds ($SHAPE, ${SECS}s)"
for bin in "${BINS[@]}"; do
  awk -v b="$bin" -v r="${rates[$bin]}" -v c="${cpus[$bin]}" 'BEGIN {
    n = split(r, rs, " "); split(c, cs, " "); sr = 0; sc = 0
    for (i = 1; i <= n; i++) { sr += rs[i]; sc += cs[i] }
    printf "%s  %d spans/s  %.3f CPU-µs/span\n", b, sr / n, sc / n }'
done
