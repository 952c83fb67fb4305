"""Parameter importance of Optuna sweeps (sweeper.reports.importance): Optuna's
evaluator on a study rebuilt from the trials frame."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sweeper.reports import tables
from sweeper.reports.importance import SAMPLE, param_importance
from sweeper.spec.schema import OptunaParam

from .synthetic import OPTUNA_SPACE, optuna_sweep


def decided_by_temperature(n: int, seed: int = 0) -> pd.DataFrame:
    """Finished trials whose metric is a function of the temperature alone (the others
    are sampled alike but change nothing)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "temperature": np.exp(rng.uniform(np.log(0.05), 0.0, n)),
        "color_jitter_strength": rng.uniform(0.0, 1.0, n),
        "learning_rate": np.exp(rng.uniform(np.log(1e-4), np.log(1e-1), n)),
        "optimizer": rng.choice(["lars", "adamw", "sgd"], n).astype(object),
    })
    return frame.assign(top_1_accuracy=0.8 - 0.1 * np.log(frame["temperature"] / 0.2) ** 2,
                        state="FINISHED", trial_index=range(n))


def test_the_parameter_that_decides_the_metric_dominates() -> None:
    result = param_importance(decided_by_temperature(300), OPTUNA_SPACE, "top_1_accuracy",
                              "max")
    assert next(iter(result.values)) == "temperature"
    assert result.values["temperature"] > 0.8
    assert sum(result.values.values()) == pytest.approx(1.0)
    assert (result.finished, result.evaluated) == (300, 300)
    assert result.line().startswith("importance of top_1_accuracy (mean decrease impurity "
                                    "over 300 finished trials): temperature 1.00, ")


def test_only_trials_that_may_be_best_count_and_a_large_sweep_is_sampled() -> None:
    sweep = optuna_sweep(3000)
    eligible = tables.can_be_best(sweep.trials).sum()
    result = param_importance(sweep.trials, OPTUNA_SPACE, "top_1_accuracy", "max")
    assert (result.finished, result.evaluated) == (eligible, SAMPLE)
    assert f"a seeded sample of 2,000 of {eligible:,} finished trials" in result.line()
    again = param_importance(sweep.trials, OPTUNA_SPACE, "top_1_accuracy", "max")
    assert again.values == result.values  # seeded: the same sample and forest
    assert next(iter(result.values)) == "temperature"


def test_the_table_renames_as_the_report_does() -> None:
    result = param_importance(decided_by_temperature(50), OPTUNA_SPACE, "top_1_accuracy",
                              "max")
    table = result.table(tables.RENAMES)
    assert list(table.columns) == ["param", "importance", "method", "metric",
                                   "finished_trials", "evaluated_trials"]
    assert set(table["param"]) == {"temperature", "color_jitter", "learning_rate",
                                   "optimizer"}
    assert table["importance"].is_monotonic_decreasing


@pytest.mark.parametrize(("trials", "space", "reason"), [
    (decided_by_temperature(1), OPTUNA_SPACE, "1 finished trial; it needs 2"),
    (decided_by_temperature(0), OPTUNA_SPACE, "0 finished trials; it needs 2"),
    (decided_by_temperature(20), {"temperature": OPTUNA_SPACE["temperature"]},
     "a single swept parameter, temperature"),
    (decided_by_temperature(20), {}, "no Optuna distributions: a grid sweep, or no "
     "recorded spec"),
    (decided_by_temperature(20).assign(top_1_accuracy=0.5), OPTUNA_SPACE,
     "the metric is the same in every finished trial"),
    (decided_by_temperature(5).assign(state="FAILED"), OPTUNA_SPACE,
     "0 finished trials; it needs 2"),
])
def test_no_importance_is_one_line_saying_why(trials: pd.DataFrame,
                                              space: dict[str, OptunaParam],
                                              reason: str) -> None:
    result = param_importance(trials, space, "top_1_accuracy", "max")
    assert result.values == {} and result.table().empty
    assert result.line() == f"importance of top_1_accuracy: none ({reason})"


def test_values_outside_the_distributions_are_left_out() -> None:
    trials = decided_by_temperature(30)
    trials.loc[0, "temperature"] = 5.0  # outside [0.05, 1]: e.g. a spec changed afterwards
    trials.loc[1, "optimizer"] = "adam"  # not among the choices
    result = param_importance(trials, OPTUNA_SPACE, "top_1_accuracy", "max")
    assert result.finished == 28
