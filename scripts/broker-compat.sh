#!/usr/bin/env bash
# The broker against the official Pact CLI (a client we did not write): it publishes the
# committed pacts to `gauntlet contracts broker`, asks can-i-deploy (no), verifies every
# provider of a running demo through the broker with its own verifier and publishes the
# results, and asks again (yes). The broker requires credentials: the CLI logs in with basic
# auth (read/write), a bearer token and the read-only account, and is refused without them
# (401) and when the read-only account writes (403). Installs the Pact CLI from npm into
# target/pact-cli.
# Usage: bash scripts/broker-compat.sh [PATH/TO/gauntlet]   (default: target/debug/gauntlet)
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-target/debug/gauntlet}"
[ -x "$bin" ] || { echo "no gauntlet binary at $bin: cargo build first" >&2; exit 2; }
export PACT_DO_NOT_TRACK=true

cli_version=18.1.2
pact="target/pact-cli/node_modules/@pact-foundation/pact-cli-linux-x64/standalone/pact"
if [ ! -x "$pact" ]; then
  command -v npm >/dev/null 2>&1 || { echo "npm is needed to install the Pact CLI" >&2; exit 2; }
  echo "==> installing the Pact CLI $cli_version (npm @pact-foundation/pact-cli-linux-x64)"
  mkdir -p target/pact-cli
  npm install --prefix target/pact-cli --no-audit --no-fund --silent \
    "@pact-foundation/pact-cli-linux-x64@$cli_version" >/dev/null
fi

dir="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT

PACT_BROKER_BASIC_AUTH_USERNAME=ci PACT_BROKER_BASIC_AUTH_PASSWORD=ci-secret \
PACT_BROKER_BASIC_AUTH_READ_ONLY_USERNAME=dev PACT_BROKER_BASIC_AUTH_READ_ONLY_PASSWORD=dev-secret \
GAUNTLET_BROKER_TOKEN=token-secret \
  "$bin" contracts broker --listen 127.0.0.1:0 --data-dir "$dir/broker" 2>"$dir/broker.log" &
pids+=($!)
"$bin" demo --ports auto --no-traffic --provider-states --data-dir "$dir/demo" >"$dir/demo.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 900); do
  grep -q "pact broker on" "$dir/broker.log" 2>/dev/null && [ -s "$dir/demo/demo.json" ] && break
  sleep 0.1
done
broker="$(grep -o 'http://[0-9.:]*' "$dir/broker.log" | head -1)"
[ -n "$broker" ] && [ -s "$dir/demo/demo.json" ] || { cat "$dir/broker.log" "$dir/demo.log" >&2; exit 1; }

port_of() {
  python3 -c 'import json, sys; u = json.load(open(sys.argv[1]))["services"][sys.argv[2]][0]; print(u.rsplit(":", 1)[1])' \
    "$dir/demo/demo.json" "$1"
}

echo "==> pact broker publish without credentials: must be refused"
if "$pact" broker publish contracts/pacts --consumer-app-version 0.9.0 --branch main \
  --broker-base-url "$broker" >"$dir/anon.log" 2>&1; then
  echo "the broker took a publication with no credentials" >&2
  exit 1
fi
grep -qiE "401|unauthori[sz]ed" "$dir/anon.log" || { cat "$dir/anon.log" >&2; exit 1; }
echo "==> pact broker publish with the read-only account: must be refused"
if "$pact" broker publish contracts/pacts --consumer-app-version 0.9.0 --branch main \
  --broker-base-url "$broker" --broker-username dev --broker-password dev-secret >"$dir/ro.log" 2>&1; then
  echo "the broker took a publication from the read-only account" >&2
  exit 1
fi
grep -qiE "403|forbidden" "$dir/ro.log" || { cat "$dir/ro.log" >&2; exit 1; }
echo "==> pact broker publish (the official Pact CLI, basic auth) to $broker"
PACT_BROKER_USERNAME=ci PACT_BROKER_PASSWORD=ci-secret \
  "$pact" broker publish contracts/pacts --consumer-app-version 1.0.0 --branch main \
  --broker-base-url "$broker" >/dev/null
echo "==> pact broker can-i-deploy (bearer token), before any verification: must say no"
if "$pact" broker can-i-deploy --pacticipant gateway --version 1.0.0 --broker-base-url "$broker" \
  --broker-token token-secret; then
  echo "can-i-deploy said yes before the providers verified" >&2
  exit 1
fi
# Every provider the committed pacts name.
providers="$(python3 -c 'import json, sys; print(" ".join(sorted({json.load(open(f))["provider"]["name"] for f in sys.argv[1:]})))' contracts/pacts/*.json)"
for provider in $providers; do
  port="$(port_of "$provider")"
  echo "==> pact verifier (the official Pact CLI): $provider through the broker, results published"
  "$pact" verifier --broker-url "$broker" --token token-secret --provider-name "$provider" \
    --hostname 127.0.0.1 --transports "http:$port" --transports "message:$port/_pact/messages" \
    --state-change-url "http://127.0.0.1:$port/_pact/provider-states" \
    --consumer-version-selectors '{"mainBranch": true}' \
    --provider-version 2.0.0 --provider-branch main --publish --no-colour >"$dir/verify-$provider.log" 2>&1 ||
    { cat "$dir/verify-$provider.log" >&2; exit 1; }
done
echo "==> pact broker can-i-deploy (the read-only account), after: must say yes"
export PACT_BROKER_USERNAME=dev PACT_BROKER_PASSWORD=dev-secret
"$pact" broker can-i-deploy --pacticipant gateway --version 1.0.0 --broker-base-url "$broker"
"$pact" broker can-i-deploy --pacticipant orders --version 2.0.0 --broker-base-url "$broker"
echo "the official Pact CLI published to, verified through and asked the broker, with basic auth and a token"
