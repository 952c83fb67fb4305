"""DataFrame -> tables, pure: the thesis's Table 3 (every trial) and Table 2 (the
best trial per batch size) as CSV and booktabs LaTeX, and a side-by-side
comparison with a reference table. No I/O here, so golden files can pin it.

Input: the trials frame of sweeper.reports.collect (one row per trial run, original
MLflow param names, unrounded final metrics, a `state` per run).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from trainers.metrics import TABLE_COLUMNS
from trainers.metrics import decimals as metric_decimals

# The thesis calls the colour-jitter strength `color_jitter`; this is the only rename.
RENAMES = {"color_jitter_strength": "color_jitter"}
# The thesis's Table 3 columns, and every metric's rounding: the metric catalogue's.
TABLE_METRICS = TABLE_COLUMNS
FINISHED = "FINISHED"
STD, CI = "_std", "_ci95"
REFERENCE, DIFF = "_reference", "_diff"
# Several seeds per cell: is a cell's mean significantly below the best cell's?
TIED = "indistinguishable_from_best"
ALPHA = 0.05  # Welch's one-sided t-test at 5%
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
        finished[TIED] = _tied([_values(cell[layout.metric]) for cell in cells],
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
            row[metric + CI] = ci95(_values(values))
    if GAIN in cell:
        row[GAIN] = cell[GAIN].astype(float).mean()
    if STOPPED in cell:  # the earliest stop among its seeds
        row[STOPPED] = cell[STOPPED].min() if cell[STOPPED].notna().any() else pd.NA
    row.update(seeds=" ".join(_seed_text(s) for s in sorted(cell["seed"].dropna())),
               state=FINISHED)
    return row


def _values(column: pd.Series) -> np.ndarray:
    """The finite values of a column as floats (a cell's metric over its seeds)."""
    values = pd.to_numeric(column, errors="coerce").astype(float).to_numpy()
    return values[np.isfinite(values)]


# --- intervals and ties over seeds ---------------------------------------------------

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
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    gap = a.mean() - b.mean() if mode == "max" else b.mean() - a.mean()
    if va + vb == 0:
        return 0.0 if gap > 0 else 1.0
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return float(stats.t.sf(gap / math.sqrt(va + vb), df))


def _tied(samples: list[np.ndarray], mode: str, alpha: float = ALPHA
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
    samples = [_values(cell[metric]) for _, cell in groups]
    p_values, tied = _tied(samples, mode, alpha)
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


# --- LaTeX ---------------------------------------------------------------------------

def appendix_b_latex(summary: Summary, caption: str, label: str) -> str:
    """Table 3 in booktabs: a leading value repeated from the row above is left
    blank (no multirow package needed), and the best row of each batch size is
    bold together with the leading values printed for it, as in the thesis."""
    table = appendix_b(summary)
    collapse = [renamed(a) for a in summary.layout.axes][:-1] if summary.layout.grid else []
    bold = pd.DataFrame(False, index=table.index, columns=table.columns)
    for row in table.index[summary.rows["best"].to_numpy()]:
        bold.loc[row, :] = True
        for level, column in enumerate(collapse):
            bold.loc[_group_start(table, collapse[: level + 1], row), column] = True
    return to_latex(table, caption=caption, label=label, axes=_axes(summary),
                    collapse=collapse, bold=bold, **_dagger(table, summary.layout))


def best_by_batch_size_latex(summary: Summary, caption: str, label: str) -> str:
    """Table 2; like the thesis, the overall best value of the metric is bold."""
    table = best_by_batch_size(summary)
    bold = pd.DataFrame(False, index=table.index, columns=table.columns)
    metric = renamed(summary.layout.metric)
    if not table.empty and metric in table:
        values = table[metric].astype(float)
        bold.loc[values.idxmax() if summary.layout.mode == "max" else values.idxmin(),
                 metric] = True
    return to_latex(table, caption=caption, label=label,
                    axes=["batch_size", *_axes(summary)], bold=bold,
                    **_dagger(table, summary.layout))


def _dagger(table: pd.DataFrame, layout: Layout) -> dict[str, Any]:
    """With seeds: a dagger on the metric of the cells indistinguishable from the best,
    and a note under the table saying by which test; with trials a scheduler stopped
    early, a note saying they are not compared."""
    stopped = (f"{_latex_name(STOPPED)}: the epoch at which the scheduler (ASHA) stopped a "
               "trial; such trials are not candidates for the best."
               if STOPPED in table else "")
    if TIED not in table or not table[TIED].fillna(False).astype(bool).any():
        return {"note": stopped} if stopped else {}
    worse = "below" if layout.mode == "max" else "above"
    note = (f"\\textsuperscript{{\\dag}}The best cell by mean {_latex_name(layout.metric)}, "
            f"and the cells not significantly {worse} it (Welch's one-sided $t$-test over "
            "seeds, 5\\% level).")
    return {"mark": table[TIED].fillna(False).astype(bool), "marked": renamed(layout.metric),
            "note": f"{note} {stopped}".rstrip()}


def _latex_name(text: str) -> str:
    return text.replace("_", r"\_")


def compare_latex(table: pd.DataFrame, summary: Summary, caption: str, label: str) -> str:
    """The comparison for the spec's metric only (sweep, reference, diff): with every
    metric the table would be 15 columns wide; the CSV has them all."""
    axes = [c for c in _axes(summary) if c in table]
    metric = renamed(summary.layout.metric)
    shown = [*axes, *(c for c in (metric, metric + REFERENCE, metric + DIFF) if c in table)]
    return to_latex(table[shown], caption=caption, label=label, axes=axes, collapse=axes[:-1])


def _axes(summary: Summary) -> list[str]:
    return [renamed(a) for a in summary.layout.axes]


def _group_start(table: pd.DataFrame, columns: list[str], row: Any) -> Any:
    """The first row of the contiguous block sharing `row`'s values in `columns`."""
    start = row
    position = table.index.get_loc(row)
    key = tuple(table.loc[row, columns])
    while position > 0 and tuple(table.iloc[position - 1][columns]) == key:
        position -= 1
        start = table.index[position]
    return start


def to_latex(table: pd.DataFrame, *, caption: str, label: str, axes: Sequence[str] = (),
             collapse: Sequence[str] = (), bold: pd.DataFrame | None = None,
             mark: pd.Series | None = None, marked: str = "", note: str = "") -> str:
    """A booktabs table (\\toprule, \\midrule, \\bottomrule) via pandas' Styler.

    `axes` are printed as logged (4 significant digits when longer, e.g. Optuna
    samples); a value in `collapse` equal to the row above's (and all columns
    before it) is blank; <metric>_std columns merge into their metric as
    $mean \\pm std$ (<metric>_ci95 and indistinguishable_from_best stay in the CSV);
    missing values print as --. Rows where `mark` is True get a dagger on the
    column `marked`, and `note` is printed under the table.
    """
    cells, merged = _cells(table, axes)
    if mark is not None and marked in cells:
        merged.add(marked)  # numbers and --: nothing to escape, and the dagger must not be
        rows = mark.to_numpy(dtype=bool)
        cells.loc[rows, marked] = cells.loc[rows, marked] + "\\textsuperscript{\\dag}"
    for level, column in enumerate(collapse):
        prefix = list(collapse[: level + 1])
        repeated = table[prefix].eq(table[prefix].shift()).all(axis=1)
        repeated &= table[prefix].notna().all(axis=1)
        cells.loc[repeated.to_numpy(), column] = ""
    style = pd.DataFrame("", index=cells.index, columns=cells.columns)
    if bold is not None:
        mask = bold[cells.columns].to_numpy() & (cells != "").to_numpy()
        style[mask] = "textbf: --rwrap;"
    plain = [c for c in cells.columns if c not in merged]
    styler = (cells.style.hide(axis="index")
              .format(escape="latex", subset=plain)  # text such as NOT_STARTED needs escaping
              .format_index(escape="latex", axis="columns")
              .apply(lambda _: style, axis=None))
    column_format = "".join("l" if c in axes else "r" for c in cells.columns)
    latex = styler.to_latex(hrules=True, column_format=column_format, environment="table",
                            position_float="centering", caption=caption, label=label)
    if note:
        end = "\\end{table}\n"
        latex = (latex.removesuffix(end)
                 + f"\\par\\smallskip\n{{\\footnotesize {note}\\par}}\n" + end)
    return latex


def _cells(table: pd.DataFrame, axes: Sequence[str]) -> tuple[pd.DataFrame, set[str]]:
    """Every cell as the text to print; returns the columns holding mean ± std."""
    cells = pd.DataFrame(index=table.index)
    merged: set[str] = set()
    for column in table.columns:
        if column == TIED or any(column.endswith(suffix) and column.removesuffix(suffix)
                                 in table for suffix in (STD, CI)):
            continue
        values = table[column]
        if column in axes:
            cells[column] = [_axis_text(v) for v in values]
        elif column + STD in table:
            merged.add(column)
            cells[column] = [_mean_std_text(m, s) for m, s in zip(values, table[column + STD],
                                                                   strict=True)]
        else:
            cells[column] = [_text(v) for v in values]
    return cells, merged


def _text(value: Any) -> str:
    return "--" if pd.isna(value) else str(value)


def _axis_text(value: Any) -> str:
    if isinstance(value, float) and not pd.isna(value) and float(f"{value:.4g}") != value:
        return f"{value:.4g}"
    return _text(value)


def _mean_std_text(mean: Any, std: Any) -> str:
    if pd.isna(mean):
        return "--"
    if pd.isna(std):
        return str(mean)  # a single finished seed: no spread to show
    return f"${mean} \\pm {std}$"
