#!/usr/bin/env bash
# FerretDB 1.24 (MongoDB wire protocol) with its SQLite backend, on 127.0.0.1:${BLOOP_MONGO_PORT:-27017}.
# Built with Go from the module proxy through the small wrapper module in infra/ferretdb/
# (FerretDB's embeddable package); SQLite files live in the run dir.
NAME=ferretdb
source "$(dirname "$0")/lib.sh"
PORT="${BLOOP_MONGO_PORT:-27017}"
SRC="$INFRA_DIR/ferretdb"

go_env() { # self-contained Go workspace inside the cache dir
  local cache; cache="$(cache_dir)"
  export GOPATH="$cache/go" GOMODCACHE="$cache/go/pkg/mod" GOCACHE="$cache/go/build-cache"
  export GOTOOLCHAIN=local GOFLAGS="-mod=mod -modcacherw -buildvcs=false" CGO_ENABLED=0
}

src_stamp() { cat "$SRC/go.mod" "$SRC/go.sum" "$SRC"/*.go | sha256sum | cut -c1-16; }

do_install() {
  local cache bin stamp; cache="$(cache_dir)"; bin="$cache/bin/ferretdb"; stamp="$(src_stamp)"
  if [ -x "$bin" ] && [ "$(cat "$cache/bin/stamp" 2>/dev/null)" = "$stamp" ]; then return 0; fi
  command -v go >/dev/null || die "go not found (needs Go >= 1.24)"
  go_env
  log "building FerretDB (first time takes a few minutes)"
  mkdir -p "$cache/bin"
  (cd "$SRC" && go build -p "${BLOOP_BUILD_JOBS:-2}" -trimpath -ldflags='-s -w' -o "$bin.tmp" .)
  mv "$bin.tmp" "$bin"
  echo "$stamp" >"$cache/bin/stamp"
  log "built $bin"
}

do_start() {
  local dir; dir="$(run_dir)"
  mkdir -p "$dir/data"
  start_bg "$(cache_dir)/bin/ferretdb" -host 127.0.0.1 -port "$PORT" -data-dir "$dir/data" \
    -log-level "${BLOOP_MONGO_LOG_LEVEL:-warn}"
  wait_port 127.0.0.1 "$PORT" 60
  log "up on 127.0.0.1:$PORT (mongodb://127.0.0.1:$PORT/)"
}

main "$@"
