"""Plots of a sweep as PNG files: metric heatmaps per batch size, per-epoch
curves, and for Optuna the metric against each sampled parameter.

Figures are built with matplotlib's object API on the Agg canvas, never through
pyplot, so that no global backend or figure registry is touched (the report
also runs inside tests and other processes).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

FACET = "batch_size"


def heatmaps(table: pd.DataFrame, value: str, axes: Sequence[str], path: Path, title: str,
             mode: str = "max", diverging: bool = False) -> bool:
    """One panel per batch size (when swept), `value` over the next two axes
    (rows x columns; over one axis a single column). Further axes are folded
    into each cell by their best value (`mode`), or by the mean for a
    difference (`diverging`). Returns False when there is nothing to draw."""
    others = [a for a in axes if a != FACET]
    data = table[table[value].notna()] if value in table else table.iloc[0:0]
    if not others or data.empty:
        return False
    facets: list[object] = sorted(data[FACET].unique()) if FACET in axes else [None]
    rows_axis, cols_axis = others[0], (others[1] if len(others) > 1 else None)
    agg = "mean" if diverging else mode
    if len(others) > 2:
        title += f" ({'mean' if diverging else 'best'} over {', '.join(others[2:])})"
    row_values = sorted(table[rows_axis].dropna().unique())
    col_values = sorted(table[cols_axis].dropna().unique()) if cols_axis else [value]
    grids = []
    for facet in facets:
        part = data if facet is None else data[data[FACET] == facet]
        if cols_axis:
            grid = part.pivot_table(index=rows_axis, columns=cols_axis, values=value,
                                    aggfunc=agg, dropna=False)
        else:
            grid = part.groupby(rows_axis)[value].agg(agg).to_frame(value)
        grids.append(grid.reindex(index=row_values, columns=col_values).to_numpy(float))

    finite = np.concatenate([g[np.isfinite(g)] for g in grids])
    if diverging:
        bound = max(float(np.abs(finite).max()), 1e-3)  # all-zero differences: a sane scale
        limits, cmap = (-bound, bound), "RdBu"
    else:
        limits, cmap = (float(finite.min()), float(finite.max())), "viridis"
    fig = Figure(figsize=(1.2 + 0.9 * len(col_values) * len(facets) + 1.6 * len(facets),
                          1.6 + 0.55 * len(row_values)), layout="constrained")
    FigureCanvasAgg(fig)
    panels = fig.subplots(1, len(facets), squeeze=False)[0]
    image = None
    for ax, facet, grid in zip(panels, facets, grids, strict=True):
        image = ax.imshow(grid, cmap=cmap, vmin=limits[0], vmax=limits[1], aspect="auto")
        if cols_axis:
            ax.set_xticks(range(len(col_values)), [_label(v) for v in col_values])
        else:
            ax.set_xticks([])
        ax.set_yticks(range(len(row_values)), [_label(v) for v in row_values])
        ax.set_xlabel(cols_axis or "")
        ax.set_ylabel(rows_axis)
        if facet is not None:
            ax.set_title(f"{FACET} {_label(facet)}")
        for (i, j), cell in np.ndenumerate(grid):
            text = "–" if not math.isfinite(cell) else f"{cell:+.3f}" if diverging \
                else f"{cell:.3f}"
            ax.text(j, i, text, ha="center", va="center", fontsize=8,
                    color=_ink(cell, limits, diverging))
    if image is not None:
        fig.colorbar(image, ax=list(panels), label=value)
    fig.suptitle(title)
    fig.savefig(path, dpi=120)
    return True


def curves(history: pd.DataFrame, path: Path, title: str, value: str) -> bool:
    """`value` per epoch, one line per trial; trials that did not finish dashed.
    Every step is drawn, step 0 (the untrained network, where trials log it)
    included; then the title also states the mean gain of finished trials over it."""
    if history.empty:
        return False
    gain = gain_over_init(history)
    if gain is not None:
        title += f"\nmean gain over random init (epoch 0): {gain:+.3f}"
    names = list(dict.fromkeys(history["run_name"]))
    columns = math.ceil(len(names) / 16)
    fig = Figure(figsize=(6.5 + 2.2 * columns, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for (name, state), run in history.groupby(["run_name", "state"], sort=False):
        run = run.sort_values("step")
        ax.plot(run["step"], run["value"], marker="." if len(run) < 30 else None,
                linestyle="-" if state == "FINISHED" else "--",
                label=str(name) if state == "FINISHED" else f"{name} ({state})")
    ax.set_xlabel("epoch (0: random init)" if gain is not None else "epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(value)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncols=columns, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.set_title(title)
    fig.savefig(path, dpi=120)
    return True


def gain_over_init(history: pd.DataFrame) -> float | None:
    """Mean over finished runs with a step-0 point of (last value - value at step 0);
    None when no finished run logged step 0."""
    finished = history[history["state"] == "FINISHED"].sort_values("step", kind="stable")
    gains = []
    for _, run in finished.groupby("run_id", sort=False):
        start = run[run["step"] == 0]
        if not start.empty and len(run) > len(start):
            gains.append(float(run["value"].iloc[-1]) - float(start["value"].iloc[-1]))
    return sum(gains) / len(gains) if gains else None


def scatter(table: pd.DataFrame, value: str, axes: Sequence[str], path: Path,
            title: str) -> bool:
    """`value` against each numeric axis (an Optuna search has no grid to map)."""
    numeric = [a for a in axes if pd.api.types.is_numeric_dtype(table[a])]
    data = table[table[value].notna()] if value in table else table.iloc[0:0]
    if not numeric or data.empty:
        return False
    fig = Figure(figsize=(3.4 * len(numeric), 3.2), layout="constrained")
    FigureCanvasAgg(fig)
    panels: Sequence[Axes] = fig.subplots(1, len(numeric), squeeze=False)[0]
    for ax, axis in zip(panels, numeric, strict=True):
        x = data[axis].astype(float)
        ax.scatter(x, data[value].astype(float), s=14)
        if (x > 0).all() and x.max() / x.min() > 20:  # log-uniform samples read better
            ax.set_xscale("log")
        ax.set_xlabel(axis)
        ax.set_ylabel(value)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.savefig(path, dpi=120)
    return True


def _ink(cell: float, limits: tuple[float, float], diverging: bool) -> str:
    """Text colour readable on the cell: viridis is light at the top, RdBu at the centre."""
    if not math.isfinite(cell):
        return "black"
    if diverging:
        return "white" if abs(cell) > 0.6 * limits[1] else "black"
    span = limits[1] - limits[0]
    return "black" if span and (cell - limits[0]) / span > 0.6 else "white"


def _label(value: object) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
