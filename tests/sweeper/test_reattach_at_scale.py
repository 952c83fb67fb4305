"""Every run of a sweep is read, however many pages it takes: `search_all`'s paging, and
a resume of a sweep of 10,050 trial runs (three pages of `search_all`) re-attaching each
of its trials to its run, creating none."""

from __future__ import annotations

import gc
import sqlite3
from pathlib import Path

import pytest
from mlflow.store.entities import PagedList
from mlflow.tracking import MlflowClient

from sweeper.bench.bulk_store import Point, RunRows, insert_runs
from sweeper.record.contract import INDEX_TAG, PARENT_TAG, TRIAL_ID_TAG
from sweeper.record.read_model import PAGE_SIZE, SERVER_PAGE_SIZE, search_all
from sweeper.record.writer import SweepTracker
from sweeper.search import expand
from sweeper.spec.load import parse_spec

SPEC = "name: big\nsearch:\n  params:\n    batch_size: [512]\n    temperature: [0.25]\n"


class PagingClient:
    """search_runs over a list, `max_results` a page, with MLflow's offset tokens."""

    def __init__(self, runs: list[str], tracking_uri: str = "sqlite:///mlflow.db") -> None:
        self.runs, self.tracking_uri = runs, tracking_uri
        self.calls: list[tuple[int, str | None]] = []

    def search_runs(self, experiment_ids: list[str], filter_string: str, order_by: object,
                    max_results: int, page_token: str | None) -> PagedList[str]:
        self.calls.append((max_results, page_token))
        start = int(page_token or 0)
        end = start + max_results
        return PagedList(self.runs[start:end], str(end) if end < len(self.runs) else None)


@pytest.mark.parametrize(("runs", "pages"), [(0, 1), (3, 1), (7, 3), (9, 3), (10, 4)])
def test_search_all_reads_every_page(runs: int, pages: int) -> None:
    client = PagingClient([f"run{i}" for i in range(runs)])
    found = list(search_all(client, ["1"], page_size=3))  # type: ignore[arg-type]
    assert found == client.runs
    assert [size for size, _ in client.calls] == [3] * pages
    assert [token for _, token in client.calls] == [None, *[str(3 * k) for k in
                                                           range(1, pages)]]


@pytest.mark.parametrize(("uri", "size"), [("sqlite:///mlflow.db", PAGE_SIZE),
                                           ("postgresql://me@db/runs", PAGE_SIZE),
                                           ("http://127.0.0.1:5000", SERVER_PAGE_SIZE),
                                           ("https://mlflow.example.org", SERVER_PAGE_SIZE)])
def test_search_all_asks_pages_of_the_stores_page_size_by_default(uri: str,
                                                                  size: int) -> None:
    # A server answers each page within the read timeout only if pages stay small.
    client = PagingClient([f"run{i}" for i in range(2 * size + 1)], uri)
    assert len(list(search_all(client, ["1"]))) == 2 * size + 1  # type: ignore[arg-type]
    assert [max_results for max_results, _ in client.calls] == [size] * 3


def trial_key(index: int) -> str:
    return f"{index:08x}_{index:05d}"  # shaped like a Ray Tune trial id


def written_sweep(tmp_path: Path, trials: int, killed: int) -> tuple[str, list[str]]:
    """A sweep of `trials` trial runs, the last `killed` of them KILLED (an interrupted
    driver's): the parent and trial 0 through SweepTracker, the others its copies
    inserted into the SQLite store, each with its own trial id and index. Returns the
    store's URI and the run ids by trial index."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    trial = expand(parse_spec(SPEC))[0]
    first = SweepTracker(uri, "big")
    first.open_sweep(SPEC, f"{trials} trials", trials)
    template = first.trial_run(trial, with_seed=False, key=trial_key(0))
    for epoch in (0, 1):
        first.log_metrics(template, {"epoch": epoch, "top_1_accuracy": 0.1 + epoch / 10},
                          step=epoch)
    first.end_trial(template, "FINISHED")
    first.settle()
    run = first.client.get_run(template)
    points = [Point(m.key, m.value, m.timestamp, m.step) for key in run.data.metrics
              for m in first.client.get_metric_history(template, key)]
    tags = {k: v for k, v in run.data.tags.items() if k != "mlflow.runName"}
    start, end = run.info.start_time, run.info.end_time

    def copy(index: int) -> RunRows:  # a millisecond apart: oldest first is index order
        return RunRows(name=f"{run.info.run_name}-{index}",
                       status="KILLED" if index >= trials - killed else "FINISHED",
                       start_time=start + index, end_time=end + index,
                       tags={**tags, TRIAL_ID_TAG: trial_key(index), INDEX_TAG: str(index)},
                       params=run.data.params, metrics=points)

    copies = insert_runs(Path(uri.removeprefix("sqlite:///")), template,
                         (copy(index) for index in range(1, trials)))
    run_ids = [template, *copies]
    first.end_sweep("KILLED")
    return uri, run_ids


def trial_runs_in_store(client: MlflowClient, experiment_id: str, parent_id: str) -> list[str]:
    """The parent's child runs as MLflow's own search lists them, in one page (the
    garbage collector paused, as search_all pauses it: 4x faster)."""
    gc.disable()
    try:
        runs = client.search_runs([experiment_id], f"tags.`{PARENT_TAG}` = '{parent_id}'",
                                  max_results=50_000)
    finally:
        gc.enable()
    assert runs.token is None
    return [r.info.run_id for r in runs]


def runs_in_store(uri: str) -> int:
    with sqlite3.connect(uri.removeprefix("sqlite:///")) as connection:
        return int(connection.execute("SELECT COUNT(*) FROM runs").fetchone()[0])


@pytest.mark.slow
@pytest.mark.integration
def test_a_resume_reattaches_every_trial_of_a_sweep_of_10050_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # MLflow puts a SQLite store's artifacts under ./mlruns
    trials, killed = 10_050, 5  # the killed ones are on search_all's third page
    uri, run_ids = written_sweep(tmp_path, trials, killed)
    assert len(set(run_ids)) == trials

    # The store reads back through MLflow: every trial run under the parent.
    resumed = SweepTracker(uri, "big")
    parent = resumed.existing_sweep()
    assert parent is not None and parent.status == "KILLED"
    client = resumed.client
    assert sorted(trial_runs_in_store(client, parent.experiment_id, parent.run_id)) == sorted(
        run_ids)

    # The resume, as the driver's: the tracker opens the sweep (reading every trial run,
    # oldest first), then Tune asks for the run of each trial it continues, by its trial id.
    resumed.open_sweep(SPEC, f"{trials} trials", trials)
    records = resumed.recorded_trials()
    assert [r.run_id for r in records] == run_ids  # oldest first, no run twice
    assert [r.index for r in records] == list(range(trials))
    trial = expand(parse_spec(SPEC))[0]
    assert [resumed.run_status(trial_key(i)) for i in (0, trials - killed - 1,
                                                       trials - 1)] == [
        "FINISHED", "FINISHED", "KILLED"]
    mapped = [resumed.trial_run(trial, with_seed=False, key=trial_key(i))
              for i in range(trials)]
    assert mapped == run_ids  # each trial to its own run
    assert runs_in_store(uri) == trials + 1  # and no new one: the parent and the trials
    # the interrupted trials continue in their runs; the finished ones are untouched
    assert [client.get_run(run_id).info.status for run_id in run_ids[-killed - 1:]] == [
        "FINISHED"] + ["RUNNING"] * killed
    resumed.end_open_trials("KILLED")
    resumed.end_sweep("KILLED")
