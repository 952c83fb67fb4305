"""A sweep's device time and what stopping early saved, against a hand computation."""

import pandas as pd
import pytest

from sweeper.reports.cost import sweep_cost


def test_device_hours_and_the_savings_of_stopping_early() -> None:
    trials = pd.DataFrame({
        # 3 full trials, one stopped at epoch 2 of 8, one at 4 of 8, one without a run
        "device_seconds": [3600.0, 1800.0, 1800.0, 900.0, 1800.0, None],
        "stopped_at_epoch": pd.array([None, None, None, 2, 4, None], dtype="Int64"),
        "epochs_planned": pd.array([8, 8, 8, 8, 8, None], dtype="Int64"),
    })
    cost = sweep_cost(trials)
    assert cost is not None
    assert cost.device_hours == pytest.approx(9900 / 3600)
    # 900 s for 2 of 8 epochs: 2700 s more to the end; 1800 s for 4 of 8: 1800 s more
    assert cost.saved_device_hours == pytest.approx(4500 / 3600)
    assert cost.stopped == 2
    assert cost.line() == ("device time: 2.75 device-hours; stopping 2 trial(s) early saved "
                           "about 1.25 device-hours (31% of running every trial to its last "
                           "epoch)")


def test_no_device_seconds_no_cost() -> None:
    assert sweep_cost(pd.DataFrame({"device_seconds": [None, None]})) is None
    full = sweep_cost(pd.DataFrame({"device_seconds": [7200.0], "stopped_at_epoch": [None],
                                    "epochs_planned": [3]}))
    assert full is not None and full.line() == "device time: 2 device-hours"
