#!/usr/bin/env bash
# README command 2: set up, then run the whole test suite against the real
# local PostgreSQL (each test session uses its own throwaway database).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
exec .venv/bin/python -m pytest "$@"
