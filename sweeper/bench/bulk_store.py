"""Runs written straight into an MLflow SQLite store's tables, for stores of thousands of
trial runs: MLflow's API takes 0.2-0.4 s a trial run (create, params, metrics, end), so
10,000 take about 50 minutes; these inserts take a few seconds.

Each run is shaped like a template run that MLflow's API wrote to the same store (its
experiment, user, source and artifact root), and holds the rows MLflow would write for it:
`runs`, `tags` (with `mlflow.runName`), `params`, `metrics` (every point) and
`latest_metrics` (per key the point with the largest (step, timestamp, value), as
MLflow's SQL store keeps it). A template that MLflow recorded anywhere else (dataset
inputs, model links) is refused: these rows would miss it.
"""

from __future__ import annotations

import math
import sqlite3
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from sweeper.record.contract import RUN_NAME_TAG

# The tables holding a run's rows, all keyed by run_uuid.
RUN_TABLES = ("runs", "tags", "params", "metrics", "latest_metrics")
BATCH = 1_000  # runs per transaction


class Point(NamedTuple):
    key: str
    value: float
    timestamp: int  # ms since the epoch
    step: int


@dataclass(frozen=True)
class RunRows:
    """One run as the store will hold it (its id is assigned on insert)."""

    name: str
    status: str  # FINISHED, FAILED, KILLED, RUNNING
    start_time: int  # ms since the epoch
    end_time: int | None
    tags: Mapping[str, str]  # without mlflow.runName: it is the run's name
    params: Mapping[str, str]
    metrics: Sequence[Point]  # every logged point; finite values only


class BulkWriteRefused(Exception):
    """The template run cannot be copied faithfully."""


def latest_points(points: Iterable[Point]) -> list[Point]:
    """Per key, the point MLflow's SQL store keeps as its latest."""
    latest: dict[str, Point] = {}
    for point in points:
        held = latest.get(point.key)
        if held is None or (point.step, point.timestamp, point.value) > (
                held.step, held.timestamp, held.value):
            latest[point.key] = point
    return list(latest.values())


def insert_runs(database: Path, template_run_id: str, runs: Iterable[RunRows],
                batch: int = BATCH) -> Iterator[str]:
    """Insert `runs` beside the template run, `batch` runs a transaction; yields each new
    run id once its batch is committed (so that a caller can count progress)."""
    with sqlite3.connect(database) as connection:
        template = _template(connection, template_run_id)
        pending = _Batch()
        for rows in runs:
            pending.add(template, rows)
            if len(pending.run_ids) == batch:
                yield from pending.commit(connection)
                pending = _Batch()
        yield from pending.commit(connection)


def _template(connection: sqlite3.Connection, run_id: str) -> dict[str, object]:
    connection.row_factory = sqlite3.Row
    row = connection.execute("SELECT * FROM runs WHERE run_uuid = ?", (run_id,)).fetchone()
    connection.row_factory = None
    if row is None:
        raise BulkWriteRefused(f"no run {run_id} in the store")
    for (table,) in connection.execute("SELECT name FROM sqlite_master WHERE type='table'"):
        if table in RUN_TABLES:
            continue
        columns = {info[1] for info in connection.execute(f'PRAGMA table_info("{table}")')}
        for column in sorted(columns & {"run_uuid", "run_id", "source_id", "destination_id"}):
            found = connection.execute(
                f'SELECT 1 FROM "{table}" WHERE "{column}" = ? LIMIT 1', (run_id,)).fetchone()
            if found:
                raise BulkWriteRefused(f"the template run {run_id} has rows in table {table!r}, "
                                       "which bulk writing does not copy")
    return dict(row)


class _Batch:
    """The rows of some runs, inserted in one transaction: one statement per table."""

    def __init__(self) -> None:
        self.run_ids: list[str] = []
        self.runs: list[list[object]] = []
        self.columns: list[str] = []
        self.tags: list[tuple[str, str, str]] = []
        self.params: list[tuple[str, str, str]] = []
        self.metrics: list[tuple[str, float, int, str, int]] = []
        self.latest: list[tuple[str, float, int, int, str]] = []

    def add(self, template: Mapping[str, object], rows: RunRows) -> None:
        run_id = uuid.uuid4().hex
        old_id = str(template["run_uuid"])
        run = {**template, "run_uuid": run_id, "name": rows.name, "status": rows.status,
               "start_time": rows.start_time, "end_time": rows.end_time,
               "artifact_uri": str(template["artifact_uri"]).replace(old_id, run_id)}
        for point in rows.metrics:
            if not math.isfinite(point.value):
                raise BulkWriteRefused(f"metric {point.key!r} = {point.value}: bulk writing "
                                       "takes finite values only")
        self.columns = list(run)
        self.run_ids.append(run_id)
        self.runs.append(list(run.values()))
        tags = {**rows.tags, RUN_NAME_TAG: rows.name}
        self.tags += [(k, v, run_id) for k, v in tags.items()]
        self.params += [(k, v, run_id) for k, v in rows.params.items()]
        self.metrics += [(p.key, p.value, p.timestamp, run_id, p.step) for p in rows.metrics]
        self.latest += [(p.key, p.value, p.timestamp, p.step, run_id)
                        for p in latest_points(rows.metrics)]

    def commit(self, connection: sqlite3.Connection) -> list[str]:
        if self.run_ids:
            columns = ", ".join(f'"{c}"' for c in self.columns)
            connection.executemany(f"INSERT INTO runs ({columns}) VALUES "
                                   f"({', '.join('?' * len(self.columns))})", self.runs)
            connection.executemany("INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)",
                                   self.tags)
            connection.executemany("INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)",
                                   self.params)
            connection.executemany(
                "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) "
                "VALUES (?, ?, ?, ?, ?, 0)", self.metrics)
            connection.executemany(
                "INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) "
                "VALUES (?, ?, ?, ?, 0, ?)", self.latest)
        connection.commit()
        return self.run_ids
