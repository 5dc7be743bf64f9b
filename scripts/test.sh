#!/usr/bin/env bash
# README command 2: set up, then check the code (ruff lint + format, the import
# layers of pyproject.toml) and run the whole test suite against the real local
# PostgreSQL (each test session uses its own throwaway database).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
if grep -q '^\[tool.importlinter\]' pyproject.toml; then
  .venv/bin/lint-imports
fi
exec .venv/bin/python -m pytest "$@"
