#!/usr/bin/env bash
# The whole demo's footprint (docs/demo.md, "Footprint"): time from `gauntlet demo` to its
# banner (after the traffic burst), idle CPU of every process over 30 s, and memory (RSS of
# every process) idle and after loadgen/scenarios/demo.toml (10-second runs, six by default:
# random idempotency keys, 20 customers, every route). Loopback only, `--ports auto`; stops
# the demo at the end.
#
# Usage: [LOAD_RUNS=60] bash scripts/bench-demo-footprint.sh [PATH/TO/gauntlet]
#   (default: a release build; LOAD_RUNS=60 is the ten-minute run the demo's budget names)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-}
if [ -z "$bin" ]; then
  cargo build --release --locked --bin gauntlet
  bin=target/release/gauntlet
fi
[ -x "$bin" ] || { echo "no gauntlet binary at $bin" >&2; exit 2; }

work=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

start=$(date +%s.%N)
"$bin" demo --ports auto --data-dir "$work/demo" >"$work/demo.log" 2>&1 &
pid=$!
until grep -q "Press Ctrl-C" "$work/demo.log" 2>/dev/null; do
  kill -0 "$pid" 2>/dev/null || { cat "$work/demo.log" >&2; exit 1; }
  sleep 0.05
done
ready=$(date +%s.%N)
pids() { echo "$pid"; pgrep -P "$pid"; }
ticks() { for p in $(pids); do awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null; done | paste -sd+ | bc; }
rss_mib() { echo $(( $(for p in $(pids); do awk '/VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null; done | paste -sd+ | bc) / 1024 )); }
echo "processes:                 $(pids | wc -l)"
echo "start to the banner:       $(echo "$ready - $start" | bc) s (the traffic burst included)"
sleep 10
t0=$(ticks); sleep 30; t1=$(ticks)
echo "idle CPU, every process:   $(echo "scale=2; ($t1 - $t0) * 100 / $(getconf CLK_TCK) / 30" | bc) % of one core (30 s)"
echo "memory idle:               $(rss_mib) MiB"
gateway=$(python3 -c "import json, sys; print(json.load(open(sys.argv[1]))['gateway'])" "$work/demo/demo.json")
runs=${LOAD_RUNS:-6}
missed=0
for _ in $(seq "$runs"); do
  # A run that misses the scenario's thresholds (a busy machine) still loaded the demo.
  "$bin" load run loadgen/scenarios/demo.toml --var "gateway=$gateway" >"$work/load.log" 2>&1 \
    || missed=$((missed + 1))
done
[ "$missed" = 0 ] || echo "load runs that missed their thresholds: $missed of $runs"
kill -0 "$pid" 2>/dev/null || { echo "the demo died under load" >&2; cat "$work/demo.log" >&2; exit 1; }
echo "memory after $((runs * 10)) s of load: $(rss_mib) MiB"
