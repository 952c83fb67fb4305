"""The GIL switch interval the driver and its workers run under (sweeper.driver.handover):
set within the block, restored after, a shorter one kept; the worker trains under it,
and run_sweep runs Tune's loop under it."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sweeper.driver import worker
from sweeper.driver.handover import SWITCH_INTERVAL_S, quick_handovers

from .conftest import tiny_sweep


@pytest.fixture
def default_interval() -> Iterator[float]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.005)
    yield 0.005
    sys.setswitchinterval(before)


def test_the_block_runs_at_the_short_interval_and_restores_the_one_before(
        default_interval: float) -> None:
    with quick_handovers():
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL_S)
    assert sys.getswitchinterval() == pytest.approx(default_interval)
    with pytest.raises(RuntimeError), quick_handovers():  # restored on the way out of a failure
        raise RuntimeError("the trial failed")
    assert sys.getswitchinterval() == pytest.approx(default_interval)


def test_a_shorter_interval_already_set_is_kept(default_interval: float) -> None:
    sys.setswitchinterval(SWITCH_INTERVAL_S / 5)
    with quick_handovers():
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL_S / 5, rel=0.05)
    assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL_S / 5, rel=0.05)


def test_the_worker_runs_its_trial_at_the_short_interval(
        default_interval: float, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[float] = []

    def trial(config: dict[str, Any]) -> None:
        seen.append(sys.getswitchinterval())

    monkeypatch.setattr(worker, "_run_trial", trial)
    worker.ray_trainable({"seed": 0})
    assert seen == [pytest.approx(SWITCH_INTERVAL_S)]
    assert sys.getswitchinterval() == pytest.approx(default_interval)


@pytest.mark.slow
@pytest.mark.integration
def test_run_sweep_runs_tunes_loop_at_the_short_interval_and_restores_it(
        local_ray: None, workdir: Path, default_interval: float,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from sweeper.driver import SweepOptions, run_sweep, sweep
    from sweeper.spec.load import parse_spec

    seen: list[float] = []

    def fit_stages(*args: Any) -> None:  # where Tune's loop would run
        seen.append(sys.getswitchinterval())
        raise KeyboardInterrupt

    monkeypatch.setattr(sweep, "_fit_stages", fit_stages)
    text = tiny_sweep("interval", "search:\n  seeds: [0]\n")
    options = SweepOptions(storage=workdir / "results",
                           tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}")
    with pytest.raises(KeyboardInterrupt):
        run_sweep(parse_spec(text), text, options, progress=io.StringIO())
    assert seen == [pytest.approx(SWITCH_INTERVAL_S)]
    assert sys.getswitchinterval() == pytest.approx(default_interval)
