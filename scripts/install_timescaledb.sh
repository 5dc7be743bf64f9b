#!/usr/bin/env bash
# Make the TimescaleDB extension available to the local PostgreSQL server.
#
# Why a build: Debian bookworm packages no TimescaleDB and Timescale's own
# repository is not reachable on our build machines, so we build the Apache-2
# edition from Debian trixie's *source* package against the local server
# (see docs/warehouse.md). Where the vendor's packages are reachable, prefer them.
# The build has telemetry compiled out (-DUSE_TELEMETRY=OFF): these machines have no internet.
#
# Idempotent: skips the build when timescaledb.control is already installed and
# skips the restart when the library is already preloaded. Never fails the caller:
# without TimescaleDB the warehouse runs on plain PostgreSQL (etl db status says so).
set -uo pipefail

log() { echo "[timescaledb] $*"; }

PG_CONFIG=${PG_CONFIG:-$(ls -d /usr/lib/postgresql/*/bin/pg_config 2>/dev/null | sort -V | tail -1)}
if [[ -z "${PG_CONFIG}" || ! -x "${PG_CONFIG}" ]]; then
  log "no local PostgreSQL server binaries found; skipping (the warehouse works without TimescaleDB)"
  exit 0
fi
PG_MAJOR=$("${PG_CONFIG}" --version | sed -E 's/[^0-9]*([0-9]+).*/\1/')
EXT_DIR="$("${PG_CONFIG}" --sharedir)/extension"

build_from_debian_source() {
  if [[ $(id -u) -ne 0 ]]; then
    log "not root: cannot install build dependencies; skipping"
    return 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null || return 1
  apt-get install -y -qq "postgresql-server-dev-${PG_MAJOR}" cmake build-essential dpkg-dev \
      libssl-dev libkrb5-dev >/dev/null || return 1
  local A=/tmp/tsdb-apt
  mkdir -p "$A/lists/partial" "$A/cache/archives/partial"
  printf 'deb-src http://deb.debian.org/debian trixie main\n' > "$A/sources.list"
  local o=(-oDir::Etc::SourceList="$A/sources.list" -oDir::Etc::SourceParts=/dev/null
           -oDir::State::Lists="$A/lists" -oDir::Cache="$A/cache")
  apt-get "${o[@]}" update -qq >/dev/null || return 1
  local work=/tmp/tsdb-src
  rm -rf "$work" && mkdir -p "$work"
  (cd "$work" && apt-get "${o[@]}" source --download-only timescaledb >/dev/null \
      && dpkg-source -x timescaledb_*.dsc >/dev/null) || return 1
  local src
  src=$(ls -d "$work"/timescaledb-*/ | head -1)
  cmake -S "$src" -B "$src/build" -DPG_CONFIG="${PG_CONFIG}" -DAPACHE_ONLY=ON \
      -DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF -DWARNINGS_AS_ERRORS=OFF \
      -DSEND_TELEMETRY_DEFAULT=OFF -DUSE_TELEMETRY=OFF -DGENERATE_DOWNGRADE_SCRIPT=OFF >/dev/null || return 1
  make -C "$src/build" -j"$(nproc)" >/dev/null && make -C "$src/build" install >/dev/null
}

if [[ -f "${EXT_DIR}/timescaledb.control" ]]; then
  log "extension files already installed in ${EXT_DIR}"
else
  log "building the Apache edition from Debian's source package (about a minute)"
  if ! build_from_debian_source; then
    log "could not build TimescaleDB; the warehouse will use plain PostgreSQL"
    exit 0
  fi
fi

# Preload the library on the local cluster, keeping whatever is already listed.
PSQL=(psql -X -q -t -A -h "${PGHOST:-127.0.0.1}" -p "${PGPORT:-5432}" -U "${PGUSER:-postgres}" -d postgres)
if ! current=$("${PSQL[@]}" -c "SHOW shared_preload_libraries" 2>/dev/null); then
  log "local server not reachable; extension files are installed, preload not configured"
  exit 0
fi
if [[ ",${current// /}," == *",timescaledb,"* ]]; then
  log "already preloaded"
  exit 0
fi
new=${current:+${current},}timescaledb
"${PSQL[@]}" -c "ALTER SYSTEM SET shared_preload_libraries = '${new}'" || exit 0
if command -v pg_ctlcluster >/dev/null && [[ $(id -u) -eq 0 ]]; then
  log "restarting the local cluster to load the library"
  # -m fast: roll back open sessions instead of waiting on them forever.
  pg_ctlcluster --skip-systemctl-redirect "${PG_MAJOR}" main restart -m fast || log "restart failed"
  for _ in $(seq 1 30); do pg_isready -q -h "${PGHOST:-127.0.0.1}" -p "${PGPORT:-5432}" && break; sleep 1; done
else
  log "restart the PostgreSQL server yourself to load timescaledb"
fi
