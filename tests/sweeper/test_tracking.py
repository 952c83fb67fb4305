"""The MLflow writer: run names, params, and delivery through a store outage."""

import json
import logging
import re
from pathlib import Path

import mlflow
import pytest
from mlflow.exceptions import MlflowException

from sweeper.record.contract import OVERRIDES_TAG, run_name, trial_params
from sweeper.record.read_model import find_parent
from sweeper.record.recorded_spec import RecordedSpecUnusable, recorded_spec
from sweeper.record.store import TrackingUnavailable
from sweeper.record.writer import SweepTracker
from sweeper.search import expand
from sweeper.spec.load import parse_spec

pytestmark = pytest.mark.integration

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
    assert tracker._delivery.held == 3
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


def test_the_recorded_spec_is_the_spec_file_with_its_overrides(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    tracker = SweepTracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "renamed")
    overrides = ["train.epochs=3", "search.params={temperature: [0.5, 1.0]}", "name=renamed"]
    parent_id = tracker.open_sweep(SPEC, "2 trials", 2, overrides=overrides)
    client = tracker.client
    assert json.loads(client.get_run(parent_id).data.tags[OVERRIDES_TAG]) == overrides
    spec_file = next(tmp_path.rglob("spec.yaml"))
    assert spec_file.read_text() == SPEC  # the user's file, as written
    def recorded() -> object:
        parent = find_parent(client, "renamed")
        assert parent is not None and parent.run_id == parent_id
        return recorded_spec(client, parent)

    spec = recorded()
    assert spec == parse_spec(SPEC, overrides=overrides)
    assert (spec.name, spec.train.epochs, spec.search.params) == (  # type: ignore[attr-defined]
        "renamed", 3, {"temperature": [0.5, 1.0]})

    # A sweep recorded without the tag: spec.yaml alone.
    client.delete_tag(parent_id, OVERRIDES_TAG)
    assert recorded() == parse_spec(SPEC)

    for tag, why in [("train.epochs=3", "not a JSON list of strings"),
                     (json.dumps(["train.epochs=-1"]), "recorded spec does not validate: "
                      "spec.yaml of the sweep (from --set): train.epochs: must be between 0")]:
        client.set_tag(parent_id, OVERRIDES_TAG, tag)
        with pytest.raises(RecordedSpecUnusable, match=re.escape(why)):
            recorded()
    client.set_tag(parent_id, OVERRIDES_TAG, "[]")
    spec_file.unlink()
    with pytest.raises(RecordedSpecUnusable, match=re.escape("no usable spec.yaml")):
        recorded()


def test_overrides_that_do_not_fit_in_a_tag_are_left_out(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    plain = SweepTracker(uri, "plain")
    plain.open_sweep(SPEC, "1 trial", 1)
    assert plain.client.get_run(plain.parent_id).data.tags[OVERRIDES_TAG] == "[]"
    long = SweepTracker(uri, "long")
    grid = ", ".join(str(n) for n in range(2000))  # ~10,000 characters
    with caplog.at_level(logging.WARNING, logger="sweeper.record.recorded_spec"):
        long.open_sweep(SPEC, "2000 trials", 2000,
                        overrides=[f"search.params={{batch_size: [{grid}]}}"])
    assert OVERRIDES_TAG not in long.client.get_run(long.parent_id).data.tags
    assert "exceed MLflow's 8000-character tag: not recorded" in caplog.text
