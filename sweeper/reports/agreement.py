"""How well a sweep reproduces a published table (e.g. the thesis's Appendix B):
over the cells both tables have, the rank correlations of the metric (Spearman,
Kendall's tau-b, both tie-aware), the mean and largest absolute difference, and
whether the best cell is the same. Pure: frames in, a JSON-ready dict out.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats


def agreement(ours: pd.DataFrame, reference: pd.DataFrame, keys: Sequence[str], metric: str,
              mode: str = "max") -> dict[str, Any]:
    """Compare `metric` of `ours` (one row per cell: the sweep's finished cells,
    unrounded) with `reference` on the cells matched by `keys` (rows without a value
    on either side are left out).

    Returns: metric, mode, keys, matched_cells, sweep_cells, reference_cells,
    spearman, spearman_p, kendall, kendall_p (None, with `undefined` saying why,
    under two matched cells or when one side is constant over them),
    mean_abs_diff, max_abs_diff (None without matched cells), same_best (a matched
    cell is best in both; None without matched cells), best_sweep and
    best_reference: the best matched cell(s) of each side, every cell that ties at
    the best value, as {key: value, ..., metric: value}.
    """
    keys = list(keys)
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' or 'min', not {mode!r}")
    for name, frame in (("sweep", ours), ("reference", reference)):
        missing = [c for c in [*keys, metric] if c not in frame]
        if missing:
            raise ValueError(f"the {name} table has no column {', '.join(missing)}")
    mine = _scored(ours, keys, metric)
    theirs = _scored(reference, keys, metric)
    matched = mine.merge(theirs, on=keys, how="inner", suffixes=("", "_reference"))
    a = matched[metric].to_numpy(float)
    b = matched[metric + "_reference"].to_numpy(float)
    result: dict[str, Any] = {
        "metric": metric, "mode": mode, "keys": keys,
        "matched_cells": len(matched), "sweep_cells": len(mine),
        "reference_cells": len(theirs),
        "spearman": None, "spearman_p": None, "kendall": None, "kendall_p": None,
        "undefined": None,
        "mean_abs_diff": _number(np.abs(a - b).mean()) if len(matched) else None,
        "max_abs_diff": _number(np.abs(a - b).max()) if len(matched) else None,
        "same_best": None, "best_sweep": [], "best_reference": [],
    }
    if len(matched) < 2:
        result["undefined"] = f"{len(matched)} matched cell{'s' * (len(matched) != 1)}"
    elif np.unique(a).size < 2 or np.unique(b).size < 2:
        side = "the sweep" if np.unique(a).size < 2 else "the reference"
        result["undefined"] = f"{metric} is constant over the matched cells of {side}"
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy's small-sample notes
            rho = stats.spearmanr(a, b)
            tau = stats.kendalltau(a, b)  # tau-b: accounts for ties on either side
        result.update(spearman=_number(rho.statistic), spearman_p=_number(rho.pvalue),
                      kendall=_number(tau.statistic), kendall_p=_number(tau.pvalue))
    if len(matched):
        best_ours = _best(a, mode)
        best_theirs = _best(b, mode)
        result["same_best"] = bool(best_ours & best_theirs)
        result["best_sweep"] = [_cell(matched, keys, metric, i, metric)
                                for i in sorted(best_ours)]
        result["best_reference"] = [_cell(matched, keys, metric + "_reference", i, metric)
                                    for i in sorted(best_theirs)]
    return result


def agreement_line(result: dict[str, Any], source: str = "the reference") -> str:
    """One line for stdout, e.g. `agreement with thesis.csv on top_1_accuracy: 32 matched
    cells, Spearman 1.000, Kendall 1.000, |sweep - reference| mean 0.0000 max 0.0000,
    same best cell (batch_size=1024 temperature=0.25 color_jitter=0.75)`."""
    n = result["matched_cells"]
    head = (f"agreement with {source} on {result['metric']}: "
            f"{n} matched cell{'s' * (n != 1)}")
    if n == 0:
        return (f"{head} (the sweep has {result['sweep_cells']} finished cells, the "
                f"reference {result['reference_cells']}): nothing to compare")
    if result["spearman"] is None:
        parts = [f"Spearman and Kendall undefined ({result['undefined']})"]
    else:
        parts = [f"Spearman {result['spearman']:.3f}", f"Kendall {result['kendall']:.3f}"]
    parts.append(f"|sweep - reference| mean {result['mean_abs_diff']:.4f} "
                 f"max {result['max_abs_diff']:.4f}")
    if result["same_best"]:
        # A cell is its keys: the two sides' metric values differ (that is the point).
        theirs = [_keys_of(c, result) for c in result["best_reference"]]
        common = [c for c in result["best_sweep"] if _keys_of(c, result) in theirs]
        parts.append(f"same best cell ({_cells_text(common, result)})")
    else:
        parts.append(f"different best cell: sweep {_cells_text(result['best_sweep'], result)}"
                     f", reference {_cells_text(result['best_reference'], result)}")
    return f"{head}, " + ", ".join(parts)


# --- helpers -------------------------------------------------------------------------

def _scored(frame: pd.DataFrame, keys: list[str], metric: str) -> pd.DataFrame:
    values = pd.to_numeric(frame[metric], errors="coerce").astype(float)
    scored = frame[keys].assign(**{metric: values})
    return scored[values.notna().to_numpy()].reset_index(drop=True)


def _best(values: np.ndarray, mode: str) -> set[int]:
    top = values.max() if mode == "max" else values.min()
    return {int(i) for i in np.flatnonzero(values == top)}


def _cell(matched: pd.DataFrame, keys: list[str], column: str, row: int,
          metric: str) -> dict[str, Any]:
    # Column by column: a row of mixed dtypes would turn 1024 into 1024.0.
    cell = {key: _plain(matched[key].iloc[row]) for key in keys}
    cell[metric] = _plain(matched[column].iloc[row])
    return cell


def _keys_of(cell: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    return {key: cell[key] for key in result["keys"]}


def _cells_text(cells: list[dict[str, Any]], result: dict[str, Any]) -> str:
    return " / ".join(" ".join(f"{k}={cell[k]}" for k in result["keys"]) for cell in cells)


def _plain(value: Any) -> Any:
    """A JSON-ready Python scalar (numpy and pandas scalars, NA as None)."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, np.generic):
        value = value.item()
    return _number(value) if isinstance(value, float) else value


def _number(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None
