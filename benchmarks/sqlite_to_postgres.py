"""Copy an MLflow SQLite store's experiments and runs into the PostgreSQL database of an
MLflow tracking server, so that `bash benchmarks/scale_server.sh` can measure a server on
a store of 10,000 trials written in a minute (`sweeper bench scale --writer sql`), not in
the quarter of an hour that MLflow's API takes through a server.

    python benchmarks/sqlite_to_postgres.py STORE.db postgresql://USER@HOST:PORT/DB

The database must hold MLflow's schema, of the same MLflow version (start `mlflow server`
on it once), and no experiment but MLflow's Default: rows keep their ids.
"""

from __future__ import annotations

import sqlite3
import sys

import psycopg
import sqlalchemy

# The tables a sweep's record lives in, parents before children.
TABLES = ("experiments", "experiment_tags", "runs", "tags", "params", "metrics",
          "latest_metrics")
DEFAULT_EXPERIMENT = 0  # MLflow's Default, which both stores hold already


def copy_store(sqlite_file: str, postgres_uri: str) -> None:
    source = sqlite3.connect(sqlite_file)
    schema = sqlalchemy.MetaData()
    schema.reflect(sqlalchemy.create_engine(postgres_uri.replace(
        "postgresql://", "postgresql+psycopg://", 1)))
    with psycopg.connect(postgres_uri) as target:
        with target.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM experiments WHERE experiment_id <> %s",
                           (DEFAULT_EXPERIMENT,))
            held = cursor.fetchone()
        if held and held[0]:
            print("the database holds experiments already (an earlier copy): not copied")
            return
        for table in TABLES:
            columns = [row[1] for row in source.execute(f'PRAGMA table_info("{table}")')]
            # SQLite keeps booleans as 0/1; PostgreSQL wants them as booleans.
            flags = [isinstance(schema.tables[table].columns[c].type, sqlalchemy.Boolean)
                     for c in columns]
            names = ", ".join(f'"{c}"' for c in columns)
            rows = source.execute(f'SELECT {names} FROM "{table}"')
            copied = 0
            with target.cursor() as cursor, cursor.copy(
                    f'COPY "{table}" ({names}) FROM STDIN') as copy:
                for row in rows:
                    if table == "experiments" and row[columns.index(
                            "experiment_id")] == DEFAULT_EXPERIMENT:
                        continue
                    copy.write_row([bool(v) if flag and v is not None else v
                                    for v, flag in zip(row, flags, strict=True)])
                    copied += 1
            print(f"{table}: {copied:,} rows", flush=True)
        with target.cursor() as cursor:  # new experiments get ids after the copied ones
            cursor.execute("SELECT setval(pg_get_serial_sequence('experiments', "
                           "'experiment_id'), (SELECT max(experiment_id) FROM experiments))")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    copy_store(sys.argv[1], sys.argv[2])
