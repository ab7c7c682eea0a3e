#!/usr/bin/env bash
# The whole test suite: lint, types, event schemas, then every test layer against real servers.
# Servers it starts are stopped at the end; servers already running are reused and left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
bash infra/media.sh  # ffmpeg, espeak-ng and Manim's build headers for the narration/video tests
bash infra/helm.sh install  # Helm, built once, for the chart's test

$BIN/ruff check bloop tests bench
$BIN/mypy
$BIN/bloop events schemas

up=$(mktemp)
stop_started() {  # only those this run started (`infra down` with no name stops them all)
  local names; names=$(awk -F: '/started/ {print $1}' "$up")
  [ -z "$names" ] || $BIN/bloop infra down $names >/dev/null 2>&1 || true
  rm -f "$up"
}
trap stop_started EXIT
# To stderr by its descriptor: `tee /dev/stderr` reopens it, which empties it when it is a file.
$BIN/bloop infra up --fresh | tee "$up" >&2

$BIN/pytest -p no:cacheprovider -q -rfEx tests
