#!/usr/bin/env bash
# Batch HTTP publish: wrk, 32 connections, {"messages": [N x ~100-byte JSON objects]} per POST.
# Options (see bench/wrk_publish.py --help): --batch-sizes 100,1000 --workers 1,2 --runs 3 ...
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
exec "$root/.venv/bin/python" "$root/bench/wrk_publish.py" batch "$@"
