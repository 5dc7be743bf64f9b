#!/usr/bin/env bash
# README command 1: set up, then run the whole pipeline on the shipped sample
# (or pass arguments to `etl run`, e.g. --data-dir ../shared/data/olist).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
.venv/bin/etl db init
exec .venv/bin/etl run "$@"
