"""`sweeper report` on a real (tiny) sweep run by the driver on local Ray."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from sweeper.cli import main
from sweeper.reports.collect import load_sweep

pytestmark = [pytest.mark.slow, pytest.mark.integration]

SPEC = """\
name: real-report
method: simclr
dataset: {name: synthetic, synthetic_train_size: 48, synthetic_test_size: 24}
model: {width: 4, hidden_dim: 16, projection_dim: 8}
train: {epochs: 2, batch_size: 16, warmup_epochs: 1, optimizer: adamw, learning_rate: 0.01}
eval: {protocol: online_linear}
resources: {cpu: 1, gpu: 0}
max_concurrent_trials: 2
search:
  params:
    temperature: [0.2, 0.5]
    color_jitter_strength: [0.5, 1.0]
"""


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A 2x2 grid of 2-epoch trials, run once for the module (about 20 s on 2 cores)."""
    ray = pytest.importorskip("ray")
    from sweeper.driver import SweepOptions, init_ray, run_sweep
    from sweeper.spec.load import parse_spec

    tmp = tmp_path_factory.mktemp("real")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    started = not ray.is_initialized()
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp)  # MLflow's default artifact root is ./mlruns
        init_ray(None)
        try:
            outcome = run_sweep(parse_spec(SPEC), SPEC,
                                SweepOptions(storage=tmp / "results", tracking_uri=uri),
                                progress=io.StringIO())
        finally:
            if started:  # leave a session's shared Ray instance to its owner
                ray.shutdown()
        assert len(outcome.finished) == 4
        yield tmp, uri


def test_report_of_a_real_sweep(swept: tuple[Path, str], monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    tmp, uri = swept
    monkeypatch.chdir(tmp)
    assert main(["report", "real-report", "--tracking-uri", uri, "--storage", "results"]) == 0
    folder = tmp / "results" / "real-report" / "report"  # next to Tune's state, by default
    table = pd.read_csv(folder / "appendix_b.csv")
    # The thesis's columns, and the gain over the step-0 baseline every trial logs.
    assert list(table.columns) == ["temperature", "color_jitter", "regularization_loss",
                                   "top_1_accuracy", "top_5_accuracy", "steps",
                                   "gain_over_init"]
    assert table[["temperature", "color_jitter"]].values.tolist() == [
        [0.2, 0.5], [0.2, 1.0], [0.5, 0.5], [0.5, 1.0]]
    assert (table["steps"] == 2 * 3).all()  # 2 epochs x ceil(48 / 16)

    # The same numbers MLflow holds, rounded as the thesis rounds.
    experiment = MlflowClient(uri).get_experiment_by_name("real-report")
    assert experiment is not None
    runs = MlflowClient(uri).search_runs(
        [experiment.experiment_id],
        filter_string="tags.`sweeper.kind` = 'trial'")
    logged = {(float(r.data.params["temperature"]),
               float(r.data.params["color_jitter_strength"])): r.data.metrics for r in runs}
    for row in table.itertuples():
        metrics = logged[(row.temperature, row.color_jitter)]
        assert row.top_1_accuracy == round(metrics["top_1_accuracy"], 3)
        assert row.top_5_accuracy == round(metrics["top_5_accuracy"], 3)
        assert row.regularization_loss == round(metrics["regularization_loss"], 4)

    best = pd.read_csv(folder / "best_by_batch_size.csv")
    assert best["batch_size"].tolist() == [16]
    assert best["top_1_accuracy"].iloc[0] == table["top_1_accuracy"].max()
    history = load_sweep(uri, "real-report").history
    assert history.groupby("run_id")["step"].apply(sorted).tolist() == [[0, 1, 2]] * 4
    for row in table.itertuples():  # final top-1 less the step-0 one, rounded as the metric
        metrics = logged[(row.temperature, row.color_jitter)]
        baseline = metrics["baseline_top_1_accuracy"]
        assert row.gain_over_init == round(metrics["top_1_accuracy"] - baseline, 3)
    for name in ("top_1_heatmap.png", "top_1_per_epoch.png"):
        assert (folder / name).stat().st_size > 1000
    assert "4 trials: 4 finished" in capsys.readouterr().out
