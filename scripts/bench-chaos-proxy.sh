#!/usr/bin/env bash
# Chaos proxy benchmark: requests/s through `gauntlet chaos proxy` (no toxics) against nginx
# (Debian's, one worker, a small static file) with wrk, beside HAProxy in TCP mode (Debian's)
# and direct, in one run; the latency each adds per request (p50/p99); and what a 100 ms
# latency toxic adds at p50. Loopback only; every run ends by itself.
# Usage: bash scripts/bench-chaos-proxy.sh [SECONDS=10] [CONNECTIONS=10] [ROUNDS=2]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
CONNS=${2:-10}
ROUNDS=${3:-2}

# shellcheck source=scripts/lib/bench-common.sh
. scripts/lib/bench-common.sh
need_debian nginx wrk haproxy
cargo build --release --locked --bin gauntlet

nginx_port=$(free_port); haproxy_port=$(free_port); proxy_port=$(free_port); api_port=$(free_port)
cat >"$work/haproxy.cfg" <<CONF
global
  maxconn 4096
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend fe
  bind 127.0.0.1:$haproxy_port
  default_backend be
backend be
  server nginx 127.0.0.1:$nginx_port
CONF
printf '[{"name": "bench", "listen": "127.0.0.1:%s", "upstream": "127.0.0.1:%s"}]\n' "$proxy_port" "$nginx_port" >"$work/proxies.json"

start_nginx "$nginx_port"
haproxy -db -f "$work/haproxy.cfg" >"$work/haproxy.log" 2>&1 & bench_pids+=($!)
"${CARGO_TARGET_DIR:-target}"/release/gauntlet chaos proxy --api "127.0.0.1:$api_port" --config "$work/proxies.json" >"$work/proxy.log" 2>&1 & bench_pids+=($!)
for p in "$haproxy_port" "$proxy_port"; do wait_http "http://127.0.0.1:$p/"; done
echo "== nginx $(nginx -v 2>&1 | sed 's/.*\///'), $(haproxy -v | head -1 | awk '{print "HAProxy", $3}') (TCP mode); wrk -t1 -c$CONNS -d${SECS}s; $ROUNDS rounds"

# "REQ_PER_S P50_MS P99_MS" of one wrk run against port $1 for $2 seconds.
measure() {
  wrk -t1 -c"$CONNS" -d"${2}s" --latency "http://127.0.0.1:$1/" >"$work/wrk.out"
  python3 - "$work/wrk.out" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
assert "Non-2xx" not in text, text
def ms(v):
    n, unit = re.match(r"([\d.]+)(us|ms|s)", v).groups()
    return float(n) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
p50 = ms(re.search(r"^\s+50%\s+(\S+)", text, re.M).group(1))
p99 = ms(re.search(r"^\s+99%\s+(\S+)", text, re.M).group(1))
print(f"{rps:.0f} {p50:.3f} {p99:.3f}")
PY
}

printf '%-6s %-10s %10s %9s %9s\n' round path "req/s" "p50 ms" "p99 ms"
declare -A sum50 sum99 sumr
for r in $(seq 1 "$ROUNDS"); do
  for path in direct haproxy gauntlet; do
    case $path in direct) port=$nginx_port;; haproxy) port=$haproxy_port;; gauntlet) port=$proxy_port;; esac
    read -r rps p50 p99 < <(measure "$port" "$SECS")
    printf '%-6s %-10s %10s %9s %9s\n' "$r" "$path" "$rps" "$p50" "$p99"
    sumr[$path]=$(awk -v a="${sumr[$path]:-0}" -v b="$rps" 'BEGIN{print a+b}')
    sum50[$path]=$(awk -v a="${sum50[$path]:-0}" -v b="$p50" 'BEGIN{print a+b}')
    sum99[$path]=$(awk -v a="${sum99[$path]:-0}" -v b="$p99" 'BEGIN{print a+b}')
  done
done
echo "== means over $ROUNDS rounds"
for path in direct haproxy gauntlet; do
  awk -v p="$path" -v r="${sumr[$path]}" -v a="${sum50[$path]}" -v b="${sum99[$path]}" -v n="$ROUNDS" \
    -v d50="${sum50[direct]}" -v d99="${sum99[direct]}" \
    'BEGIN { printf "%-10s %10.0f req/s   p50 %.3f ms (+%.3f)   p99 %.3f ms (+%.3f)\n", p, r/n, a/n, (a-d50)/n, b/n, (b-d99)/n }'
done
awk -v g="${sumr[gauntlet]}" -v h="${sumr[haproxy]}" -v d="${sumr[direct]}" \
  'BEGIN { printf "gauntlet / haproxy throughput: %.2f   gauntlet / direct: %.2f\n", g/h, g/d }'

echo "== a 100 ms latency toxic (downstream)"
curl -sf -XPOST "http://127.0.0.1:$api_port/proxies/bench/toxics" \
  -d '{"type": "latency", "attributes": {"latency": 100}}' >/dev/null
read -r _ t50 t99 < <(measure "$proxy_port" 5)
base=$(awk -v a="${sum50[gauntlet]}" -v n="$ROUNDS" 'BEGIN{print a/n}')
awk -v t="$t50" -v b="$base" -v t99="$t99" \
  'BEGIN { printf "p50 %.3f ms (adds %.3f ms over the same proxy without it), p99 %.3f ms\n", t, t - b, t99 }'
