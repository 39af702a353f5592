#!/usr/bin/env bash
# Verifies every provider of the demo against the committed pacts (contracts/pacts/), as a
# provider's CI would: starts `gauntlet demo --provider-states` on free loopback ports, runs
# `gauntlet contracts verify` for each provider (JUnit reports in target/contracts/), stops
# the demo; then checks each consumer's pinned gRPC contract (contracts/proto/) against the
# provider's current .proto with `gauntlet contracts proto-check`. Exit 1 if any contract is broken.
# Usage: bash scripts/verify-contracts.sh [PATH/TO/gauntlet]   (default: target/debug/gauntlet)
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-target/debug/gauntlet}"
[ -x "$bin" ] || { echo "no gauntlet binary at $bin: cargo build first" >&2; exit 2; }
export PACT_DO_NOT_TRACK=true

dir="$(mktemp -d)"
"$bin" demo --ports auto --no-traffic --provider-states --data-dir "$dir" >"$dir/demo.log" 2>&1 &
demo=$!
cleanup() {
  kill "$demo" 2>/dev/null || true
  wait "$demo" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

# demo.json appears once every instance is up and ready.
for _ in $(seq 1 900); do
  [ -s "$dir/demo.json" ] && break
  if ! kill -0 "$demo" 2>/dev/null; then
    echo "the demo stopped before it was ready:" >&2
    cat "$dir/demo.log" >&2
    exit 1
  fi
  sleep 0.1
done
[ -s "$dir/demo.json" ] || { echo "the demo was not ready after 90 s" >&2; cat "$dir/demo.log" >&2; exit 1; }

url_of() {
  python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["services"][sys.argv[2]][0])' \
    "$dir/demo.json" "$1"
}

mkdir -p target/contracts
failed=()
# Every provider the committed pacts name.
providers="$(python3 -c 'import json, sys; print(" ".join(sorted({json.load(open(f))["provider"]["name"] for f in sys.argv[1:]})))' contracts/pacts/*.json)"
for provider in $providers; do
  echo "==> contracts: verifying $provider against every pact that names it"
  if ! "$bin" contracts verify --provider "$provider" --base-url "$(url_of "$provider")" \
      --junit "target/contracts/$provider.xml"; then
    failed+=("$provider")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "broken contracts: ${failed[*]}" >&2
  exit 1
fi
echo "every provider honours every pact"

# gRPC edges: each consumer's pinned .proto against the provider's current one.
echo "==> contracts: the pinned gRPC contracts against the providers' .proto files"
for pinned in $(find contracts/proto -name '*.proto' | sort); do
  current="demo-system/proto/${pinned#contracts/proto/*/}"
  "$bin" contracts proto-check --pinned "$pinned" --current "$current" || failed+=("$pinned")
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "broken contracts: ${failed[*]}" >&2
  exit 1
fi
echo "every gRPC provider keeps its pinned contracts"
