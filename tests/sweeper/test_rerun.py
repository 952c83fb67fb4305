"""`sweeper rerun RUN_ID`: one trial retrained from its MLflow run alone, logged as a
rerun that no reader of the sweep counts, compared with what was recorded."""

import argparse
import io
import json
from pathlib import Path

import mlflow
import pytest
import torch

from sweeper.cli import main
from sweeper.commands.rerun import Comparison, format_comparison, rerun_command
from sweeper.commands.status import status_lines
from sweeper.record.read_model import trial_records
from sweeper.record.writer import SweepTracker
from sweeper.search import expand, summary
from sweeper.spec.load import parse_spec
from trainers.loop import TIMING_METRICS

from .conftest import tiny_sweep

pytestmark = pytest.mark.integration

GRID = "search:\n  params:\n    temperature: [0.5]\n"


def recorded_sweep(uri: str, text: str) -> str:
    """A sweep of one trial in MLflow as the driver writes it (no Ray, no training);
    the trial's run id."""
    spec = parse_spec(text)
    tracker = SweepTracker(uri, spec.name)
    tracker.open_sweep(text, summary(spec), 1)
    (trial,) = expand(spec)
    run_id = tracker.trial_run(trial, with_seed=False)
    tracker.log_metrics(run_id, {"epoch": 2, "top_1_accuracy": 0.25, "loss": 9.0,
                                 "device_seconds": 3.0}, step=2)
    tracker.end_trial(run_id, "FINISHED")
    tracker.log_summary(tracker.trial_runs(), spec.metric, spec.mode)
    tracker.end_sweep("FINISHED")
    return run_id


def rerun_args(uri: str, run_id: str, *overrides: str, as_json: bool = False
               ) -> argparse.Namespace:
    return argparse.Namespace(run_id=run_id, tracking_uri=uri, overrides=list(overrides),
                              json=as_json)


def test_a_run_that_is_not_a_trial_is_refused_in_one_line(
        workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    recorded_sweep(uri, tiny_sweep("one", GRID))
    (parent,) = mlflow.MlflowClient(uri).search_runs(
        [mlflow.MlflowClient(uri).get_experiment_by_name("one").experiment_id],
        "tags.`sweeper.kind` = 'sweep'")
    capsys.readouterr()
    assert main(["rerun", "0123abcd", "--tracking-uri", uri]) == 2
    assert capsys.readouterr().err == f"sweeper: no run '0123abcd' in {uri}\n"
    assert main(["rerun", parent.info.run_id, "--tracking-uri", uri]) == 2
    assert capsys.readouterr().err == (
        f"sweeper: run {parent.info.run_id} is not a trial run (sweeper.kind=sweep): "
        "sweeper rerun retrains one trial of a sweep\n")


def test_a_rerun_that_cannot_start_logs_no_run(
        workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    run_id = recorded_sweep(uri, tiny_sweep("one", GRID).replace(
        "{name: synthetic,", "{name: image_folder, root: gone,"))
    capsys.readouterr()
    assert main(["rerun", run_id, "--tracking-uri", uri]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("sweeper: ") and "gone" in line
    if not torch.cuda.is_available():
        assert main(["rerun", run_id, "--tracking-uri", uri, "--set",
                     "dataset.name=synthetic", "--set", "resources.gpu=1"]) == 2
        assert "no CUDA device" in capsys.readouterr().err
    client = mlflow.MlflowClient(uri)
    assert client.search_runs([client.get_experiment_by_name("one").experiment_id],
                              "tags.`sweeper.kind` = 'rerun'") == []


def test_a_rerun_is_logged_beside_the_trial_and_counted_by_no_reader_of_the_sweep(
        workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    run_id = recorded_sweep(uri, tiny_sweep("one", GRID))
    before = status_lines(uri, "one")
    assert rerun_command(rerun_args(uri, run_id, "train.epochs=1", as_json=True)) == 0
    out, err = capsys.readouterr()
    assert "epoch 1/1" in err  # the progress lines of `sweeper trial`
    result = json.loads(out.splitlines()[-1])
    assert (result["rerun_of"], result["deterministic"]) == (run_id, False)
    assert result["config_changes"] == ["train.epochs 2 then, 1 now"]
    assert result["recorded"]["top_1_accuracy"] == 0.25
    assert result["rerun"]["epoch"] == 1.0
    assert result["notes"][0].startswith("the recorded run has no provenance")
    assert result["notes"][1].startswith("--set changed what the trial computes")

    client = mlflow.MlflowClient(uri)
    rerun = client.get_run(result["run_id"])
    tags = rerun.data.tags
    assert (tags["sweeper.kind"], tags["sweeper.rerun_of"], tags["mlflow.parentRunId"]) == (
        "rerun", run_id, run_id)
    assert rerun.info.status == "FINISHED"
    assert tags["sweeper.dataset_fingerprint"] and tags["sweeper.code_version"]
    assert [m.step for m in client.get_metric_history(rerun.info.run_id, "loss")] == [1]
    assert rerun.data.params["train.epochs"] == "1"
    # The sweep reads as before: one trial, the same best, the same counts.
    parent = client.get_run(tags["mlflow.parentRunId"]).data.tags["mlflow.parentRunId"]
    assert [r.run_id for r in trial_records(client, rerun.info.experiment_id, parent)] == [
        run_id]
    assert status_lines(uri, "one") == before


def test_the_comparison_is_aligned_and_says_what_to_expect() -> None:
    comparison = Comparison(
        recorded={"top_1_accuracy": 0.5, "loss": 4.25, "epoch_seconds": 3.0, "steps": 6.0},
        rerun={"top_1_accuracy": 0.5, "loss": 4.2500001, "epoch_seconds": 2.5, "steps": 6.0},
        deterministic=True, provenance=["torch 2.14.1 then, 2.15.0 now"])
    assert format_comparison(comparison) == [
        "metric          recorded      rerun",
        "top_1_accuracy       0.5        0.5  same",
        "steps                  6          6  same",
        "loss                4.25  4.2500001  +1e-07",
        "epoch_seconds          3        2.5  timing",
        "provenance differs:",
        "  torch 2.14.1 then, 2.15.0 now",
        "1 metric differs: see above"]
    same = Comparison(recorded={"loss": 1.0}, rerun={"loss": 1.0}, deterministic=True)
    assert format_comparison(same)[-1] == "every metric but the timings reproduced exactly"
    loose = Comparison(recorded={"loss": 1.0}, rerun={"loss": 1.0}, deterministic=False)
    assert format_comparison(loose)[-1].startswith(
        "train.deterministic is false: the numbers are not expected to match exactly")


@pytest.mark.slow
def test_a_deterministic_trial_reruns_to_its_recorded_metrics_exactly(
        local_ray: None, workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sweeper.driver import SweepOptions, run_sweep

    text = tiny_sweep("det", GRID).replace("learning_rate: 0.01}",
                                           "learning_rate: 0.01, deterministic: true}")
    assert parse_spec(text).train.deterministic
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    outcome = run_sweep(parse_spec(text), text, SweepOptions(storage=workdir / "results",
                                                            tracking_uri=uri),
                        progress=io.StringIO())
    assert len(outcome.finished) == 1
    client = mlflow.MlflowClient(uri)
    (trial,) = client.search_runs([client.get_experiment_by_name("det").experiment_id],
                                  "tags.`sweeper.kind` = 'trial'")
    # Provenance, measured by the Ray worker.
    for tag in ("sweeper.code_version", "sweeper.dataset_fingerprint", "sweeper.device",
                "sweeper.version.torch", "sweeper.version.ray"):
        assert trial.data.tags[tag], tag
    before = status_lines(uri, "det")
    capsys.readouterr()
    assert rerun_command(rerun_args(uri, trial.info.run_id, as_json=True)) == 0
    result = json.loads(capsys.readouterr().out.splitlines()[-1])
    recorded = {k: v for k, v in trial.data.metrics.items() if k not in TIMING_METRICS}
    assert {k: result["rerun"][k] for k in recorded} == recorded
    assert (result["reproduced"], result["differing"], result["config_changes"]) == (
        True, [], [])
    assert result["provenance_differences"] == []  # the same machine, code and data
    assert status_lines(uri, "det") == before
