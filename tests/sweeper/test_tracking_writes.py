"""How many MLflow writes a trial's run costs (each ~15 ms on SQLite): one to create it,
one per result (its params and the worker's tags ride along), one to end it; and its
params are there whatever happens first."""

from pathlib import Path
from typing import Any

import mlflow
import pytest

from sweeper.record.contract import trial_params
from sweeper.record.writer import SweepTracker, worker_tags
from sweeper.search import expand
from sweeper.spec.load import parse_spec

pytestmark = pytest.mark.integration  # each test opens an SQLite MLflow store

SPEC = "name: t\nsearch:\n  params:\n    temperature: [0.25, 0.5]\n"


def counted(tracker: SweepTracker, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    for name in ("create_run", "log_batch", "set_terminated", "set_tag", "log_param"):
        real = getattr(tracker.client, name)

        def call(*args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> Any:
            calls.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(tracker.client, name, call)
    return calls


def test_a_trial_costs_one_write_per_event(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = SweepTracker(uri, "t")
    tracker.open_sweep(SPEC, "2 trials", 2)
    trial = expand(parse_spec(SPEC))[0]
    calls = counted(tracker, monkeypatch)
    run_id = tracker.trial_run(trial, with_seed=False, key="a")
    tags = worker_tags("n" * 56, "10.0.0.1", "host:42", {"sweeper.device": "cpu"})
    tracker.log_metrics(run_id, {"epoch": 0, "loss": 2.0}, step=0, tags=tags)
    tracker.log_metrics(run_id, {"epoch": 1, "loss": 1.0}, step=1)
    tracker.end_trial(run_id, "FINISHED")
    tracker.settle()  # delivered from a background thread
    assert calls == ["create_run", "log_batch", "log_batch", "set_terminated"]

    run = mlflow.MlflowClient(uri).get_run(run_id)
    assert run.data.params == trial_params(trial)
    assert run.data.tags["sweeper.worker"] == "host:42"
    assert run.data.tags["sweeper.device"] == "cpu"
    assert run.data.metrics["loss"] == 1.0 and run.info.status == "FINISHED"
    # a replayed step is not logged again, but a new worker's tags are
    calls.clear()
    tracker._status[run_id] = "RUNNING"
    assert not tracker.log_metrics(run_id, {"epoch": 1, "loss": 9.0}, step=1,
                                   tags={"sweeper.worker": "host:43"})
    tracker.settle()
    assert calls == ["log_batch"]
    assert mlflow.MlflowClient(uri).get_run(run_id).data.metrics["loss"] == 1.0


def test_a_baseline_that_rides_with_the_first_epoch_costs_no_write_of_its_own(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = SweepTracker(uri, "t")
    tracker.open_sweep(SPEC, "2 trials", 2)
    run_id = tracker.trial_run(expand(parse_spec(SPEC))[0], with_seed=False, key="a")
    calls = counted(tracker, monkeypatch)
    assert tracker.log_metrics(run_id, {"epoch": 1, "loss": 1.0}, step=1,
                               earlier=[(0, {"epoch": 0, "loss": 2.0})])
    # a trial started over replays both: nothing is logged twice
    assert not tracker.log_metrics(run_id, {"epoch": 1, "loss": 7.0}, step=1,
                                   earlier=[(0, {"epoch": 0, "loss": 8.0})])
    # one replayed, one new
    assert tracker.log_metrics(run_id, {"epoch": 2, "loss": 0.5}, step=2,
                               earlier=[(1, {"epoch": 1, "loss": 9.0})])
    tracker.settle()
    assert calls == ["log_batch", "log_batch"]
    history = mlflow.MlflowClient(uri).get_metric_history(run_id, "loss")
    assert sorted((m.step, m.value) for m in history) == [(0, 2.0), (1, 1.0), (2, 0.5)]


def test_params_reach_a_run_ended_before_any_result(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = SweepTracker(uri, "t")
    tracker.open_sweep(SPEC, "2 trials", 2)
    trial = expand(parse_spec(SPEC))[1]
    run_id = tracker.trial_run(trial, with_seed=False, key="b")
    tracker.end_trial(run_id, "FAILED", "DatasetError: no images")
    tracker.settle()
    run = mlflow.MlflowClient(uri).get_run(run_id)
    assert run.data.params == trial_params(trial)
    assert run.data.tags["sweeper.error"] == "DatasetError: no images"
    assert run.info.status == "FAILED"


def test_a_run_whose_driver_died_before_its_first_write_gets_its_params(
        tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first = SweepTracker(uri, "t")
    first.open_sweep(SPEC, "2 trials", 2)
    trial = expand(parse_spec(SPEC))[0]
    run_id = first.trial_run(trial, with_seed=False, key="a")  # then the driver dies
    assert mlflow.MlflowClient(uri).get_run(run_id).data.params == {}

    second = SweepTracker(uri, "t")  # --resume: the run is found again, not duplicated
    second.open_sweep(SPEC, "2 trials", 2)
    assert second.trial_run(trial, with_seed=False, key="a") == run_id
    second.log_metrics(run_id, {"epoch": 0, "loss": 2.0}, step=0)
    second.settle()
    assert mlflow.MlflowClient(uri).get_run(run_id).data.params == trial_params(trial)


def test_a_run_started_without_waiting_gets_every_write_in_order(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = SweepTracker(uri, "t")
    tracker.open_sweep(SPEC, "2 trials", 2)
    trial = expand(parse_spec(SPEC))[0]
    calls = counted(tracker, monkeypatch)
    handle = tracker.start_trial_run(trial, with_seed=False, key="a",
                                     tags={"sweeper.code_version": "abc"})
    tracker.log_metrics(handle, {"epoch": 0, "loss": 2.0}, step=0)
    tracker.tag_run(handle, {"sweeper.started_over": "its checkpoint is gone"})
    tracker.end_trial(handle, "FINISHED")
    run_id = tracker.run_id(handle)  # waits for its creation
    assert run_id is not None and run_id != handle
    tracker.settle()
    assert calls == ["create_run", "log_batch", "log_batch", "set_terminated"]
    run = mlflow.MlflowClient(uri).get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.metrics["loss"] == 2.0
    assert run.data.params == trial_params(trial)
    assert run.data.tags["sweeper.trial_id"] == "a"
    assert run.data.tags["sweeper.code_version"] == "abc"
    assert run.data.tags["sweeper.started_over"] == "its checkpoint is gone"
    # the trial found again is the same run, now by its id; an id is its own id
    assert tracker.start_trial_run(trial, with_seed=False, key="a") == handle
    assert tracker.run_id(run_id) == run_id
    assert [r.run_id for r in tracker.trial_runs()] == [run_id]
