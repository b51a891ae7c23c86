#!/usr/bin/env bash
# Start a local PostgreSQL server for the distributed LCPFNPruner test (tests/test_optuna_pruner.py).
#
# Idempotent: installs the Debian package `postgresql` if it is missing, creates a cluster if there
# is none, makes it listen on 127.0.0.1 only, starts it, and creates the role and database below.
# The test reads LCPFN_TEST_POSTGRES_URL, whose default is the DSN this script creates:
#   postgresql+psycopg2://lcpfn:lcpfn@127.0.0.1:5432/lcpfn_test
# Outside CI (env CI unset) a machine where this cannot be done only gets a warning and the test
# is skipped; in CI it is an error.
set -euo pipefail

PG_USER=lcpfn
PG_PASSWORD=lcpfn
PG_DB=lcpfn_test
PG_PORT=5432

fail() {
  if [ -n "${CI:-}" ]; then
    echo "setup-postgres: $*" >&2
    exit 1
  fi
  echo "setup-postgres: $* (not in CI: skipping; the PostgreSQL test will be skipped)" >&2
  exit 0
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo -n "$@"
  else
    return 1
  fi
}

as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    sudo -n -u postgres "$@"
  fi
}

if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ -z "$(ls /usr/lib/postgresql 2>/dev/null)" ]; then
  command -v apt-get >/dev/null 2>&1 || fail "apt-get not found; install PostgreSQL by hand"
  echo "setup-postgres: installing the Debian package postgresql"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq || fail "apt-get update failed"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null \
    || fail "apt-get install postgresql failed"
fi

PG_VERSION="$(ls /usr/lib/postgresql | sort -V | tail -1)"
if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -qx "$PG_VERSION main"; then
  as_root pg_createcluster --port "$PG_PORT" "$PG_VERSION" main >/dev/null \
    || fail "could not create a PostgreSQL $PG_VERSION cluster"
fi

CONF_DIR="/etc/postgresql/$PG_VERSION/main/conf.d"
CONF_FILE="$CONF_DIR/lcpfn-test.conf"
WANT="listen_addresses = '127.0.0.1'"
if [ "$(cat "$CONF_FILE" 2>/dev/null)" != "$WANT" ]; then
  as_root mkdir -p "$CONF_DIR"
  echo "$WANT" | as_root tee "$CONF_FILE" >/dev/null || fail "could not write $CONF_FILE"
  # A running cluster only picks up listen_addresses on restart.
  if pg_lsclusters -h | awk -v v="$PG_VERSION" '$1==v && $2=="main" {print $4}' | grep -q online; then
    as_root pg_ctlcluster "$PG_VERSION" main restart || fail "could not restart the cluster"
  fi
fi

if ! pg_lsclusters -h | awk -v v="$PG_VERSION" '$1==v && $2=="main" {print $4}' | grep -q online; then
  as_root pg_ctlcluster "$PG_VERSION" main start || fail "could not start the cluster"
fi

PORT="$(pg_lsclusters -h | awk -v v="$PG_VERSION" '$1==v && $2=="main" {print $3}')"
for _ in $(seq 1 30); do
  pg_isready -q -h 127.0.0.1 -p "$PORT" && break
  sleep 1
done
pg_isready -q -h 127.0.0.1 -p "$PORT" || fail "the server does not answer on 127.0.0.1:$PORT"

if ! as_postgres psql -p "$PORT" -tAc "SELECT 1 FROM pg_roles WHERE rolname='$PG_USER'" | grep -qx 1; then
  as_postgres psql -q -p "$PORT" -c "CREATE ROLE $PG_USER LOGIN PASSWORD '$PG_PASSWORD'"
fi
if ! as_postgres psql -p "$PORT" -tAc "SELECT 1 FROM pg_database WHERE datname='$PG_DB'" | grep -qx 1; then
  as_postgres psql -q -p "$PORT" -c "CREATE DATABASE $PG_DB OWNER $PG_USER"
fi
echo "setup-postgres: ready at postgresql://$PG_USER@127.0.0.1:$PORT/$PG_DB"
