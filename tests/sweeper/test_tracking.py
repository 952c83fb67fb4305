"""The MLflow writer: run names, params, and delivery through a store outage."""

from pathlib import Path

import mlflow
import pytest
from mlflow.exceptions import MlflowException

from sweeper.spec import expand, parse_spec
from sweeper.tracking import SweepTracker, TrackingUnavailable, run_name, trial_params

SPEC = "name: t\nsearch:\n  params:\n    batch_size: [512]\n    temperature: [0.25]\n"


def test_run_names_and_params() -> None:
    assert run_name({"batch_size": 512, "temperature": 0.25, "color_jitter_strength": 0.75,
                     "seed": 0}, with_seed=False) == "bs512-t0.25-cj0.75"
    assert run_name({"model.width": 16, "seed": 3}, with_seed=True) == "width16-seed3"
    params = trial_params(expand(parse_spec(SPEC))[0])
    assert params["batch_size"] == "512" and params["temperature"] == "0.25"
    assert "train.batch_size" not in params and params["train.epochs"] == "100"
    assert params["method"] == "simclr" and params["model.width"] == "64"


def test_metrics_survive_a_store_outage_in_order(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # MLflow puts a SQLite store's artifacts under ./mlruns
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = SweepTracker(uri, "t")
    tracker.open_sweep(SPEC, "1 trial", 1)
    run_id = tracker.trial_run(expand(parse_spec(SPEC))[0], with_seed=False)
    real = tracker.client.log_batch
    down = {"on": True}

    def flaky(*args: object, **kwargs: object) -> None:
        if down["on"]:
            raise MlflowException("connection refused")
        real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(tracker.client, "log_batch", flaky)
    for epoch in (1, 2, 3):
        tracker.log_metrics(run_id, {"top_1_accuracy": epoch / 10}, step=epoch)
    assert len(tracker._pending) == 3
    down["on"] = False
    tracker.log_metrics(run_id, {"top_1_accuracy": 0.4}, step=4)
    tracker.end_trial(run_id, "FINISHED")
    assert tracker.end_sweep("FINISHED", patience_s=0) == 0
    client = mlflow.MlflowClient(uri)
    history = client.get_metric_history(run_id, "top_1_accuracy")
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == [
        (1, 0.1), (2, 0.2), (3, 0.3), (4, 0.4)]
    assert client.get_run(run_id).info.status == "FINISHED"


def test_writes_still_undelivered_at_the_end_are_counted(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    tracker = SweepTracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "t")
    tracker.open_sweep(SPEC, "1 trial", 1)
    run_id = tracker.trial_run(expand(parse_spec(SPEC))[0], with_seed=False)

    def down(*args: object, **kwargs: object) -> None:
        raise MlflowException("connection refused")

    monkeypatch.setattr(tracker.client, "log_batch", down)
    monkeypatch.setattr(tracker.client, "set_terminated", down)
    tracker.log_metrics(run_id, {"loss": 1.0}, step=1)
    assert tracker.end_sweep("FINISHED", patience_s=0) == 2
    monkeypatch.setattr(tracker.client, "create_run", down)
    trial = expand(parse_spec(SPEC.replace("512", "256")))[0]
    with pytest.raises(TrackingUnavailable, match="resume it with --resume"):
        tracker.trial_run(trial, with_seed=False, patience_s=0)
