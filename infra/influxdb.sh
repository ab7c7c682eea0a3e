#!/usr/bin/env bash
# InfluxDB 1.8 (1.x API plus the 2.x-compatible /api/v2/write, /api/v2/query with Flux, and /health)
# on 127.0.0.1:${BLOOP_INFLUX_PORT:-8086}, auth disabled. Built with Go from the module proxy;
# config, meta, data and WAL live in the run dir. With the 2.x client: token any string
# (e.g. "user:password"), org "-", bucket "<database>/<retention policy>" such as "bloop/autogen".
NAME=influxdb
source "$(dirname "$0")/lib.sh"
VERSION="${BLOOP_INFLUX_VERSION:-1.8.10}"
PORT="${BLOOP_INFLUX_PORT:-8086}"
RPC_PORT="${BLOOP_INFLUX_RPC_PORT:-8088}"

go_env() { # self-contained Go workspace inside the cache dir
  local cache; cache="$(cache_dir)"
  export GOPATH="$cache/go" GOMODCACHE="$cache/go/pkg/mod" GOCACHE="$cache/go/build-cache"
  export GOTOOLCHAIN=local GOFLAGS="-modcacherw -buildvcs=false" CGO_ENABLED=0
}

do_install() {
  local cache bin; cache="$(cache_dir)"; bin="$cache/bin/influxd"
  if [ -x "$bin" ] && [ "$(cat "$cache/bin/version" 2>/dev/null)" = "$VERSION" ]; then return 0; fi
  command -v go >/dev/null || die "go not found"
  go_env
  log "building InfluxDB $VERSION (first time takes a few minutes)"
  rm -rf "$cache/bin.tmp"
  GOBIN="$cache/bin.tmp" go install -p "${BLOOP_BUILD_JOBS:-2}" -trimpath \
    -ldflags="-s -w -X main.version=$VERSION -X main.branch=${VERSION%.*}" \
    "github.com/influxdata/influxdb/cmd/influxd@v$VERSION"
  mkdir -p "$cache/bin"
  mv "$cache/bin.tmp/influxd" "$bin"; rm -rf "$cache/bin.tmp"
  echo "$VERSION" >"$cache/bin/version"
  log "built $bin"
}

write_config() { # dir
  cat >"$1/influxdb.conf" <<CONF
reporting-disabled = true
bind-address = "127.0.0.1:$RPC_PORT"

[meta]
  dir = "$1/meta"

[data]
  dir = "$1/data"
  wal-dir = "$1/wal"
  query-log-enabled = false

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:$PORT"
  auth-enabled = false
  flux-enabled = true
  log-enabled = true
  suppress-write-log = true
  pprof-enabled = false

[logging]
  level = "${BLOOP_INFLUX_LOG_LEVEL:-info}"
  suppress-logo = true
CONF
}

health_ok() { # GET /health answers 200
  ( exec 3<>"/dev/tcp/127.0.0.1/$PORT" || exit 1
    printf 'GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
    IFS= read -r -t 2 status <&3 && [[ "$status" == *" 200 "* ]] ) 2>/dev/null
}

do_start() {
  local dir deadline; dir="$(run_dir)"
  write_config "$dir"
  start_bg "$(cache_dir)/bin/influxd" run -config "$dir/influxdb.conf"
  wait_port 127.0.0.1 "$PORT" 60
  deadline=$((SECONDS + 60))
  until health_ok; do
    is_running || { log "process exited; last log lines:"; tail -n 30 "$dir/log" >&2; return 1; }
    [ $SECONDS -ge $deadline ] && { log "/health not ready after 60s"; tail -n 30 "$dir/log" >&2; return 1; }
    sleep 0.3
  done
  log "up on http://127.0.0.1:$PORT (InfluxDB $VERSION)"
}

main "$@"
