"""The report's tables in booktabs LaTeX, through pandas' Styler: Table 3 with its
leading values collapsed and the best rows bold, Table 2, and the comparison with a
reference. Pure: tables in, text out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from sweeper.reports.statistics import TIED
from sweeper.reports.tables import (
    CI,
    DIFF,
    REFERENCE,
    STD,
    STOPPED,
    Layout,
    Summary,
    appendix_b,
    best_by_batch_size,
    renamed,
)


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
