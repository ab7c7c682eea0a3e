# Shared helpers for infra/<server>.sh scripts. Source it; do not run it.
# Every server: binds 127.0.0.1, keeps its build in $BLOOP_INFRA_CACHE/<name> (reused between runs)
# and its data, log and pid in $BLOOP_INFRA_RUN/<name> (throwaway).
set -euo pipefail

INFRA_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BLOOP_INFRA_CACHE="${BLOOP_INFRA_CACHE:-$HOME/.cache/bloop-infra}"
BLOOP_INFRA_RUN="${BLOOP_INFRA_RUN:-${TMPDIR:-/tmp}/bloop-infra}"

log() { printf '[infra:%s] %s\n' "${NAME:-?}" "$*" >&2; }
die() { log "error: $*"; exit 1; }

cache_dir() { mkdir -p "$BLOOP_INFRA_CACHE/$NAME"; printf '%s' "$BLOOP_INFRA_CACHE/$NAME"; }
run_dir() { mkdir -p "$BLOOP_INFRA_RUN/$NAME"; printf '%s' "$BLOOP_INFRA_RUN/$NAME"; }

port_open() { # host port
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0 || return 1
}

wait_port() { # host port seconds
  local deadline=$((SECONDS + $3))
  while ! port_open "$1" "$2"; do
    if ! is_running; then log "process exited; last log lines:"; tail -n 30 "$(run_dir)/log" >&2 || true; return 1; fi
    [ $SECONDS -ge $deadline ] && { log "port $2 not open after $3s"; tail -n 30 "$(run_dir)/log" >&2 || true; return 1; }
    sleep 0.3
  done
}

logged_since() { # file line-number extended-regex: does a line after line-number match?
  # One process, no pipe: under pipefail, `tail | grep -q` fails with SIGPIPE when grep stops
  # reading before tail has written everything, however early the line appears.
  PATTERN="$3" awk -v n="$2" 'NR > n && $0 ~ ENVIRON["PATTERN"] { found = 1; exit }
    END { exit !found }' "$1"
}

is_running() { # alive and not a zombie awaiting its parent
  local pidfile pid state; pidfile="$(run_dir)/pid"
  [ -f "$pidfile" ] || return 1
  pid="$(cat "$pidfile")"
  kill -0 "$pid" 2>/dev/null || return 1
  state="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || echo Z)"
  [ "$state" != "Z" ]
}

start_bg() { # command...  (runs in its own session, output to run_dir/log)
  local dir; dir="$(run_dir)"
  setsid nohup "$@" >>"$dir/log" 2>&1 </dev/null &
  echo $! >"$dir/pid"
}

stop_bg() { # [signal-timeout-seconds]
  local pidfile pid deadline; pidfile="$(run_dir)/pid"
  [ -f "$pidfile" ] || return 0
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + ${1:-30}))
    while is_running && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

apt_install() { # package...  (root on this machine; update the index once per run)
  if [ ! -f "$BLOOP_INFRA_RUN/.apt-updated" ]; then
    mkdir -p "$BLOOP_INFRA_RUN"; apt-get update -qq >&2 && touch "$BLOOP_INFRA_RUN/.apt-updated"
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

maven_libs() { # pom label: copies the pom's runtime jars into cache_dir/libs, once per pom content
  local pom="$1" cache stamp
  cache="$(cache_dir)"
  stamp="$cache/.installed-$(sha256sum "$pom" | cut -c1-16)"
  [ -f "$stamp" ] && return 0
  command -v mvn >/dev/null || apt_install maven
  log "resolving $2 jars from Maven Central"
  rm -rf "$cache/libs" "$cache"/.installed-*
  mvn -q -B -Dstyle.color=never -f "$pom" dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$cache/libs" >&2
  touch "$stamp"
}

# Dispatch: each server script defines do_install, do_start, do_stop (optional), do_status (optional)
# and calls `main "$@"` last. `start` installs first, is a no-op when already running, and
# `wipe` removes the data so the next start is fresh.
main() {
  case "${1:-}" in
    install) do_install ;;
    start) if is_running; then log "already running"; else do_install; do_start; fi ;;
    stop) if declare -F do_stop >/dev/null; then do_stop; else stop_bg; fi ;;
    status) if is_running; then echo "running pid $(cat "$(run_dir)/pid")"; else echo "stopped"; exit 3; fi ;;
    wipe) stop_bg; rm -rf "${BLOOP_INFRA_RUN:?}/$NAME" ;;
    *) echo "usage: $0 install|start|stop|status|wipe" >&2; exit 2 ;;
  esac
}
