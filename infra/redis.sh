#!/usr/bin/env bash
# Redis from Debian's packages, on 127.0.0.1:${BLOOP_REDIS_PORT:-6379}, no persistence.
NAME=redis
source "$(dirname "$0")/lib.sh"
PORT="${BLOOP_REDIS_PORT:-6379}"

do_install() {
  command -v redis-server >/dev/null && return 0  # a Redis of the machine's is left alone
  apt_install redis-server
  # Debian starts the service it just installed, on 6379; we run our own instance.
  if command -v systemctl >/dev/null; then systemctl disable --now redis-server >/dev/null 2>&1 || true; fi
  pkill -f '^/usr/bin/redis-server [^ ]*:6379$' 2>/dev/null || true
}

do_start() {
  local dir; dir="$(run_dir)"
  start_bg redis-server --bind 127.0.0.1 --port "$PORT" --dir "$dir" --save '' --appendonly no \
    --protected-mode yes --daemonize no
  wait_port 127.0.0.1 "$PORT" 30
  log "up on 127.0.0.1:$PORT"
}

main "$@"
