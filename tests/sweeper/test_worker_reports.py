"""What a trial's worker reports to Tune (sweeper.driver.worker): the last epoch's result
says the trial is done, so Tune stops it there instead of waiting for one more hand-over
to learn that it returned; no earlier result does; a repeat's one result is its last.
The last state goes through Tune only where Tune holds an earlier one to replace."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from sweeper.driver import worker
from sweeper.driver.repeats import Repeat


@pytest.fixture
def reports(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    def report(metrics: dict[str, Any], checkpoint: Any = None) -> None:
        sent.append({**metrics, "checkpoint": checkpoint is not None})

    monkeypatch.setattr(worker.tune, "report", report)
    monkeypatch.setattr(worker.tune, "get_checkpoint", lambda: None)
    monkeypatch.setattr(worker, "store_final_state",
                        lambda state_file: sent.append({"stored": state_file}))
    monkeypatch.setattr(worker.ray, "get_runtime_context",
                        lambda: SimpleNamespace(get_node_id=lambda: "node-1"))
    monkeypatch.setattr(worker, "trial_provenance", lambda cfg: {})
    return sent


def trial_of(epochs: int) -> Any:
    return SimpleNamespace(config=SimpleNamespace(train=SimpleNamespace(epochs=epochs)))


def run_trial(monkeypatch: pytest.MonkeyPatch, epochs: int,
              trains: Callable[[Any, Any, Any], None]) -> None:
    """The worker's trial of `epochs` epochs, its training replaced by `trains`."""
    monkeypatch.setattr(worker, "trial_from_ray_config", lambda config: trial_of(epochs))
    monkeypatch.setattr(worker, "run_trial_in_worker", trains)
    worker._run_trial({})


@pytest.mark.parametrize("epochs", [1, 3])
def test_only_the_last_epochs_result_says_done(
        epochs: int, reports: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    def trains(cfg: Any, publish: Any, resume: Any) -> None:
        publish({"epoch": 0, "top_1_accuracy": 0.1}, None)  # the baseline: held
        for epoch in range(1, epochs + 1):
            publish({"epoch": epoch, "top_1_accuracy": 0.1 + epoch}, tmp_path)

    run_trial(monkeypatch, epochs, trains)
    results = [r for r in reports if "epoch" in r]
    assert [r["epoch"] for r in results] == list(range(1, epochs + 1))
    assert [r.get(worker.DONE_KEY, False) for r in results] == [False] * (epochs - 1) + [True]
    assert worker.EARLIER_KEY in results[0]  # the held baseline rode with the first epoch


def test_a_one_epoch_trials_last_state_is_stored_beside_tune_not_reported_through_it(
        reports: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    def trains(cfg: Any, publish: Any, resume: Any) -> None:
        publish({"epoch": 0}, None)
        publish({"epoch": 1}, tmp_path)

    run_trial(monkeypatch, 1, trains)
    assert [r.get("stored") for r in reports] == [tmp_path / worker.STATE_FILE, None]
    assert reports[1]["epoch"] == 1 and reports[1]["checkpoint"] is False


def test_a_last_epoch_after_one_tune_holds_goes_through_tune_which_replaces_it(
        reports: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    def trains(cfg: Any, publish: Any, resume: Any) -> None:
        publish({"epoch": 2}, tmp_path)
        publish({"epoch": 3}, tmp_path)

    run_trial(monkeypatch, 3, trains)
    assert [(r["epoch"], r["checkpoint"]) for r in reports] == [(2, True), (3, True)]


def test_a_trial_resumed_from_tunes_checkpoint_reports_its_last_epoch_through_tune(
        reports: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    monkeypatch.setattr(worker.tune, "get_checkpoint",
                        lambda: SimpleNamespace(as_directory=lambda: nullcontext(tmp_path)))
    monkeypatch.setattr(worker, "load_checkpoint", lambda path: {"epoch": 2})

    def trains(cfg: Any, publish: Any, resume: Any) -> None:
        assert resume == {"epoch": 2}
        publish({"epoch": 3}, tmp_path)

    run_trial(monkeypatch, 3, trains)
    assert [(r["epoch"], r["checkpoint"]) for r in reports] == [(3, True)]


def test_a_trial_stopped_before_its_last_epoch_never_says_done(
        reports: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    def trains(cfg: Any, publish: Any, resume: Any) -> None:
        publish({"epoch": 1}, tmp_path)
        publish({"epoch": 2}, tmp_path)  # ASHA stops it here: Tune decides, not the worker

    run_trial(monkeypatch, 4, trains)
    assert [worker.DONE_KEY in r for r in reports] == [False, False]


def test_a_repeats_one_result_says_done(reports: list[dict[str, Any]],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    repeat = Repeat("run-1", {"epoch": 5, "top_1_accuracy": 0.5}, {})
    monkeypatch.setattr(worker, "repeat_in", lambda config: repeat)
    worker._run_trial({})
    assert reports == [{"epoch": 5, "top_1_accuracy": 0.5, worker.NODE_KEY: "node-1",
                        worker.DONE_KEY: True, "checkpoint": False}]
