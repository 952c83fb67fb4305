"""`sweeper run` of an Optuna sweep of many short trials: every trial gets exactly one
MLflow run, FINISHED, under its own Optuna trial number (the record `bench sweep
--search optuna` times at 2,000 trials, here at 30)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import torch

import sweeper
from sweeper.bench.sweep import bench_spec_text
from sweeper.driver.final_state import FINAL_FOLDER
from sweeper.driver.trainable import STATE_FILE

pytestmark = [pytest.mark.slow, pytest.mark.integration]

TRIALS = 30


def test_sweeper_run_of_an_optuna_sweep_leaves_one_finished_run_per_trial(
        workdir: Path) -> None:
    spec = workdir / "spec.yaml"
    spec.write_text(bench_spec_text(TRIALS, "optuna").replace("name: bench-sweep",
                                                              "name: many"))
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    done = subprocess.run([sys.executable, "-m", "sweeper.cli", "run", str(spec),
                           "--storage", str(workdir / "results"), "--tracking-uri", uri],
                          cwd=workdir, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"[{TRIALS}/{TRIALS} done, 0 running, 0 pending, 0 failed]" in done.stderr

    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["many"])
    trials = runs[runs["tags.sweeper.kind"] == "trial"]
    assert len(trials) == TRIALS and set(trials["status"]) == {"FINISHED"}
    assert sorted(int(i) for i in trials["tags.sweeper.trial_index"]) == list(range(TRIALS))
    assert trials["tags.sweeper.trial_id"].nunique() == TRIALS
    assert trials["params.temperature"].nunique() == TRIALS  # sampled, all distinct
    assert trials["tags.sweeper.repeat_of"].isna().all() if "tags.sweeper.repeat_of" in \
        trials else True
    # The worker's tags came with the first result's metrics, in one write.
    assert trials["tags.sweeper.worker"].notna().all()
    assert trials["tags.sweeper.version.torch"].notna().all()
    client = mlflow.MlflowClient(uri)
    for run_id in trials["run_id"][:3]:
        assert sorted(m.step for m in client.get_metric_history(run_id, "steps")) == [0, 1]
    parent = runs[runs["tags.sweeper.kind"] == "sweep"].iloc[0]
    assert parent["status"] == "FINISHED" and parent["metrics.trials_finished"] == TRIALS

    # Tune's snapshot keeps of each result what its scheduler, searcher and a resume
    # read (the spec's metric, the epoch, its own keys); the rest is in MLflow only.
    last_results = tune_last_results(workdir / "results" / "many")
    assert len(last_results) == TRIALS
    for last in last_results:
        assert {"top_1_accuracy", "epoch", "training_iteration", "done"} <= last.keys()
        assert not last.keys() & {"loss", "top_5_accuracy", "knn_top_1_accuracy",
                                  "sweeper_provenance", "sweeper_earlier", "sweeper_node_id"}
    assert trials["metrics.loss"].notna().all() and trials["metrics.top_5_accuracy"].notna().all()

    # One epoch a trial: each worker stored its last state beside Tune's checkpoints, of
    # which Tune holds none; the best trial's encoder (save_encoders: best) came from it.
    folders = [f for f in (workdir / "results" / "many").iterdir() if f.is_dir()]
    assert len(folders) == TRIALS
    assert all((f / FINAL_FOLDER / STATE_FILE).is_file() for f in folders)
    assert not list((workdir / "results" / "many").glob("*/checkpoint_*"))
    with_encoder = [r for r in trials["run_id"] if client.list_artifacts(r, "encoder")]
    assert len(with_encoder) == 1
    best = trials[trials["run_id"] == with_encoder[0]].iloc[0]
    assert best["metrics.top_1_accuracy"] == trials["metrics.top_1_accuracy"].max()
    encoder = sweeper.load_encoder(with_encoder[0], uri)
    assert encoder(torch.rand(2, 3, 32, 32)).shape == (2, encoder.feature_dim)


def tune_last_results(experiment: Path) -> list[dict[str, object]]:
    """Each trial's last result as Tune's latest experiment snapshot stores it."""
    import json

    snapshot = max(experiment.glob("experiment_state-*.json"))
    return [json.loads(metadata)["last_result"]
            for _, metadata in json.loads(snapshot.read_text())["trial_data"]]
