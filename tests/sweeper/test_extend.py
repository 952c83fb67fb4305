"""`sweeper run SPEC --extend` end to end on tiny sweeps: a grid grown by a value and
then by a seed, an Optuna search grown by samples, an interrupted extension resumed;
the finished runs stay exactly as they were, and the grown sweep reads as one."""

import csv
import io
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import mlflow
import pytest

from sweeper.commands.status import status_lines
from sweeper.driver import run_sweep
from sweeper.record.growth import growth_entries
from sweeper.record.read_model import find_parent
from sweeper.spec.load import parse_spec

from .conftest import tiny_sweep
from .test_record import cli, one_point_per_step, options, parents, trial_runs

pytestmark = pytest.mark.integration


def grid(tau: str, seeds: str = "[0]", epochs: int = 1, concurrent: int = 2) -> str:
    return tiny_sweep("grows", f"search:\n  params:\n    temperature: {tau}\n  seeds: {seeds}\n",
                      epochs=epochs, concurrent=concurrent)


def extend(text: str, workdir: Path) -> Any:
    return run_sweep(parse_spec(text), text, options(workdir, extend=True),
                     progress=io.StringIO())


def snapshot(uri: str, run: mlflow.entities.Run) -> tuple[Any, ...]:
    """Everything a run holds: its end, status, tags, params and every metric point."""
    client = mlflow.MlflowClient(uri)
    now = client.get_run(run.info.run_id)
    history = {key: sorted((m.step, m.value, m.timestamp) for m in
                           client.get_metric_history(run.info.run_id, key))
               for key in now.data.metrics}
    return (now.info.status, now.info.start_time, now.info.end_time, now.data.tags,
            now.data.params, history)


def index_of(run: mlflow.entities.Run) -> int:
    return int(run.data.tags["sweeper.trial_index"])


@pytest.mark.slow
def test_a_grid_grows_by_a_value_then_a_seed_under_its_one_parent(
        local_ray: None, workdir: Path) -> None:
    opts = options(workdir)
    first = grid("[0.1, 0.5]")
    run_sweep(parse_spec(first), first, opts, progress=io.StringIO())
    before = {run.info.run_name: snapshot(opts.tracking_uri, run)
              for run in trial_runs(opts.tracking_uri, "grows")}
    assert sorted(before) == ["t0.1", "t0.5"]

    (workdir / "tau.yaml").write_text(grid("[0.1, 0.5, 0.9]"))
    resumed = cli(workdir, "run", "tau.yaml", "--resume")
    assert resumed.returncode == 2, resumed.stderr
    assert "the spec adds 1 trial to sweep 'grows' (it has 2): pass --extend" in resumed.stderr

    assert len(extend(grid("[0.1, 0.5, 0.9]"), workdir).finished) == 3
    outcome = extend(grid("[0.1, 0.5, 0.9]", seeds="[0, 1]"), workdir)
    assert (len(outcome.finished), outcome.failed, outcome.unfinished) == (6, [], 0)

    (workdir / "epochs.yaml").write_text(grid("[0.1, 0.5, 0.9]", "[0, 1, 2]", epochs=2))
    refused = cli(workdir, "run", "epochs.yaml", "--extend")
    assert refused.returncode == 2, refused.stderr
    assert "train.epochs: 1 then, 2 now" in refused.stderr

    runs = trial_runs(opts.tracking_uri, "grows")
    (parent,) = parents(opts.tracking_uri, "grows")
    assert {run.data.tags["mlflow.parentRunId"] for run in runs} == {parent.info.run_id}
    # The first two runs are exactly as they were; the new ones are numbered on, in the
    # grown grid's order, and named with their seed (the old names stay).
    assert {run.info.run_name: snapshot(opts.tracking_uri, run) for run in runs
            if run.info.run_name in before} == before
    assert sorted((index_of(run), run.info.run_name) for run in runs) == [
        (0, "t0.1"), (1, "t0.5"), (2, "t0.9"), (3, "t0.1-seed1"), (4, "t0.5-seed1"),
        (5, "t0.9-seed1")]
    assert {run.info.status for run in runs} == {"FINISHED"}
    for run in runs:
        assert one_point_per_step(opts.tracking_uri, run.info.run_id) == [1]
    # The parent records the grown spec and each growth.
    record = find_parent(mlflow.MlflowClient(opts.tracking_uri), "grows")
    assert record is not None
    assert [(g.growth, g.trials, g.num_trials) for g in growth_entries(record.tags)] == [
        (1, 1, 3), (2, 3, 6)]
    history = mlflow.MlflowClient(opts.tracking_uri).get_metric_history(
        parent.info.run_id, "num_trials")
    assert sorted((m.step, m.value) for m in history) == [(0, 2), (1, 3), (2, 6)]

    report = cli(workdir, "report", "grows", "--out", "report")
    assert report.returncode == 0, report.stderr
    with (workdir / "report" / "appendix_b.csv").open() as table:
        rows = list(csv.DictReader(table))
    assert [(row["temperature"], row["seeds"]) for row in rows] == [
        ("0.1", "0 1"), ("0.5", "0 1"), ("0.9", "0 1")]
    status = status_lines(opts.tracking_uri, "grows")
    assert status[0] == "sweep 'grows': 6 trials: grid over temperature × 2 seeds"
    assert "6 finished, 0 running, 0 failed, 0 interrupted" in status


@pytest.mark.slow
def test_an_optuna_sweep_grows_by_samples_seeded_with_its_finished_trials(
        local_ray: None, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sweeper.driver.tuner as tuner

    seeded: list[dict[str, Any]] = []

    def optuna_search(**kwargs: Any) -> Any:
        seeded.append(kwargs)
        return real(**kwargs)

    real = tuner.OptunaSearch
    monkeypatch.setattr(tuner, "OptunaSearch", optuna_search)

    def spec(samples: int) -> str:
        return tiny_sweep("samples", f"search:\n  type: optuna\n  num_samples: {samples}\n"
                          "  params:\n    temperature: {type: float, low: 0.1, high: 1.0}\n",
                          epochs=1, concurrent=1)

    opts = options(workdir)
    run_sweep(parse_spec(spec(2)), spec(2), opts, progress=io.StringIO())
    first = sorted(trial_runs(opts.tracking_uri, "samples"), key=index_of)
    outcome = extend(spec(4), workdir)
    assert (len(outcome.finished), outcome.total) == (4, 4)

    runs = sorted(trial_runs(opts.tracking_uri, "samples"), key=index_of)
    assert [index_of(run) for run in runs] == [0, 1, 2, 3]
    assert [run.info.run_id for run in runs[:2]] == [run.info.run_id for run in first]
    # The growth's sampler starts from the first two trials, as evaluated points...
    assert seeded[1]["points_to_evaluate"] == [
        {"sampled/temperature": float(run.data.params["temperature"])} for run in first]
    assert seeded[1]["evaluated_rewards"] == [run.data.metrics["top_1_accuracy"]
                                              for run in first]
    # ...and proposes new configurations (its random start draws a stream of its own).
    assert not any("sweeper.repeat_of" in run.data.tags for run in runs)
    assert len({run.data.params["temperature"] for run in runs}) == 4


@pytest.mark.slow
def test_an_interrupted_extension_resumes_like_any_sweep(local_ray: None,
                                                          workdir: Path) -> None:
    first = grid("[0.1]", epochs=2, concurrent=1)
    run_sweep(parse_spec(first), first, options(workdir), progress=io.StringIO())
    (workdir / "grown.yaml").write_text(grid("[0.1, 0.5, 0.9]", epochs=2, concurrent=1))
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    (kept,) = trial_runs(uri, "grows")
    before = snapshot(uri, kept)

    driver = subprocess.Popen([sys.executable, "-m", "sweeper.cli", "run", "grown.yaml",
                               "--extend"], cwd=workdir, stderr=subprocess.PIPE, text=True)
    assert driver.stderr is not None
    seen = []
    for line in driver.stderr:
        seen.append(line)
        if "epoch 1/2" in line:  # a new trial is half way
            driver.send_signal(signal.SIGINT)
            break
    _, rest = driver.communicate(timeout=180)
    output = "".join(seen) + rest
    assert driver.returncode == 130, output
    hint = output.split("Resume with:\n", 1)[1].splitlines()[0]
    assert hint.endswith("run grown.yaml --resume") and "--extend" not in hint
    assert {run.info.status for run in trial_runs(uri, "grows")} >= {"KILLED"}

    resumed = cli(workdir, "run", "grown.yaml", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "3/3 trials finished, 0 failed, 0 unfinished" in resumed.stderr
    runs = trial_runs(uri, "grows")
    assert sorted(run.info.run_name for run in runs) == ["t0.1", "t0.5", "t0.9"]
    assert {run.info.status for run in runs} == {"FINISHED"}
    for run in runs:
        assert one_point_per_step(uri, run.info.run_id) == [1, 2]
    assert snapshot(uri, next(run for run in runs if run.info.run_id == kept.info.run_id)) \
        == before
    (parent,) = parents(uri, "grows")
    assert parent.info.status == "FINISHED"
    assert [(g.growth, g.num_trials) for g in growth_entries(parent.data.tags)] == [(1, 3)]

