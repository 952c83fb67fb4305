"""Statistics over seeds, pure: the 95% interval of a cell's mean and which cells are
not significantly worse than the best one (Welch's one-sided t-test, scipy's)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

FINISHED = "FINISHED"
# Several seeds per cell: is a cell's mean significantly below the best cell's?
TIED = "indistinguishable_from_best"
ALPHA = 0.05  # Welch's one-sided t-test at 5%


def finite_values(column: pd.Series) -> np.ndarray:
    """The finite values of a column as floats (a cell's metric over its seeds)."""
    values = pd.to_numeric(column, errors="coerce").astype(float).to_numpy()
    return values[np.isfinite(values)]


def ci95(values: Sequence[float] | np.ndarray) -> float:
    """Half-width of the 95% Student-t interval of the mean: t_{0.975, n-1} * s / sqrt(n);
    NaN below two values."""
    sample = np.asarray(values, dtype=float)
    n = len(sample)
    if n < 2:
        return math.nan
    return float(stats.t.ppf(0.975, n - 1) * sample.std(ddof=1) / math.sqrt(n))


def welch_p_below(best: Sequence[float] | np.ndarray, other: Sequence[float] | np.ndarray,
                  mode: str = "max") -> float:
    """Welch's one-sided t-test of `other` against `best`: the p-value of "other's mean
    is below best's" (above, for mode="min"). NaN when either side has under two
    values; with no spread at all on both sides, 0 for a lower mean, else 1."""
    a, b = np.asarray(best, dtype=float), np.asarray(other, dtype=float)
    if len(a) < 2 or len(b) < 2:
        return math.nan
    if a.var() + b.var() == 0:  # scipy has no t statistic to give: the means decide
        gap = a.mean() - b.mean() if mode == "max" else b.mean() - a.mean()
        return 0.0 if gap > 0 else 1.0
    test = stats.ttest_ind(a, b, equal_var=False,
                           alternative="greater" if mode == "max" else "less")
    return float(test.pvalue)


def tied_to_best(samples: list[np.ndarray], mode: str, alpha: float = ALPHA
          ) -> tuple[list[float], pd.Series]:
    """Per cell (its metric over seeds): the p-value against the best cell and whether
    it is indistinguishable from it (not significantly worse at `alpha`). The best
    cell(s) by mean are True; a cell that cannot be tested (under two seeds on
    either side, no values) is <NA>."""
    means = [float(s.mean()) if len(s) else math.nan for s in samples]
    tied = pd.Series(pd.NA, index=range(len(samples)), dtype="boolean")
    p_values = [math.nan] * len(samples)
    scored = [i for i, m in enumerate(means) if math.isfinite(m)]
    if not scored:
        return p_values, tied
    pick = max if mode == "max" else min
    top = pick(means[i] for i in scored)
    best = [i for i in scored if means[i] == top]
    for i in scored:
        if i in best:
            tied[i] = True
            continue
        p_values[i] = welch_p_below(samples[best[0]], samples[i], mode)
        if math.isfinite(p_values[i]):
            tied[i] = p_values[i] >= alpha
    return p_values, tied


def indistinguishable_from_best(trials: pd.DataFrame, axes: Sequence[str],
                                metric: str = "top_1_accuracy", mode: str = "max",
                                alpha: float = ALPHA) -> pd.DataFrame:
    """The cells of a sweep that are not significantly worse than the best one.

    `trials`: one row per run, as sweeper.reports.collect's trials frame (a `state` column,
    each axis, the metric). Its FINISHED runs are grouped into cells by `axes`;
    per cell: `n` (runs with a value), `mean`, `std`, `ci95` (half-width of the 95%
    Student-t interval of the mean), `p_value` (Welch's one-sided t-test of "this
    cell's mean is below the best cell's", above for mode="min"; NaN for the best
    cell and where untestable) and `indistinguishable_from_best`: True for the best
    cell and for every cell with p_value >= alpha, False below, <NA> when a side has
    under two values. Rows sorted by the axes."""
    finished = trials[trials["state"] == FINISHED] if "state" in trials else trials
    keys = list(axes)
    groups = (list(finished.groupby(keys, dropna=False, sort=True)) if keys
              else [((), finished)])
    samples = [finite_values(cell[metric]) for _, cell in groups]
    p_values, tied = tied_to_best(samples, mode, alpha)
    rows = []
    for (key, _), sample in zip(groups, samples, strict=True):
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(keys, key, strict=True)), "n": len(sample),
                     "mean": float(sample.mean()) if len(sample) else math.nan,
                     "std": float(sample.std(ddof=1)) if len(sample) > 1 else math.nan,
                     "ci95": ci95(sample)})
    frame = pd.DataFrame(rows, columns=[*keys, "n", "mean", "std", "ci95"])
    frame["p_value"] = p_values
    frame[TIED] = tied.array
    return frame
