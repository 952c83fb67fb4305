"""DataFrame -> tables, pure: the thesis's Table 3 (every trial) and Table 2 (the
best trial per batch size) as CSV and booktabs LaTeX, and a side-by-side
comparison with a reference table. No I/O here, so golden files can pin it.

Input: the trials frame of sweeper.reports.collect (one row per trial run, original
MLflow param names, unrounded final metrics, a `state` per run).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from sweeper.reports.statistics import FINISHED, TIED, ci95, finite_values, tied_to_best
from trainers.metrics import TABLE_COLUMNS
from trainers.metrics import decimals as metric_decimals

# The thesis calls the colour-jitter strength `color_jitter`; this is the only rename.
RENAMES = {"color_jitter_strength": "color_jitter"}
# The thesis's Table 3 columns, and every metric's rounding: the metric catalogue's.
TABLE_METRICS = TABLE_COLUMNS
STD, CI = "_std", "_ci95"
REFERENCE, DIFF = "_reference", "_diff"
# Trials that logged a step-0 point (the random-init baseline): final - step-0 metric.
GAIN = "gain_over_init"
STOPPED = "stopped_at_epoch"  # the epoch a scheduler (ASHA) stopped a trial at
INIT = "_init"  # the trials frame's <metric>_init: the metric at step 0, when logged


@dataclass(frozen=True)
class Layout:
    """What the tables need to know about the sweep."""

    axes: tuple[str, ...]  # swept params (MLflow names), declared order: the leading columns
    grid: bool = True  # False for Optuna: rows sorted by the metric, not by the axes
    metric: str = "top_1_accuracy"  # what "best" means
    mode: str = "max"

    @property
    def metrics(self) -> list[str]:
        return list(dict.fromkeys([*TABLE_METRICS, self.metric]))


@dataclass(frozen=True)
class Summary:
    """One row per trial, or per grid cell when seeds repeat cells (finished runs
    averaged; every other run its own row). Unrounded, original names, plus the
    columns `seeds` (the seeds of the runs in the row, e.g. "0 1 2"), `state` and
    `best` (the best row of its batch size)."""

    rows: pd.DataFrame
    layout: Layout
    repeated: bool  # some cell has several runs: tables show mean ± std


def renamed(column: str) -> str:
    return RENAMES.get(column, column)


def decimals(column: str) -> int:
    base = column.removesuffix(STD).removesuffix(CI).removesuffix(REFERENCE).removesuffix(DIFF)
    return metric_decimals(base)


# --- summarising trials ------------------------------------------------------------

def summarise(trials: pd.DataFrame, layout: Layout) -> Summary:
    axes, metrics = list(layout.axes), layout.metrics
    repeated = layout.grid and bool(axes) and trials.groupby(axes, dropna=False).size().gt(1).any()
    init = layout.metric + INIT
    if init in trials and trials[init].notna().any():
        trials = trials.assign(**{GAIN: trials[layout.metric].astype(float)
                                  - trials[init].astype(float)})
    keep = [c for c in dict.fromkeys([*axes, "batch_size", *metrics, GAIN, STOPPED, "state",
                                      "seed", "trial_index"]) if c in trials]
    finished = trials.loc[trials["state"] == FINISHED, keep]
    others = trials.loc[trials["state"] != FINISHED, keep]
    if repeated:
        cells = [cell for _, cell in finished.groupby(axes, dropna=False, sort=False)]
        parts = [_aggregate(cell, axes, metrics) for cell in cells]
        finished = pd.DataFrame(parts, columns=list(dict.fromkeys(
            [*axes, "batch_size", *metrics, *_spread_columns(metrics),
             *([GAIN] if GAIN in trials else []), *([STOPPED] if STOPPED in trials else []),
             "seeds", "state"])))
        finished[TIED] = tied_to_best([finite_values(cell[layout.metric]) for cell in cells],
                               layout.mode)[1]
    # concat of an empty part would reset the other part's dtypes (Int64 -> object)
    rows = pd.concat([p for p in (finished, others) if not p.empty] or [finished],
                     ignore_index=True)
    single = rows["seed"].map(_seed_text) if "seed" in rows else ""
    rows["seeds"] = rows["seeds"].fillna(single) if "seeds" in rows else single
    rows = _sorted(rows, layout)
    rows["best"] = best_mask(rows, layout)
    return Summary(rows, layout, bool(repeated))


def _aggregate(cell: pd.DataFrame, axes: list[str], metrics: list[str]) -> dict[str, Any]:
    row: dict[str, Any] = {axis: cell[axis].iloc[0] for axis in axes}
    row["batch_size"] = cell["batch_size"].iloc[0]
    for metric in metrics:
        values = pd.to_numeric(cell[metric], errors="coerce").astype(float)
        row[metric] = values.mean()
        if metric != "steps":
            row[metric + STD] = values.std(ddof=1)  # the sample std; NaN for one seed
            row[metric + CI] = ci95(finite_values(values))
    if GAIN in cell:
        row[GAIN] = cell[GAIN].astype(float).mean()
    if STOPPED in cell:  # the earliest stop among its seeds
        row[STOPPED] = cell[STOPPED].min() if cell[STOPPED].notna().any() else pd.NA
    row.update(seeds=" ".join(_seed_text(s) for s in sorted(cell["seed"].dropna())),
               state=FINISHED)
    return row


def _seed_text(seed: Any) -> str:
    return "" if pd.isna(seed) else str(int(seed))


def _spread_columns(metrics: list[str]) -> list[str]:
    return [m + suffix for m in metrics if m != "steps" for suffix in (STD, CI)]


def _sorted(rows: pd.DataFrame, layout: Layout) -> pd.DataFrame:
    """Grid: by the axes in declared order (the thesis's order). Optuna: finished
    trials by the metric, best first, then the others by trial index."""
    rows = rows.assign(_unfinished=rows["state"] != FINISHED)
    if layout.grid:
        keys = [*layout.axes, "_unfinished", *(k for k in ("seed", "trial_index") if k in rows)]
        ascending = [True] * len(keys)
    else:
        keys = ["_unfinished", layout.metric,
                *(k for k in ("trial_index",) if k in rows)]
        ascending = [True, layout.mode == "min", True][: len(keys)]
    rows = rows.sort_values(keys, ascending=ascending, na_position="last", kind="stable")
    return rows.drop(columns="_unfinished").reset_index(drop=True)


def can_be_best(rows: pd.DataFrame) -> pd.Series:
    """Rows that may be "best": FINISHED and not stopped early by a scheduler (a stopped
    trial's metric is from fewer epochs)."""
    full = rows[STOPPED].isna() if STOPPED in rows else True
    return (rows["state"] == FINISHED) & full


def ranked(rows: pd.DataFrame, metric: str, mode: str) -> pd.DataFrame:
    """The rows that may be best and have the metric, best first. Ties: the lower
    `trial_index` first, then the rows' own order (cells of seeds have no index).
    Every "best" of the report (Table 2, the page's rows, the named curves) ranks so."""
    scored = rows[can_be_best(rows) & rows[metric].notna()]
    order = scored.assign(_value=scored[metric].astype(float),
                          _index=scored.get("trial_index", 0))
    order = order.sort_values(["_value", "_index"], ascending=[mode == "min", True],
                              na_position="last", kind="stable")
    return scored.loc[order.index]


def best_mask(rows: pd.DataFrame, layout: Layout) -> pd.Series:
    """The best row of each batch size (`ranked`: finished, not stopped early)."""
    best = pd.Series(False, index=rows.index)
    order = ranked(rows, layout.metric, layout.mode)
    if order.empty:
        return best
    best[order.groupby(order["batch_size"].astype(object), dropna=False,
                       sort=False).head(1).index] = True
    return best


# --- the output tables (renamed, rounded) ------------------------------------------

def appendix_b(summary: Summary) -> pd.DataFrame:
    """Table 3: every trial. For the SimCLR grid exactly the thesis's columns
    batch_size,temperature,color_jitter,regularization_loss,top_1_accuracy,
    top_5_accuracy,steps; with a step-0 point logged also `gain_over_init`; with
    seeds also <metric>_std, <metric>_ci95, `seeds` and
    `indistinguishable_from_best`; with any trial not FINISHED also its `state`."""
    rows, layout = summary.rows, summary.layout
    columns = [*layout.axes]
    for metric in layout.metrics:
        if metric in layout.axes:
            continue
        columns.append(metric)
        if summary.repeated and metric != "steps":
            columns += [metric + STD, metric + CI]
    if GAIN in rows:
        columns.append(GAIN)
    if STOPPED in rows and rows[STOPPED].notna().any():
        columns.append(STOPPED)
    if summary.repeated:
        columns += ["seeds", TIED]
    if (rows["state"] != FINISHED).any():
        columns.append("state")
    return _presented(rows[columns], layout)


def best_by_batch_size(summary: Summary) -> pd.DataFrame:
    """Table 2: the best finished trial of each batch size, batch_size first."""
    table = appendix_b(summary)
    best = table[summary.rows["best"].to_numpy()].copy()
    if "batch_size" not in best:
        best.insert(0, "batch_size", summary.rows.loc[summary.rows["best"], "batch_size"].array)
    leading = ["batch_size", *(c for c in best.columns if c != "batch_size")]
    best = best[[c for c in leading if c != "state"]]
    return best.sort_values("batch_size", kind="stable").reset_index(drop=True)


def _presented(frame: pd.DataFrame, layout: Layout) -> pd.DataFrame:
    """Renamed and rounded as the thesis prints: pandas then writes 0.0093, 0.83, 1.0.
    Axis values stay as logged; the gain over init is rounded as its metric."""
    frame = frame.copy()
    for column in frame.columns:
        if column in layout.axes or column in ("seeds", "state", TIED, STOPPED):
            continue
        places = decimals(layout.metric if column == GAIN else column)
        frame[column] = frame[column].astype(float).round(places)
        if places == 0:
            frame[column] = frame[column].astype("Int64")
    return frame.rename(columns=RENAMES).reset_index(drop=True)


def trials_table(trials: pd.DataFrame, layout: Layout) -> pd.DataFrame:
    """trials.csv: every run as logged (no averaging, no rounding), with its state
    and error, so that nothing a table folds away is lost."""
    leading = ["run_name", "trial_index", "state", "seed", *layout.axes]
    if "batch_size" not in layout.axes:
        leading.append("batch_size")
    metrics = [m for m in dict.fromkeys([*layout.metrics, "epoch"])
               if m in trials and m not in layout.axes]
    init = layout.metric + INIT
    if init in trials and trials[init].notna().any():
        metrics.append(init)  # the metric at step 0 (random init), when trials logged it
    table = trials[[*leading, *metrics, "error", "run_id"]]
    keys = [*layout.axes, "seed", "trial_index"] if layout.grid else ["trial_index"]
    table = table.sort_values(keys, na_position="last", kind="stable")
    return table.rename(columns=RENAMES).reset_index(drop=True)


def compare(summary: Summary, reference: pd.DataFrame) -> pd.DataFrame:
    """Side by side with a reference table (e.g. the thesis's Appendix B CSV):
    per cell, each shared metric as ours, <metric>_reference and <metric>_diff
    (ours - reference). Cells missing on either side stay, with blanks."""
    layout = summary.layout
    keys = [renamed(a) for a in layout.axes if renamed(a) in reference.columns]
    if not keys:
        raise ValueError("the reference table shares no column with the sweep's axes "
                         f"({', '.join(renamed(a) for a in layout.axes) or 'none'}); "
                         f"its columns: {', '.join(map(str, reference.columns))}")
    metrics = [m for m in layout.metrics if m in reference.columns and m not in layout.axes]
    if not metrics:
        raise ValueError("the reference table has none of the metric columns "
                         f"{', '.join(layout.metrics)}")
    rows = summary.rows[summary.rows["state"] == FINISHED].rename(columns=RENAMES)
    ours = rows[[*keys, *metrics]]
    theirs = reference[[*keys, *metrics]].rename(columns={m: m + REFERENCE for m in metrics})
    merged = ours.merge(theirs, on=keys, how="outer", sort=True)
    columns = list(keys)
    for metric in metrics:
        merged[metric + DIFF] = merged[metric].astype(float) - merged[metric + REFERENCE]
        columns += [metric, metric + REFERENCE, metric + DIFF]
    merged = merged[columns]
    for column in columns[len(keys):]:
        places = decimals(column)
        merged[column] = merged[column].astype(float).round(places)
        if places == 0:
            merged[column] = merged[column].astype("Int64")
    return merged.reset_index(drop=True)


def to_csv(table: pd.DataFrame) -> str:
    return table.to_csv(index=False, lineterminator="\n", na_rep="")
