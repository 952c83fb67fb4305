"""The store `bench scale` reads: the synthetic sweep (sweeper.bench.scale_trials) written
with `sweeper.record.writer`'s names, so that it follows the tracking contract: the parent
through `SweepTracker.open_sweep`, `log_summary` and `end_sweep`; each trial's run through
`SweepTracker.trial_run` and `end_trial`. Only the delivery differs, for speed: each run's
metrics (every epoch) and worker tags go in one `log_batch` instead of one per epoch; the
points and tags are the same.

Two writers: `mlflow` (the default) writes every run through MLflow's API, 0.2-0.4 s a
trial run on SQLite (10,000 trials: about 50 minutes); `sql` writes the parent and the
first trial's run so, then inserts the other trial runs' rows straight into the SQLite
store (sweeper.bench.bulk_store), the same rows (tests/sweeper/test_bench.py compares the
two stores run by run), in seconds.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from sweeper.bench.errors import BenchError
from sweeper.bench.format import say
from sweeper.bench.scale_trials import (
    SCALE_SPEC,
    SEED,
    Outcome,
    asha_rungs,
    sampled_trials,
    scale_overrides,
    scale_spec,
    trial_key,
    trial_metrics,
    trial_outcome,
    worker_tags,
)

if TYPE_CHECKING:
    from mlflow.entities import Metric

    from sweeper.bench.bulk_store import RunRows
    from sweeper.record.writer import SweepTracker
    from sweeper.spec.trials import Trial

WRITERS = ("mlflow", "sql")


@dataclass(frozen=True)
class Store:
    """The sweep the commands read."""

    tracking_uri: str
    name: str
    experiment_id: str
    parent_id: str
    created: bool  # False: an earlier run's store (--keep) was used as it was
    seconds: float  # writing it (0 when reused)
    metric_points: int  # 0 when reused (not counted again)
    writer: str = "mlflow"  # which wrote it (WRITERS); "" when reused


def make_store(tracking_uri: str, trials: int, epochs: int, artifacts: Path | None,
               threads: int, progress: TextIO | None = None, writer: str = "mlflow") -> Store:
    """The sweep of `trials` synthetic trials in the store at `tracking_uri` (an SQLite
    store's artifacts under `artifacts`), written by `writer` (WRITERS), or the one an
    earlier run left there."""
    from sweeper.record.store import sqlite_path
    from sweeper.record.writer import SweepTracker
    from sweeper.search import num_trials, summary

    if writer not in WRITERS:
        raise BenchError(f"unknown writer {writer!r}: use one of {', '.join(WRITERS)}")
    database = sqlite_path(tracking_uri)
    if writer == "sql" and database is None:
        raise BenchError(f"--writer sql inserts into an SQLite store's file; {tracking_uri} "
                         "is not one: use --writer mlflow")
    spec = scale_spec(trials, epochs)
    tracker = SweepTracker(tracking_uri, spec.name)
    tracker.check_available()
    parent = tracker.existing_sweep()
    if parent is not None:
        if parent.status != "FINISHED":
            raise BenchError(f"{tracking_uri} holds an unfinished sweep {spec.name!r} (an "
                             "interrupted bench): delete its experiment or use another store")
        say(progress, f"scale: using the sweep {spec.name!r} already in {tracking_uri}")
        return Store(tracking_uri, spec.name, parent.experiment_id, parent.run_id,
                     created=False, seconds=0.0, metric_points=0, writer="")

    started = time.perf_counter()
    if artifacts is not None and tracker.client.get_experiment_by_name(spec.name) is None:
        # Artifacts beside the store, not in ./mlruns of wherever the bench was started.
        tracker.client.create_experiment(spec.name, artifact_location=artifacts.as_uri())
    tracker.open_sweep(SCALE_SPEC, summary(spec), num_trials(spec),
                       params={"warm_start_trials": "0"},
                       overrides=scale_overrides(trials, epochs))
    rng = random.Random(SEED)
    rungs = asha_rungs(spec, epochs)
    start_ms = int(time.time() * 1000)
    jobs = [(trial, trial_outcome(rng, epochs, rungs), random.Random(rng.random()))
            for trial in sampled_trials(spec, rng)]
    written = (_insert_rows(tracker, database, jobs, start_ms) if database and
               writer == "sql" else
               _through_api(tracker, spec.name, jobs, start_ms, threads))
    points = 0
    for done, count in enumerate(written, start=1):
        points += count
        if done % 1000 == 0 or done == trials:
            say(progress, f"scale: {done}/{trials} trial runs written "
                          f"({time.perf_counter() - started:.0f} s)")
    tracker.log_summary(tracker.trial_runs(), spec.metric, spec.mode)
    tracker.end_sweep("FINISHED")
    return Store(tracking_uri, spec.name, tracker.experiment_id, tracker.parent_id,
                 created=True, seconds=time.perf_counter() - started, metric_points=points,
                 writer=writer)


Job = tuple["Trial", Outcome, random.Random]  # a trial, how it ends, its metrics' draws


def _through_api(tracker: SweepTracker, name: str, jobs: list[Job], start_ms: int,
                 threads: int) -> Iterator[int]:
    """Each trial's run through MLflow's API (write_trial); the metric points of each."""
    from sweeper.record.writer import SweepTracker

    local = threading.local()

    def write(job: Job) -> int:
        if not hasattr(local, "tracker"):  # a tracker's bookkeeping is not thread-safe
            local.tracker = SweepTracker(tracker.tracking_uri, name)
            local.tracker.experiment_id = tracker.experiment_id
            local.tracker.parent_id = tracker.parent_id
        trial, outcome, trial_rng = job
        return write_trial(local.tracker, trial, outcome,
                           trial_metrics(trial, outcome, trial_rng, start_ms))

    with ThreadPoolExecutor(max_workers=threads) as pool:
        yield from pool.map(write, jobs)


def _insert_rows(tracker: SweepTracker, database: Path, jobs: list[Job],
                 start_ms: int) -> Iterator[int]:
    """The first trial's run through MLflow's API, the others as its rows (trial_rows)
    inserted into the store; the metric points of each."""
    from sweeper.bench.bulk_store import insert_runs

    (trial, outcome, trial_rng), rest = jobs[0], jobs[1:]
    yield write_trial(tracker, trial, outcome, trial_metrics(trial, outcome, trial_rng,
                                                             start_ms))
    template = tracker.trial_runs()[0]
    counts: list[int] = []

    def rows(job: Job) -> RunRows:
        trial, outcome, trial_rng = job
        points = trial_metrics(trial, outcome, trial_rng, start_ms)
        counts.append(len(points))
        # a millisecond apart, in the order the API writer creates them: oldest first
        return trial_rows(trial, outcome, points, tracker.parent_id,
                          template.start_time + trial.index)

    for _ in insert_runs(database, template.run_id, map(rows, rest)):
        yield counts.pop(0)


def trial_rows(trial: Trial, outcome: Outcome, points: list[Metric], parent_id: str,
               start_time: int) -> RunRows:
    """A trial's run as write_trial leaves it, as rows: the tags `SweepTracker.trial_run`
    gives it, its params, every metric point, the worker's tags, and how it ended (its
    status, a stop's or an error's tag, as `SweepTracker.end_trial` writes them)."""
    from sweeper.bench.bulk_store import Point, RunRows
    from sweeper.record.contract import (
        DESCRIPTION_TAG,
        ERROR_TAG,
        HASH_TAG,
        INDEX_TAG,
        KIND_TAG,
        PARENT_TAG,
        STOPPED_TAG,
        TRIAL_ID_TAG,
        TRIAL_KIND,
        run_name,
        trial_params,
    )

    tags = {PARENT_TAG: parent_id, KIND_TAG: TRIAL_KIND, HASH_TAG: trial.config_hash,
            TRIAL_ID_TAG: trial_key(trial.index), INDEX_TAG: str(trial.index),
            DESCRIPTION_TAG: json.dumps(trial.config.model_dump(mode="json"), indent=1),
            **worker_tags(trial.index)}
    if outcome.stopped:
        tags[STOPPED_TAG] = str(outcome.reached)
    if outcome.error:
        tags[ERROR_TAG] = outcome.error[:4000]
    return RunRows(name=run_name(trial.params, with_seed=False), status=outcome.status,
                   start_time=start_time, end_time=start_time + 1, tags=tags,
                   params=trial_params(trial),
                   metrics=[Point(p.key, p.value, p.timestamp, p.step) for p in points])


def write_trial(tracker: SweepTracker, trial: Trial, outcome: Outcome,
                points: list[Metric]) -> int:
    """One trial's run as a sweep leaves it; returns how many metric points it holds."""
    from mlflow.entities import RunTag

    from sweeper.record.contract import STOPPED_TAG

    run_id = tracker.trial_run(trial, with_seed=False, key=trial_key(trial.index))
    worker = [RunTag(k, v) for k, v in worker_tags(trial.index).items()]
    for start in range(0, len(points), 1000):  # MLflow's batch limit
        tracker.client.log_batch(run_id, metrics=points[start : start + 1000],
                                 tags=worker if start == 0 else [])
    tags = {STOPPED_TAG: str(outcome.reached)} if outcome.stopped else None
    tracker.end_trial(run_id, outcome.status, outcome.error, tags)
    tracker.settle()  # in the store before the caller moves on (a writer thread's tracker)
    return len(points)
