"""A sweep's record as its readers use it: the parent run and one small `TrialRecord`
per trial run, read with one paginated query (`search_all`) and converted page by page,
so that no reader holds thousands of MLflow `Run` objects; from a tracking server, from
the JSON it sends, several pages at once (sweeper.record.server_runs). `status`, the
reports, the ui's links, the resume checks and warm starts all read through here.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from sweeper.record.contract import (
    BEST_TAG,
    DESCRIPTION_TAG,
    ERROR_TAG,
    HASH_TAG,
    INDEX_TAG,
    KIND_TAG,
    PARENT_TAG,
    REPEAT_TAG,
    RUN_NAME_TAG,
    STOPPED_TAG,
    SWEEP_KIND,
    TRIAL_ID_TAG,
    TRIAL_KIND,
)
from sweeper.record.server_runs import is_server, search_server

# Runs per page of `search_all`. From a SQL store directly: up to 50,000 a page are
# allowed, and larger pages cost memory, not time. From a tracking server each page is
# one request, which must come back within the client's read timeout (20 s for the
# read commands, sweeper.record.store): at 10,000 trials on a busy 2-core machine a
# page of 1,000 runs took ~7 s, one of 5,000 timed out.
PAGE_SIZE = 5_000
SERVER_PAGE_SIZE = 1_000


class ExperimentDeleted(Exception):
    """The sweep's experiment is in MLflow's trash: its name cannot be used."""


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while MLflow builds a page of runs: its SQL
    store creates objects for every param, tag and metric of each run, and the
    collections they set off scan the growing heap again and again (one page of 3,000
    runs of 38 params from SQLite: 8.2 s with the collector, 2.1 s without). On again
    before the page is used."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def search_all(client: MlflowClient, experiment_ids: list[str], filter_string: str = "",
               order_by: list[str] | None = None, page_size: int | None = None
               ) -> Iterator[Run]:
    """Every run matching the filter, a page at a time: the one way runs are listed."""
    if page_size is None:
        page_size = SERVER_PAGE_SIZE if is_server(client) else PAGE_SIZE
    token = None
    while True:
        with _collector_paused():
            page = client.search_runs(experiment_ids, filter_string=filter_string,
                                      order_by=order_by, max_results=page_size,
                                      page_token=token)
        yield from page
        token = page.token
        if not token:
            return


@dataclass(frozen=True, slots=True)
class TrialRecord:
    """One run of a sweep as recorded: what status, reports and checks read of it."""

    run_id: str
    name: str
    status: str  # MLflow's: FINISHED, FAILED, KILLED, RUNNING
    params: Mapping[str, str]
    metrics: Mapping[str, float]  # the latest value of each
    tags: Mapping[str, str]  # sweeper's own tags
    start_time: int  # ms since the epoch
    end_time: int | None  # ms since the epoch; None while the run is open
    description: str  # the trial's full config as JSON (the run's description)

    @classmethod
    def from_run(cls, run: Run) -> TrialRecord:
        tags = run.data.tags
        return cls(run_id=run.info.run_id, name=run.info.run_name or "",
                   status=run.info.status, params=run.data.params, metrics=run.data.metrics,
                   tags={k: v for k, v in tags.items() if k.startswith("sweeper.")},
                   start_time=run.info.start_time or 0, end_time=run.info.end_time,
                   description=tags.get(DESCRIPTION_TAG, ""))

    @classmethod
    def from_json(cls, run: Mapping[str, Any]) -> TrialRecord:
        """From a run as MLflow's REST API sends it (sweeper.record.server_runs)."""
        info, data = run["info"], run.get("data", {})
        tags = _pairs(data.get("tags", []))
        end = info.get("end_time")
        return cls(run_id=str(info.get("run_id") or info["run_uuid"]),
                   name=info.get("run_name") or tags.get(RUN_NAME_TAG, ""),
                   status=info.get("status", "RUNNING"), params=_pairs(data.get("params", [])),
                   # non-finite values come as "NaN", "Infinity", "-Infinity"
                   metrics={m["key"]: float(m.get("value", 0.0))
                            for m in data.get("metrics", [])},
                   tags={k: v for k, v in tags.items() if k.startswith("sweeper.")},
                   start_time=int(info.get("start_time", 0)),
                   end_time=None if end is None else int(end),
                   description=tags.get(DESCRIPTION_TAG, ""))

    @property
    def index(self) -> int | None:
        """Its place in the grid, or its Optuna trial number."""
        text = self.tags.get(INDEX_TAG, "")
        return int(text) if text.lstrip("-").isdigit() else None

    @property
    def trial_id(self) -> str:
        """Ray's trial id: the trial's identity (older runs: their config hash)."""
        return self.tags.get(TRIAL_ID_TAG) or self.tags.get(HASH_TAG, "")

    @property
    def config_hash(self) -> str:
        return self.tags.get(HASH_TAG, "")

    @property
    def error(self) -> str:
        return self.tags.get(ERROR_TAG, "")

    @property
    def stopped_at(self) -> int | None:
        """The epoch a scheduler stopped it at, when one did."""
        text = self.tags.get(STOPPED_TAG)
        return int(text) if text and text.isdigit() else None

    @property
    def repeat_of(self) -> str | None:
        return self.tags.get(REPEAT_TAG)

    @property
    def finished_in_full(self) -> bool:
        """FINISHED and ran every epoch: a candidate for "best"."""
        return self.status == "FINISHED" and self.stopped_at is None

    def value(self, metric: str) -> float | None:
        """Its final `metric`, when it logged a finite one."""
        value = self.metrics.get(metric)
        return value if value is not None and math.isfinite(value) else None


def _pairs(items: list[Mapping[str, str]]) -> dict[str, str]:
    return {item["key"]: item.get("value", "") for item in items}


@dataclass(frozen=True)
class ParentRecord:
    run_id: str
    experiment_id: str
    status: str
    params: Mapping[str, str]
    metrics: Mapping[str, float]
    tags: Mapping[str, str]

    @classmethod
    def from_run(cls, run: Run) -> ParentRecord:
        return cls(run_id=run.info.run_id, experiment_id=run.info.experiment_id,
                   status=run.info.status, params=run.data.params, metrics=run.data.metrics,
                   tags=run.data.tags)

    @property
    def best_trial(self) -> str | None:
        return self.tags.get(BEST_TAG)


def find_parent(client: MlflowClient, name: str) -> ParentRecord | None:
    """The parent run of the sweep `name` (its experiment), or None when the store has no
    such sweep; ExperimentDeleted when the experiment is in the trash."""
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        return None
    if experiment.lifecycle_stage == "deleted":
        raise ExperimentDeleted(
            f"experiment {name!r} was deleted in {client.tracking_uri} but still holds its "
            "name: restore it (mlflow experiments restore), purge it (mlflow gc), or pass "
            "--name for a new sweep")
    parents = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`{KIND_TAG}` = '{SWEEP_KIND}'",
        order_by=["attributes.start_time ASC"], max_results=1)
    return ParentRecord.from_run(parents[0]) if parents else None


def trial_records(client: MlflowClient, experiment_id: str, parent_id: str,
                  kind: str = TRIAL_KIND) -> list[TrialRecord]:
    """Every run of `kind` under the parent (default: the sweep's trials), oldest first."""
    query = f"tags.`{PARENT_TAG}` = '{parent_id}' AND tags.`{KIND_TAG}` = '{kind}'"
    if is_server(client):
        return list(search_server(client, [experiment_id], query, SERVER_PAGE_SIZE,
                                  TrialRecord.from_json))
    return [TrialRecord.from_run(run) for run in
            search_all(client, [experiment_id], query, order_by=["attributes.start_time ASC"])]


def runs_by_trial(records: list[TrialRecord]) -> dict[str, TrialRecord]:
    """Trial key (Ray trial id) -> its run; the first run when a key has several."""
    found: dict[str, TrialRecord] = {}
    for record in records:
        found.setdefault(record.trial_id, record)
    return found
