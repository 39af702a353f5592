#!/usr/bin/env bash
# Runs every check CI runs, on a fresh machine too: installs what the tests need, then
# formatting, lints and all tests. Usage: bash scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
# Each step's banner says when it began (minutes into the run): CI has a 40-minute budget.
step() { printf '==> [%dm%02ds] %s\n' $(((SECONDS - started) / 60)) $(((SECONDS - started) % 60)) "$*"; }

need_apt=()
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v cc >/dev/null 2>&1 || need_apt+=(gcc)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3 python3-pip)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
# The UI's browser test drives Debian's Chromium.
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || need_apt+=(chromium)
# `gauntlet demo --broker rabbitmq` runs Debian's RabbitMQ (its tests and experiments).
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || need_apt+=(rabbitmq-server)
# Debian's Prometheus 2.42 is the reference the PromQL answers are checked against, and
# promtool a client of the Prometheus API (collector/tests/promql_oracle.rs).
{ [ -x /usr/bin/prometheus ] && [ -x /usr/bin/promtool ]; } || need_apt+=(prometheus)
if [ ${#need_apt[@]} -gt 0 ]; then
  step "installing ${need_apt[*]}"
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
  fi
fi
# An existing Toxiproxy client, for the chaos proxy's compatibility test.
if ! python3 -c 'import toxiproxy' >/dev/null 2>&1; then
  step "installing toxiproxy-python (a Toxiproxy client the chaos tests drive)"
  python3 -m pip install --quiet --disable-pip-version-check toxiproxy-python==0.1.1 ||
    python3 -m pip install --quiet --disable-pip-version-check --break-system-packages toxiproxy-python==0.1.1
fi
# The ClickHouse engine for the ClickHouse store's tests: chDB in-process behind
# scripts/chdb_http.py (lz4 and clickhouse-cityhash read the client's compressed inserts).
if ! python3 -c 'import chdb, lz4.block, clickhouse_cityhash' >/dev/null 2>&1; then
  step "installing chdb, lz4, clickhouse-cityhash (the ClickHouse engine the store tests use)"
  python3 -m pip install --quiet --disable-pip-version-check chdb==4.4.0 lz4==4.4.5 clickhouse-cityhash==1.0.2.6 ||
    python3 -m pip install --quiet --disable-pip-version-check --break-system-packages chdb==4.4.0 lz4==4.4.5 clickhouse-cityhash==1.0.2.6
fi
# The OpenTelemetry Python SDK: a real exporter sending the ingest token from
# OTEL_EXPORTER_OTLP_HEADERS, for the collector's ingest-token test.
if ! python3 -c 'import opentelemetry.sdk, opentelemetry.exporter.otlp.proto.http' >/dev/null 2>&1; then
  step "installing opentelemetry-sdk, opentelemetry-exporter-otlp-proto-http"
  otel=(opentelemetry-sdk==1.45.2 opentelemetry-exporter-otlp-proto-http==1.45.2)
  python3 -m pip install --quiet --disable-pip-version-check "${otel[@]}" ||
    python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "${otel[@]}"
fi
# Chaos Toolkit's report generator: it reads the journal `gauntlet chaos run --journal` writes.
if ! python3 -c 'import chaosreport' >/dev/null 2>&1; then
  step "installing chaostoolkit-reporting (reads Gauntlet's Chaos Toolkit journals in the chaos tests)"
  python3 -m pip install --quiet --disable-pip-version-check chaostoolkit-reporting==0.18.0 ||
    python3 -m pip install --quiet --disable-pip-version-check --break-system-packages chaostoolkit-reporting==0.18.0
fi
# Python's GraphQL client: the web page's queries, validated against the web BFF's
# checked-in SDL, sent through the gateway in the demo's end-to-end test.
if ! python3 -c 'import gql, requests' >/dev/null 2>&1; then
  step "installing gql[requests] (a GraphQL client the demo's end-to-end test drives)"
  python3 -m pip install --quiet --disable-pip-version-check "gql[requests]==3.5.3" ||
    python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "gql[requests]==3.5.3"
fi
# A Consul client: the demo registry's configuration store speaks Consul's KV API, and the
# demo's end-to-end test drives it with py-consul.
if ! python3 -c 'import consul' >/dev/null 2>&1; then
  step "installing py-consul (a Consul client the demo's end-to-end test drives)"
  python3 -m pip install --quiet --disable-pip-version-check py-consul==1.8.0 ||
    python3 -m pip install --quiet --disable-pip-version-check --break-system-packages py-consul==1.8.0
fi
# A JSON-RPC client: notifications answers JSON-RPC 2.0, and the demo's end-to-end test
# drives it with jsonrpcclient.
if ! python3 -c 'import jsonrpcclient' >/dev/null 2>&1; then
  step "installing jsonrpcclient (a JSON-RPC client the demo's end-to-end test drives)"
  python3 -m pip install --quiet --disable-pip-version-check jsonrpcclient==4.0.3 ||
    python3 -m pip install --quiet --disable-pip-version-check --break-system-packages jsonrpcclient==4.0.3
fi
# A gRPC client: inventory's catalogue answers gRPC, and the demo's end-to-end test drives it
# with grpcio, its stubs generated by grpcio-tools from the provider's .proto.
if ! python3 -c 'import grpc, grpc_tools' >/dev/null 2>&1; then
  step "installing grpcio-tools (a gRPC client the demo's end-to-end test drives)"
  python3 -m pip install --quiet --disable-pip-version-check grpcio-tools==1.76.0 ||
    python3 -m pip install --quiet --disable-pip-version-check --break-system-packages grpcio-tools==1.76.0
fi
# An AMQP client: the broker demo's end-to-end test sends RabbitMQ a malformed message with
# pika and reads the dead-letter queue with it.
if ! python3 -c 'import pika' >/dev/null 2>&1; then
  step "installing pika (an AMQP client the broker's end-to-end test drives)"
  python3 -m pip install --quiet --disable-pip-version-check pika==1.4.4 ||
    python3 -m pip install --quiet --disable-pip-version-check --break-system-packages pika==1.4.4
fi
for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    step "installing $component"
    rustup component add "$component"
  fi
done

# The UI: its Node packages from the committed lockfile, a type check, and a rebuild that must
# give the committed bundle byte for byte (the binary embeds dashboards/dist).
step "dashboards/web: npm ci, type check, rebuild the bundle"
(cd dashboards/web && npm ci --no-audit --no-fund --loglevel=error && npm run --silent typecheck && npm run --silent build)
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git diff --exit-code --stat -- dashboards/dist ||
    { echo "dashboards/dist differs from a build of dashboards/web: run 'npm run build' there and commit dashboards/dist" >&2; exit 1; }
fi

# A CI run builds once: incremental caches would only double target/ on a small disk.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
# The Pact libraries send usage data unless told not to.
export PACT_DO_NOT_TRACK=true

step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
step "cargo test"
cargo test --workspace --all-targets --locked
step "doc tests"
cargo test --workspace --doc --locked
step "contracts: the pacts the consumer tests wrote are the committed ones"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git diff --exit-code --stat -- contracts/pacts ||
    { echo "the consumer tests changed contracts/pacts/: review and commit the new pacts" >&2; exit 1; }
  untracked="$(git ls-files --others --exclude-standard -- contracts/pacts)"
  [ -z "$untracked" ] || { echo "new pact files to commit: $untracked" >&2; exit 1; }
fi
step "contracts: every provider of the running demo against its pacts"
# The binary `cargo test` built for the CLI's own tests.
bash scripts/verify-contracts.sh "${CARGO_TARGET_DIR:-target}/debug/gauntlet"
step "contracts: the broker with the official Pact CLI (publish, verifier, can-i-deploy)"
bash scripts/broker-compat.sh "${CARGO_TARGET_DIR:-target}/debug/gauntlet"
step "all checks passed"
