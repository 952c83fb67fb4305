"""What a trial's worker reports to Tune (sweeper.driver.worker): the last epoch's result
says the trial is done, so Tune stops it there instead of waiting for one more hand-over
to learn that it returned; no earlier result does; a repeat's one result is its last."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from sweeper.driver import worker
from sweeper.driver.repeats import Repeat


@pytest.fixture
def reports(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(worker.tune, "report",
                        lambda metrics, checkpoint=None: sent.append(dict(metrics)))
    monkeypatch.setattr(worker.tune, "get_checkpoint", lambda: None)
    monkeypatch.setattr(worker.ray, "get_runtime_context",
                        lambda: SimpleNamespace(get_node_id=lambda: "node-1"))
    monkeypatch.setattr(worker, "trial_provenance", lambda cfg: {})
    return sent


def trial_of(epochs: int) -> Any:
    return SimpleNamespace(config=SimpleNamespace(train=SimpleNamespace(epochs=epochs)))


@pytest.mark.parametrize("epochs", [1, 3])
def test_only_the_last_epochs_result_says_done(
        epochs: int, reports: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    monkeypatch.setattr(worker, "trial_from_ray_config", lambda config: trial_of(epochs))

    def trains(cfg: Any, publish: Any, resume: Any) -> None:
        publish({"epoch": 0, "top_1_accuracy": 0.1}, None)  # the baseline: held
        for epoch in range(1, epochs + 1):
            publish({"epoch": epoch, "top_1_accuracy": 0.1 + epoch}, tmp_path)

    monkeypatch.setattr(worker, "run_trial_in_worker", trains)
    worker._run_trial({})
    assert [r["epoch"] for r in reports] == list(range(1, epochs + 1))
    assert [r.get(worker.DONE_KEY, False) for r in reports] == [False] * (epochs - 1) + [True]
    assert worker.EARLIER_KEY in reports[0]  # the held baseline rode with the first epoch


def test_a_trial_stopped_before_its_last_epoch_never_says_done(
        reports: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    monkeypatch.setattr(worker, "trial_from_ray_config", lambda config: trial_of(4))

    def trains(cfg: Any, publish: Any, resume: Any) -> None:
        publish({"epoch": 1}, tmp_path)
        publish({"epoch": 2}, tmp_path)  # ASHA stops it here: Tune decides, not the worker

    monkeypatch.setattr(worker, "run_trial_in_worker", trains)
    worker._run_trial({})
    assert [worker.DONE_KEY in r for r in reports] == [False, False]


def test_a_repeats_one_result_says_done(reports: list[dict[str, Any]],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    repeat = Repeat("run-1", {"epoch": 5, "top_1_accuracy": 0.5}, {})
    monkeypatch.setattr(worker, "repeat_in", lambda config: repeat)
    worker._run_trial({})
    assert reports == [{"epoch": 5, "top_1_accuracy": 0.5, worker.NODE_KEY: "node-1",
                        worker.DONE_KEY: True}]
