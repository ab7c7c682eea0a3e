#!/usr/bin/env bash
# The whole test suite: lint, types, event schemas, then every test layer against real servers.
# Servers it starts are stopped at the end; servers already running are reused and left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
bash infra/media.sh  # ffmpeg, espeak-ng and Manim's build headers for the narration/video tests

$BIN/ruff check bloop tests bench
$BIN/mypy
$BIN/bloop events schemas

started=$(mktemp)
trap '$BIN/bloop infra down $(cat "$started") >/dev/null 2>&1 || true; rm -f "$started"' EXIT
$BIN/bloop infra up --fresh | tee /dev/stderr | awk -F: '/started/ {print $1}' >"$started"

$BIN/pytest -p no:cacheprovider -q -rfEx tests
