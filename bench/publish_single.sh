#!/usr/bin/env bash
# Single-message HTTP publish: wrk, 32 connections, a ~100-byte JSON object per POST.
# Options (see bench/wrk_publish.py --help): --workers 1,2 --runs 3 --duration 10 --profile DIR
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
exec "$root/.venv/bin/python" "$root/bench/wrk_publish.py" single "$@"
