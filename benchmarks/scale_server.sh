#!/usr/bin/env bash
# `sweeper bench scale` against an MLflow tracking server on PostgreSQL, both started
# here on loopback as docker/compose.yaml starts them (mlflow server
# --backend-store-uri postgresql://...), in a folder of their own that this script
# removes when it ends (unless KEEP=1, so that a second run reuses the written store).
#
#   bash benchmarks/scale_server.sh 1000          # N trials, 11 epochs
#   KEEP=1 DIR=/tmp/pg-scale bash benchmarks/scale_server.sh 10000
#   WRITER=sql bash benchmarks/scale_server.sh 10000
#
# WRITER=sql: the store is written as rows of an SQLite store (`--writer sql`, measured
# there first: the SQLite figures of the same store) and copied into PostgreSQL
# (benchmarks/sqlite_to_postgres.py); 10,000 trials take minutes instead of the ~15
# that MLflow's API takes through the server.
#
# Needs PostgreSQL's server binaries (Debian: apt-get install postgresql) and the
# project's virtualenv (.venv, `make install`).
set -euo pipefail
cd "$(dirname "$0")/.."
trials=${1:-1000}
dir=${DIR:-$(mktemp -d /tmp/sweeper-scale-server.XXXX)}
bin=$(ls -d /usr/lib/postgresql/*/bin | tail -n 1)
pg_port=${PG_PORT:-55432}
mlflow_port=${MLFLOW_PORT:-55000}
user=$(id -un)
run_pg() { if [ "$(id -u)" = 0 ]; then su postgres -c "$*"; else bash -c "$*"; fi; }

mkdir -p "$dir"
[ "$(id -u)" = 0 ] && chown postgres "$dir"
if [ ! -d "$dir/data" ]; then
  run_pg "$bin/initdb -D $dir/data -U $user -A trust" >/dev/null
fi
run_pg "$bin/pg_ctl -D $dir/data -o '-p $pg_port -k $dir -h 127.0.0.1' -l $dir/pg.log -w start" >/dev/null
stop() {
  kill "${server:-0}" 2>/dev/null || true
  wait "${server:-0}" 2>/dev/null || true
  run_pg "$bin/pg_ctl -D $dir/data -m fast stop" >/dev/null || true
  [ "${KEEP:-0}" = 1 ] || rm -rf "$dir"
}
trap stop EXIT
run_pg "$bin/createdb -h 127.0.0.1 -p $pg_port -U $user mlflow" 2>/dev/null || true

MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false .venv/bin/mlflow server \
  --backend-store-uri "postgresql://$user@127.0.0.1:$pg_port/mlflow" \
  --artifacts-destination "$dir/artifacts" --host 127.0.0.1 --port "$mlflow_port" \
  --workers 2 >"$dir/mlflow.log" 2>&1 &
server=$!
for _ in $(seq 120); do
  curl -sf "http://127.0.0.1:$mlflow_port/health" >/dev/null && break
  sleep 1
done
if [ "${WRITER:-mlflow}" = sql ]; then
  .venv/bin/sweeper bench scale --trials "$trials" --writer sql --keep "$dir/sqlite" --json
  .venv/bin/python benchmarks/sqlite_to_postgres.py "$dir/sqlite/mlflow.db" \
    "postgresql://$user@127.0.0.1:$pg_port/mlflow"
fi
.venv/bin/sweeper bench scale --trials "$trials" --tracking-uri "http://127.0.0.1:$mlflow_port" --json
