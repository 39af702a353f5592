#!/usr/bin/env bash
# The web UI's speed in headless Chromium (dashboards/web/test/bench.mjs): a 5,000-span trace
# page and trace search with TRACES traces stored (realistic batches: 128 traces x 4 spans per
# request, fresh random IDs), each page beside its API call alone. Loopback only; ends by itself.
#
# Usage: bash scripts/bench-ui.sh [TRACES=1000000] [RUNS=7]
set -euo pipefail
cd "$(dirname "$0")/.."
TRACES=${1:-1000000}
RUNS=${2:-7}
[[ "$TRACES" =~ ^[0-9]+$ ]] || { echo "TRACES=$TRACES: a number of traces" >&2; exit 2; }
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || { echo "needs Debian's chromium (bash scripts/test.sh installs it)" >&2; exit 1; }

cargo build --release --locked --bin gauntlet
cargo bench --locked -p gauntlet-collector --bench ingest --no-run
(cd dashboards/web && [ -d node_modules/playwright-core ] || npm ci --no-audit --no-fund --loglevel=error)

work=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
"${CARGO_TARGET_DIR:-target}"/release/gauntlet collector --data-dir "$work/data" --retention off --max-disk off \
  --otlp-grpc 127.0.0.1:0 --otlp-http 127.0.0.1:0 --zipkin off --http 127.0.0.1:0 >"$work/out" 2>"$work/err" &
pid=$!
for _ in $(seq 1 100); do grep -q "Press Ctrl-C" "$work/out" 2>/dev/null && break; sleep 0.1; done
otlp=$(sed -n 's#.*OTLP/HTTP *\(http://[0-9.:]*\).*#\1#p' "$work/out")
api=$(sed -n 's#.*Query API *\(http://[0-9.:]*\)/api/services.*#\1#p' "$work/out")
[ -n "$otlp" ] && [ -n "$api" ] || { echo "collector did not start:"; cat "$work/err"; exit 1; }

echo "== filling the store with $TRACES traces ($((TRACES * 4)) spans)"
cargo bench --locked -q -p gauntlet-collector --bench ingest -- grow realistic "$otlp/v1/traces" "$api" \
  "$((TRACES * 4))" 2 | grep -E "acked_spans_per_sec|search_p|trace_by_id_p" || true
echo "== the UI in Chromium"
(cd dashboards/web && node test/bench.mjs --base "$api" --otlp "$otlp" --runs "$RUNS")
