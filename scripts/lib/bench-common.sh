# Shared by the scripts/bench-*.sh that load a local nginx: installing Debian's tools when
# missing, a work directory cleaned up on exit, free ports, and nginx (one worker) serving a
# small static file. Source it; it sets `work` and the trap.

# Installs the Debian packages among "$@" whose command is missing (package=command pairs
# where they differ, e.g. time=/usr/bin/time).
need_debian() {
  local missing=()
  for spec in "$@"; do
    local pkg=${spec%%=*} cmd=${spec#*=}
    command -v "$cmd" >/dev/null 2>&1 || [ -x "$cmd" ] || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "==> installing ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

work=$(mktemp -d)
# nginx workers run as www-data: they must be able to read the file they serve.
chmod 755 "$work"
bench_pids=()
bench_cleanup() {
  for p in "${bench_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap bench_cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Waits until URL answers 2xx (10 s at most).
wait_http() {
  for _ in $(seq 1 100); do curl -sf "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "not up: $1"; exit 1
}

# Starts nginx (one worker, no access log, unlimited keep-alive) serving a 51-byte file on
# 127.0.0.1:$1, and checks that it serves the file, not an error page.
start_nginx() {
  local port=$1
  mkdir -p "$work/www" "$work/logs"
  printf 'hello gauntlet, a small static file for load tests\n' >"$work/www/index.html"
  cat >"$work/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/logs/error.log warn;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 100000000; server { listen 127.0.0.1:$port; root $work/www; } }
CONF
  nginx -c "$work/nginx.conf" -p "$work" &
  bench_pids+=($!)
  wait_http "http://127.0.0.1:$port/"
  curl -sf "http://127.0.0.1:$port/" | grep -q "small static file" || { echo "nginx does not serve the file"; exit 1; }
}
