"""`sweeper status`: a summary of the sweep's record, best first, at any size."""

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from sweeper.commands.status import status_lines
from sweeper.record.writer import SweepTracker
from sweeper.search import summary
from sweeper.spec.load import parse_spec
from sweeper.spec.trials import Trial, base_config, resolve_values
from tests.reports.conftest import Outcome, log_sweep

pytestmark = pytest.mark.integration

GRID = """\
name: st
train: {epochs: 4}
search:
  params:
    temperature: [0.1, 0.2, 0.3]
    color_jitter_strength: [0.5, 1.0]
"""
SCORES = {(0.1, 0.5): 0.5, (0.1, 1.0): 0.7, (0.2, 0.5): 0.7, (0.2, 1.0): 0.2,
          (0.3, 0.5): 0.9, (0.3, 1.0): 0.6}


def outcome(trial: Trial) -> Outcome:
    cell = (trial.params["temperature"], trial.params["color_jitter_strength"])
    if cell == (0.3, 0.5):  # the highest value, but it failed: never best
        return {"top_1_accuracy": 0.9, "top_5_accuracy": 1.0}, "FAILED", "TrainingDiverged: nan"
    if cell == (0.2, 1.0):
        return None  # never started
    return {"top_1_accuracy": SCORES[cell], "top_5_accuracy": 0.95}, "FINISHED", None


@pytest.fixture
def uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_status_lists_the_best_first_and_counts_the_rest(uri: str) -> None:
    log_sweep(uri, GRID, outcome, epochs=(4,))
    lines = status_lines(uri, "st", best=2)
    assert lines[0] == "sweep 'st': 6 trials: grid over temperature × color_jitter_strength"
    assert lines[1].startswith("best 2 of 4 finished by top_1_accuracy (max)")
    rows = lines[3:5]
    # 0.7 twice: the tie goes to the lower trial index (t0.1-cj1 is trial 1, t0.2-cj0.5 is 2)
    assert [row.split()[0] for row in rows] == ["t0.1-cj1", "t0.2-cj0.5"]
    assert rows[0].split()[1:4] == ["FINISHED", "4", "0.7000"]
    assert lines[5] == "4 finished, 0 running, 1 failed, 0 interrupted; 1 of 6 trials not started"
    assert lines[6].startswith("best: t0.1-cj1, run ") and "sweeper rerun " in lines[6]
    assert lines[7:] == ["failed (1):", "  t0.3-cj0.5: TrainingDiverged: nan"]


def test_status_all_lists_every_trial_by_index(uri: str) -> None:
    log_sweep(uri, GRID, outcome, epochs=(4,))
    lines = status_lines(uri, "st", every=True)
    assert lines[1] == "every trial (5), by trial index:"
    assert [row.split()[0] for row in lines[3:8]] == [
        "t0.1-cj0.5", "t0.1-cj1", "t0.2-cj0.5", "t0.3-cj0.5", "t0.3-cj1"]
    assert "TrainingDiverged: nan" in lines[6]


OPTUNA = """\
name: opt
train: {epochs: 4}
search:
  type: optuna
  num_samples: 9
  params:
    temperature: {type: float, low: 0.05, high: 1.0, log: true}
    color_jitter_strength: {type: float, low: 0.0, high: 1.0}
"""


def test_an_optuna_status_counts_repeats_and_early_stops_and_weighs_the_parameters(
        uri: str, tmp_path: Path) -> None:
    spec = parse_spec(OPTUNA)
    MlflowClient(uri).create_experiment("opt", artifact_location=(tmp_path / "a").as_uri())
    tracker = SweepTracker(uri, "opt")
    tracker.open_sweep(OPTUNA, summary(spec), 9)
    first = ""
    for index in range(9):
        t = 0.05 * 1.4 ** (index % 8)  # trial 8 repeats trial 0's configuration
        values = {"temperature": t, "color_jitter_strength": (index % 8 % 3) / 3, "seed": 0}
        run_id = tracker.trial_run(resolve_values(base_config(spec), values, index), False,
                                   key=f"trial-{index}",
                                   tags={"sweeper.repeat_of": first} if index == 8 else None)
        first = first or run_id
        tracker.log_metrics(run_id, {"top_1_accuracy": 1 - abs(t - 0.3), "epoch": 4}, step=4)
        tracker.end_trial(run_id, "FINISHED",
                          tags={"sweeper.stopped_at_epoch": "2"} if index == 3 else None)
    tracker.end_sweep("FINISHED")

    lines = status_lines(uri, "opt")
    assert "8 finished by top_1_accuracy" in lines[1]
    assert ("9 finished (1 stopped early), 0 running, 0 failed, 0 interrupted; 1 repeat of a "
            "finished configuration (not trained)") in lines
    assert any(line.endswith(f"repeats run {first} (not trained)") for line in lines)
    # A repeat holds another run's numbers: no cell has two measurements to compare.
    assert not any(line.startswith("indistinguishable") for line in lines)
    (importance,) = [line for line in lines if "importance of" in line]
    assert importance.startswith("importance of top_1_accuracy (mean decrease impurity over 8 "
                                 "finished trials): temperature ")
