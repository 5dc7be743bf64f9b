#!/usr/bin/env bash
# Set up everything a fresh machine needs, idempotently, then get out of the way:
#   * .venv/ with requirements.txt and this package (skipped when unchanged),
#   * TimescaleDB on the local PostgreSQL server where it can be had,
#   * the warehouse schema (etl db init).
# Sourced by scripts/run.sh and scripts/test.sh; safe to run again.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

PYTHON=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  echo "[bootstrap] creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi

# pip repeats a harmless warning per package about a missing local index;
# sed (unlike grep -v) never fails, so with pipefail a pip failure stops us.
quiet_pip_warnings() { sed '/^WARNING: Location/d'; }

stamp=.venv/.installed-$(cat requirements.txt pyproject.toml | sha256sum | cut -c1-16)
if [[ ! -f "$stamp" ]]; then
  echo "[bootstrap] installing requirements (a minute on a fresh machine)"
  .venv/bin/python -m pip install -q --upgrade pip 2>&1 | quiet_pip_warnings
  .venv/bin/python -m pip install -q -r requirements.txt 2>&1 | quiet_pip_warnings
  .venv/bin/python -m pip install -q --no-deps -e . 2>&1 | quiet_pip_warnings
  .venv/bin/python -c "import etl, airflow, pandas, psycopg2" # fail loudly if the install did not take
  rm -f .venv/.installed-* && touch "$stamp"
fi

if [[ "${ETL_SKIP_TIMESCALEDB:-0}" != "1" ]]; then
  bash scripts/install_timescaledb.sh || true
fi

# The dashboards' browser tests drive Debian's chromium with its chromedriver
# (docs/dashboards.md); install them when missing and we may (root, apt).
if [[ "${ETL_SKIP_BROWSER:-0}" != "1" && ! -x /usr/bin/chromedriver && $(id -u) == 0 ]] \
   && command -v apt-get >/dev/null; then
  echo "[bootstrap] installing chromium and chromium-driver for the browser tests"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
    || echo "[bootstrap] could not install chromium; the browser tests will be skipped"
fi

# The JDBC test (tests/test_jdbc_tls.py) runs a small Java program with Debian's
# pgjdbc, as Tableau or DBeaver would connect (docs/jdbc_setup.md); Java 17 is on
# the machines, the driver is installed here when missing and we may (root, apt).
if [[ "${ETL_SKIP_JDBC:-0}" != "1" && ! -f /usr/share/java/postgresql.jar && $(id -u) == 0 ]] \
   && command -v apt-get >/dev/null; then
  echo "[bootstrap] installing libpostgresql-jdbc-java for the JDBC test"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libpostgresql-jdbc-java >/dev/null) \
    || echo "[bootstrap] could not install pgjdbc; the JDBC test will be skipped"
fi
