#!/usr/bin/env bash
# Helm, to render and lint the chart in helm/ (tests/unit/test_helm_chart.py): built once with Go
# from the module proxy into $BLOOP_INFRA_CACHE/helm/bin/helm. Not a server: nothing runs.
NAME=helm
source "$(dirname "$0")/lib.sh"
VERSION=v4.3.2

do_install() {
  local cache bin; cache="$(cache_dir)"; bin="$cache/bin/helm"
  if [ -x "$bin" ] && [ "$(cat "$cache/bin/version" 2>/dev/null)" = "$VERSION" ]; then return 0; fi
  command -v go >/dev/null || die "go not found"
  export GOPATH="$cache/go" GOMODCACHE="$cache/go/pkg/mod" GOCACHE="$cache/go/build-cache"
  export GOTOOLCHAIN=local GOFLAGS="-mod=mod -modcacherw -buildvcs=false" CGO_ENABLED=0
  log "building Helm $VERSION (first time takes a few minutes)"
  mkdir -p "$cache/bin"
  GOBIN="$cache/bin" go install -p "${BLOOP_BUILD_JOBS:-2}" -trimpath -ldflags='-s -w' \
    "helm.sh/helm/v4/cmd/helm@$VERSION"
  echo "$VERSION" >"$cache/bin/version"
  log "built $bin"
}

case "${1:-install}" in
  install) do_install ;;
  status) if [ -x "$(cache_dir)/bin/helm" ]; then echo "installed"; else echo "missing"; exit 3; fi ;;
  *) echo "usage: $0 [install|status]" >&2; exit 2 ;;
esac
