"""Warm start: an earlier sweep's finished trials become evaluated Optuna points,
and whatever does not fit is reported, not guessed."""

from pathlib import Path

import pytest

from sweeper.driver.warm_start import collect, finished_in_sources
from sweeper.errors import SpecError
from sweeper.record.writer import SweepTracker
from sweeper.search import expand
from sweeper.spec.load import parse_spec
from sweeper.spec.trials import base_config, computation_hash, resolve_values

pytestmark = pytest.mark.integration

EARLIER = """\
name: earlier
train: {epochs: 2}
search:
  params:
    temperature: [0.1, 0.3, 0.9]
    batch_size: [256, 512]
"""
NOW = """\
name: now
train: {epochs: 3}
search:
  type: optuna
  num_samples: 4
  warm_start: [earlier]
  params:
    temperature: {type: float, low: 0.05, high: 0.5, log: true}
    batch_size: {type: categorical, choices: [256, 512]}
"""


def record(uri: str, text: str, outcomes: dict[int, tuple[str, float | None]]) -> None:
    """A finished sweep in MLflow: trial index -> (status, top-1)."""
    spec = parse_spec(text)
    tracker = SweepTracker(uri, spec.name)
    tracker.open_sweep(text, "earlier", 6)
    for trial in expand(spec):
        if trial.index not in outcomes:
            continue
        status, top1 = outcomes[trial.index]
        run_id = tracker.trial_run(trial, with_seed=False)
        if top1 is not None:
            tracker.log_metrics(run_id, {"top_1_accuracy": top1, "epoch": 2}, step=2)
        tracker.end_trial(run_id, status)
    tracker.end_sweep("FINISHED")


def test_finished_trials_that_fit_seed_the_sampler(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # index = temperature position * 2 + batch size position
    record(uri, EARLIER, {0: ("FINISHED", 0.41), 1: ("FINISHED", 0.45), 2: ("FINISHED", 0.5),
                          3: ("FAILED", None), 4: ("FINISHED", 0.2)})
    warm = collect(parse_spec(NOW), uri)
    assert sorted(zip(warm.rewards, [(p["temperature"], p["batch_size"]) for p in warm.points],
                      strict=True)) == [(0.41, (0.1, 256)), (0.45, (0.1, 512)), (0.5, (0.3, 256))]
    assert warm.used == {"earlier": 3}
    assert "earlier: 1 trial(s) skipped: failed, not finished" in warm.notes
    assert "earlier: 1 trial(s) skipped: temperature=0.9 is outside [0.05, 0.5]" in warm.notes
    assert any("train.epochs (2 there, 3 here)" in note for note in warm.notes)


def test_the_sources_finished_configurations_are_what_a_proposal_may_repeat(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    record(uri, EARLIER, {0: ("FINISHED", 0.41), 3: ("FAILED", None), 4: ("FINISHED", 0.2)})
    now = parse_spec(NOW.replace("epochs: 3", "epochs: 2"))  # the same fixed settings
    def key(temperature: float, batch_size: int) -> str:  # this sweep's proposal's
        values = {"temperature": temperature, "batch_size": batch_size, "seed": 0}
        return computation_hash(resolve_values(base_config(now), values).config)

    warm = collect(now, uri)
    # Trials 0 and 4 (the failed trial 3 is not finished); another sweep's name: same hash.
    assert {k: r.metrics["top_1_accuracy"] for k, r in warm.finished.items()} == {
        key(0.1, 256): 0.41, key(0.9, 256): 0.2}
    assert all(r.metrics["device_seconds"] == 0.0 for r in warm.finished.values())
    # On --resume: the same, without the points, and a source deleted since is left out.
    resumed = finished_in_sources(now.model_copy(update={"search": now.search.model_copy(
        update={"warm_start": ["earlier", "gone"]})}), uri)
    assert (resumed.finished, resumed.points) == (warm.finished, [])


def test_an_unknown_or_self_warm_start_is_a_spec_error(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.raises(SpecError, match="no sweep named 'earlier'"):
        collect(parse_spec(NOW), uri)
    with pytest.raises(SpecError, match="this sweep itself"):
        collect(parse_spec(NOW.replace("[earlier]", "[now]")), uri)


def test_warm_start_needs_an_optuna_search() -> None:
    with pytest.raises(SpecError, match="needs type: optuna"):
        parse_spec(EARLIER + "  warm_start: [x]\n")
