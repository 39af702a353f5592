#!/usr/bin/env bash
# Rebuilding a read model from orders' event store (docs/benchmarks.md): for each size, a
# fresh store of that many confirmed orders (random customers, four events each, pages
# mixing a hundred streams), its feed read alone over loopback (the limit), then replayed
# into a new order-history from the first event, as after a lost disk. Ends by itself.
#
# Usage: bash scripts/bench-replay.sh [ORDERS ...]   (default: 1000 10000 25000)
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || set -- 1000 10000 25000
cargo bench --locked -q -p gauntlet-demo-system --bench replay -- "$@"
