#!/usr/bin/env bash
# Load generator benchmark: requests/s of `gauntlet load` and of wrk (Debian's) against the
# same local nginx (Debian's, one worker, a small static file), with the same connection
# count and duration, in the same run, alternating, plus each generator's CPU per 100k
# requests. Loopback only; every run ends by itself.
# Usage: bash scripts/bench-loadgen.sh [SECONDS=10] [CONNECTIONS=50] [ROUNDS=3]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
CONNS=${2:-50}
ROUNDS=${3:-3}

# shellcheck source=scripts/lib/bench-common.sh
. scripts/lib/bench-common.sh
need_debian nginx wrk time=/usr/bin/time
cargo build --release --locked --bin gauntlet
port=$(free_port)
start_nginx "$port"
url="http://127.0.0.1:$port/"
echo "== target: nginx $(nginx -v 2>&1 | sed 's/.*\///'), 1 worker, $url; ${CONNS} connections, ${SECS}s, ${ROUNDS} rounds"

# "REQS CPU_SECONDS" for one generator run.
run_wrk() {
  /usr/bin/time -f "%U %S" -o "$work/t" wrk -t2 -c"$CONNS" -d"${SECS}s" "$url" >"$work/wrk.out"
  local reqs
  reqs=$(awk '/requests in/ {print $1}' "$work/wrk.out")
  ! grep -q "Non-2xx" "$work/wrk.out" || { echo "wrk saw error answers" >&2; cat "$work/wrk.out" >&2; exit 1; }
  echo "$reqs $(awk '{print $1 + $2}' "$work/t")"
}
run_gauntlet() {
  /usr/bin/time -f "%U %S" -o "$work/t" "${CARGO_TARGET_DIR:-target}"/release/gauntlet load "$url" -c "$CONNS" -d "${SECS}s" \
    --progress off --out "$work/g.json" >/dev/null
  local reqs
  reqs=$(python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["summary"]; assert s["status_codes"].keys() == {"200"}, s["status_codes"]; print(s["requests"])' "$work/g.json")
  echo "$reqs $(awk '{print $1 + $2}' "$work/t")"
}

printf '%-6s %-9s %12s %10s %18s\n' round tool "req/s" "cpu s" "cpu s / 100k req"
tw=0; tg=0; cw=0; cg=0; nw=0; ng=0
for r in $(seq 1 "$ROUNDS"); do
  read -r wr wc < <(run_wrk)
  read -r gr gc < <(run_gauntlet)
  for t in wrk gauntlet; do
    if [ $t = wrk ]; then n=$wr; c=$wc; else n=$gr; c=$gc; fi
    awk -v r="$r" -v t="$t" -v n="$n" -v c="$c" -v s="$SECS" \
      'BEGIN { printf "%-6s %-9s %12.0f %10.2f %18.3f\n", r, t, n / s, c, c / n * 100000 }'
  done
  nw=$((nw + wr)); ng=$((ng + gr))
  cw=$(awk -v a="$cw" -v b="$wc" 'BEGIN { print a + b }')
  cg=$(awk -v a="$cg" -v b="$gc" 'BEGIN { print a + b }')
done
echo "== over ${ROUNDS} rounds"
awk -v nw="$nw" -v ng="$ng" -v cw="$cw" -v cg="$cg" -v s="$SECS" -v r="$ROUNDS" 'BEGIN {
  printf "wrk       %10.0f req/s   %.3f CPU-s per 100k requests\n", nw / s / r, cw / nw * 100000
  printf "gauntlet  %10.0f req/s   %.3f CPU-s per 100k requests\n", ng / s / r, cg / ng * 100000
  printf "gauntlet / wrk throughput: %.2f   CPU per request: %.2f\n", ng / nw, (cg / ng) / (cw / nw)
}'
