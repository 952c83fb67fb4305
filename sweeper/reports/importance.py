"""Parameter importance of an Optuna sweep, by Optuna's own evaluators.

The finished trials of the trials frame (those that may be "best": FINISHED, not
stopped early) are rebuilt as an in-memory Optuna study over the spec's
distributions (`optuna.trial.create_trial`), and `optuna.importance` weighs each
swept parameter. Which evaluator, on how many trials, and why: docs/reports.md
(parameter importance), measured with benchmarks/param_importance.py.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from sweeper.reports.tables import can_be_best
from sweeper.search.optuna import distribution
from sweeper.spec.schema import OptunaParam

if TYPE_CHECKING:
    import optuna

# Mean decrease impurity: a random forest fit to the metric over the params, each
# param's share of the impurity its splits remove. Chosen over fANOVA, Optuna's
# PedANOVA and larger samples by benchmarks/param_importance.py (docs/reports.md): the
# nearest to the true shares of variance (fANOVA integrates a log-scale param over its
# linear range) and about a second at any N, on a seeded sample of SAMPLE trials.
METHOD = "mean decrease impurity"
SAMPLE = 2_000
SEED = 0


@dataclass(frozen=True)
class Importance:
    """The importance of each swept parameter for `metric`, or why there is none."""

    metric: str
    finished: int  # the trials that may be best, with the metric and fitting values
    evaluated: int  # of them, those the evaluator saw (a seeded sample past SAMPLE)
    values: dict[str, float] = field(default_factory=dict)  # param -> share, sum 1, largest first
    reason: str = ""  # why `values` is empty
    method: str = METHOD

    def line(self) -> str:
        """One line, e.g. for `sweeper status`."""
        head = f"importance of {self.metric}"
        if not self.values:
            return f"{head}: none ({self.reason})"
        shares = ", ".join(f"{name} {value:.2f}" for name, value in self.values.items())
        return f"{head} {self.source()}: {shares}"

    def source(self) -> str:
        """How it was weighed, e.g. "(mean decrease impurity over 1,873 finished trials)"."""
        over = (f"{self.finished:,} finished trials" if self.evaluated == self.finished
                else f"a seeded sample of {self.evaluated:,} of {self.finished:,} finished "
                "trials")
        return f"({self.method} over {over})"

    def table(self, rename: Mapping[str, str] | None = None) -> pd.DataFrame:
        """param_importance.csv: one row per parameter, the most important first."""
        rename = rename or {}
        return pd.DataFrame({
            "param": [rename.get(name, name) for name in self.values],
            "importance": [round(value, 4) for value in self.values.values()],
            "method": self.method, "metric": self.metric,
            "finished_trials": self.finished, "evaluated_trials": self.evaluated,
        }, columns=["param", "importance", "method", "metric", "finished_trials",
                    "evaluated_trials"])


def param_importance(trials: pd.DataFrame, distributions: Mapping[str, OptunaParam],
                     metric: str, mode: str, *, sample: int = SAMPLE,
                     evaluator: Any = None) -> Importance:
    """The importance of each parameter of `distributions` (the spec's Optuna params,
    MLflow names) for `metric`, over the trials frame's finished trials whose values
    fit the distributions. `evaluator`: another `optuna.importance` evaluator (the
    benchmark compares them); `sample`: at most this many trials are evaluated."""
    points, values = _points(trials, distributions, metric)
    finished = len(values)
    reason = _no_importance(distributions, values, points)
    if reason:
        return Importance(metric, finished, 0, reason=reason)
    if finished > sample:  # a seeded sample, drawn over the trials in index order
        keep = np.sort(np.random.default_rng(SEED).choice(finished, sample, replace=False))
        points, values = [points[i] for i in keep], values[keep]
    from optuna.importance import MeanDecreaseImpurityImportanceEvaluator, get_param_importances

    chosen = evaluator or MeanDecreaseImpurityImportanceEvaluator(seed=SEED)
    # No `params=`: mean decrease impurity names its results in that list's order but
    # computes them in the study's (sorted) one; every trial holds every param anyway.
    shares = get_param_importances(_study(points, values, distributions, mode),
                                   evaluator=chosen)
    order = list(distributions)
    ranked = sorted(shares.items(), key=lambda item: (-item[1], order.index(item[0])))
    return Importance(metric, finished, len(values),
                      values={name: float(value) for name, value in ranked},
                      method=METHOD if evaluator is None else _method_name(evaluator))


def importance_line(trials: pd.DataFrame, distributions: Mapping[str, OptunaParam],
                    metric: str, mode: str) -> str:
    """The line `sweeper status` prints for an Optuna sweep, e.g. "importance of
    top_1_accuracy (mean decrease impurity over 1,873 finished trials): temperature
    0.62, ..."."""
    return param_importance(trials, distributions, metric, mode).line()


# --- helpers -------------------------------------------------------------------------

def _points(trials: pd.DataFrame, distributions: Mapping[str, OptunaParam], metric: str
            ) -> tuple[list[dict[str, Any]], np.ndarray]:
    """The params and metric of each trial that may be best, in trial order, for those
    whose every value lies in its distribution (a value outside, e.g. from a spec
    overridden afterwards, cannot enter the study and is left out)."""
    if metric not in trials or any(name not in trials for name in distributions):
        return [], np.empty(0)
    usable = trials[can_be_best(trials) & trials[metric].notna()]
    if "trial_index" in usable:
        usable = usable.sort_values("trial_index", kind="stable")
    points, values = [], []
    columns = {name: usable[name].tolist() for name in distributions}
    for i, value in enumerate(usable[metric].astype(float)):
        point = {name: _fit(columns[name][i], param) for name, param in distributions.items()}
        if math.isfinite(value) and all(v is not None for v in point.values()):
            points.append(point)
            values.append(value)
    return points, np.asarray(values, dtype=float)


def _fit(value: Any, param: OptunaParam) -> Any:
    """`value` as its distribution holds it, or None when it is not one of its values."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if param.type == "categorical":
        return next((c for c in param.choices or [] if str(c) == str(value)), None)
    try:
        number: float = float(value)
    except (TypeError, ValueError):
        return None
    if param.type == "int":
        if not number.is_integer():
            return None
        number = int(number)
    assert param.low is not None and param.high is not None  # checked by the spec
    return number if param.low <= number <= param.high else None


def _no_importance(distributions: Mapping[str, OptunaParam], values: np.ndarray,
                   points: list[dict[str, Any]]) -> str:
    if not distributions:
        return "no Optuna distributions: a grid sweep, or no recorded spec"
    if len(distributions) == 1:
        return f"a single swept parameter, {next(iter(distributions))}"
    if len(values) < 2:
        return f"{len(values)} finished trial{'s' if len(values) != 1 else ''}; it needs 2"
    if np.ptp(values) == 0:
        return "the metric is the same in every finished trial"
    if all(len({str(p[name]) for p in points}) == 1 for name in distributions):
        return "every finished trial has the same parameters"
    return ""


def _study(points: list[dict[str, Any]], values: np.ndarray,
           distributions: Mapping[str, OptunaParam], mode: str) -> optuna.Study:
    import optuna
    from optuna.trial import create_trial

    spaces = {name: distribution(param) for name, param in distributions.items()}
    with _quiet("optuna.storages._in_memory"):  # "A new study created in memory ..."
        study = optuna.create_study(direction="maximize" if mode == "max" else "minimize")
    study.add_trials([create_trial(params=point, distributions=spaces, value=float(value))
                      for point, value in zip(points, values, strict=True)])
    return study


@contextlib.contextmanager
def _quiet(name: str) -> Iterator[None]:
    """Silence one logger's INFO lines for the block, without touching any other."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _method_name(evaluator: Any) -> str:
    return type(evaluator).__name__.removesuffix("ImportanceEvaluator")
