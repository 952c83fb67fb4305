"""Plots of a sweep as PNG files: metric heatmaps per batch size, per-epoch
curves, for Optuna the metric against each sampled parameter and the parameters'
importance.

Every picture is at most MAX_PIXELS a side whatever the sweep's size: figure sizes
are capped, tick labels thinned, per-cell numbers dropped when cells get small,
and thousands of curves become the best few by name and a band for the rest.

Figures are built with matplotlib's object API on the Agg canvas, never through
pyplot, so that no global backend or figure registry is touched (the report
also runs inside tests and other processes).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from sweeper.reports.tables import FINISHED, STOPPED, ranked
from sweeper.spec.schema import OptunaParam

FACET = "batch_size"
DPI = 120
MAX_PIXELS = 4000  # a side, for every picture
MAX_INCHES = (MAX_PIXELS - 8) / DPI  # a margin for matplotlib's rounding to pixels
BEST_K = 10  # curves drawn by name; the other trials are bands
BAND = (0.1, 0.9)  # the quantiles a band spans
Scale = Literal["linear", "log", "categorical"]
# How a trial's curve is drawn: finished (ran every epoch), stopped early, unfinished.
STOPPED_EARLY, UNFINISHED = "STOPPED_EARLY", "UNFINISHED"
_STYLES = {FINISHED: "-", STOPPED_EARLY: ":", UNFINISHED: "--"}
_BANDS = {FINISHED: ("other finished trials", "tab:gray"),  # colours no named line has
          STOPPED_EARLY: ("stopped early", "tab:orange"),
          UNFINISHED: ("unfinished (failed, killed, running)", "tab:red")}
_LINES = ["tab:blue", "tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:olive",
          "tab:cyan", "navy", "darkgoldenrod", "black"]


def heatmaps(table: pd.DataFrame, value: str, axes: Sequence[str], path: Path, title: str,
             mode: str = "max", diverging: bool = False) -> bool:
    """One panel per batch size (when swept), `value` over the next two axes
    (rows x columns; over one axis a single column). Further axes are folded
    into each cell by their best value (`mode`), or by the mean for a
    difference (`diverging`). Panels wrap into rows when one row would be too
    wide. Returns False when there is nothing to draw."""
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
    n_rows, n_cols = len(row_values), len(col_values)
    size, across, down, numbers = _heatmap_layout(len(facets), n_rows, n_cols)
    cell = (max(((size[0] - 1.4) / across - 1.2) / n_cols, 0.01),
            max(((size[1] - 0.8) / down - 1.0) / n_rows, 0.01))
    fig = _figure(size)
    panels = fig.subplots(down, across, squeeze=False).ravel()
    for ax in panels[len(facets):]:
        ax.remove()
    image = None
    for ax, facet, grid in zip(panels, facets, grids, strict=False):
        image = ax.imshow(grid, cmap=cmap, vmin=limits[0], vmax=limits[1], aspect="auto",
                          interpolation="nearest")
        if cols_axis:
            _ticks(ax, "x", col_values, cell[0])
        else:
            ax.set_xticks([])
        _ticks(ax, "y", row_values, cell[1])
        ax.set_xlabel(cols_axis or "")
        ax.set_ylabel(rows_axis)
        if facet is not None:
            ax.set_title(f"{FACET} {_label(facet)}")
        if not numbers:
            continue
        for (i, j), number in np.ndenumerate(grid):
            text = "–" if not math.isfinite(number) else f"{number:+.3f}" if diverging \
                else f"{number:.3f}"
            ax.text(j, i, text, ha="center", va="center", fontsize=8,
                    color=_ink(number, limits, diverging))
    if image is not None:
        fig.colorbar(image, ax=list(panels[:len(facets)]), label=value,
                     fraction=min(0.15, 1.0 / size[0]))  # about an inch on a wide figure
    fig.suptitle(title)
    fig.savefig(path, dpi=DPI)
    return True


def best_runs(trials: pd.DataFrame, metric: str, mode: str, k: int = BEST_K) -> list[str]:
    """The run ids of the best `k` trials, best first: by `metric` (`mode`) among the
    trials that may be best (FINISHED, not stopped early), ties to the lower trial
    index (tables.ranked, as every "best" of the report)."""
    return [str(run_id) for run_id in ranked(trials, metric, mode)["run_id"].head(k)]


def named_runs(history: pd.DataFrame, trials: pd.DataFrame, metric: str, mode: str,
               k: int = BEST_K) -> list[str]:
    """The runs `curves` draws by name: every run with a curve when there are at most
    `k`, else the best `k` (`best_runs`) that have one."""
    runs = history["run_id"].unique().tolist()  # in order of appearance
    if len(runs) <= k:
        return runs
    return best_runs(trials[trials["run_id"].isin(runs)], metric, mode, k)


def curves(history: pd.DataFrame, trials: pd.DataFrame, path: Path, title: str, value: str,
           metric: str, mode: str, k: int = BEST_K) -> bool:
    """`value` per epoch, step 0 (the untrained network, where trials log it) included.
    Up to `k` trials: every trial by name, those stopped early dotted, unfinished
    ones dashed. More: the best `k` by `metric` by name, and every other trial in a
    band per group (finished, stopped early, unfinished): the median per epoch and
    the 10-90% range. The median at step 0 is drawn as the random-init baseline."""
    if history.empty:
        return False
    gain = gain_over_init(history)
    if gain is not None:
        title += f"\nmean gain over random init (epoch 0): {gain:+.3f}"
    points = history.drop_duplicates(["run_id", "step"], keep="last")
    matrix = points.pivot(index="run_id", columns="step", values="value").astype(float)
    runs = history.drop_duplicates("run_id", keep="last")  # one row per run
    kind = _kinds(runs, trials)
    names = dict(zip(runs["run_id"], runs["run_name"], strict=True))
    named = named_runs(history, trials, metric, mode, k)
    steps = matrix.columns.to_numpy(float)
    entries = len(named) + 4
    fig = _figure((10.0, min(max(4.6, 1.4 + 0.19 * entries), MAX_INCHES)))
    ax = fig.subplots()
    colours = [_LINES[i % len(_LINES)] for i in range(len(named))]
    for run_id, colour in zip(named, colours, strict=True):
        line = matrix.loc[run_id]
        shown = line.notna().to_numpy()
        style, note = _STYLES[kind.get(run_id, FINISHED)], _note(run_id, kind, trials)
        ax.plot(steps[shown], line.to_numpy()[shown], color=colour, linestyle=style,
                marker="." if shown.sum() < 30 else None, label=f"{names[run_id]}{note}")
    rest = matrix.drop(index=named)
    for group, (label, colour) in _BANDS.items():
        members = rest[[kind.get(r, FINISHED) == group for r in rest.index]]
        if members.empty:
            continue
        counts = members.notna().sum().to_numpy()
        shown = counts > 0
        low, mid, high = (np.nanquantile(members.to_numpy()[:, shown], q, axis=0)
                          for q in (BAND[0], 0.5, BAND[1]))
        ax.fill_between(steps[shown], low, high, color=colour, alpha=0.25, linewidth=0)
        ax.plot(steps[shown], mid, color=colour, linestyle=_STYLES[group], linewidth=1.2,
                label=f"{label} ({len(members):,}): median, {BAND[0]:.0%}-{BAND[1]:.0%}")
    initial = points.loc[points["step"] == 0, "value"]
    if not initial.empty:
        ax.axhline(float(initial.median()), color="black", linewidth=0.8, linestyle=":",
                   label=f"random init (epoch 0): median {initial.median():.3f}")
    ax.set_xlabel("epoch (0: random init)" if not initial.empty else "epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(value)
    ax.grid(alpha=0.3)
    heading = f"best {len(named)} by {metric} ({mode})" if len(matrix) > k else None
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), title=heading,
              title_fontsize=7)
    ax.set_title(title)
    fig.savefig(path, dpi=DPI)
    return True


def _kinds(runs: pd.DataFrame, trials: pd.DataFrame) -> dict[str, str]:
    """run id -> FINISHED (ran every epoch), STOPPED_EARLY or UNFINISHED; `runs`: a
    row of the history per run."""
    states = dict(zip(runs["run_id"], runs["state"], strict=True))
    if "run_id" in trials:
        states.update(zip(trials["run_id"], trials["state"], strict=True))
    stopped = set(trials.loc[trials[STOPPED].notna(), "run_id"]) if STOPPED in trials else set()
    return {run_id: (UNFINISHED if state != FINISHED else
                     STOPPED_EARLY if run_id in stopped else FINISHED)
            for run_id, state in states.items()}


def _note(run_id: str, kind: dict[str, str], trials: pd.DataFrame) -> str:
    if kind.get(run_id) == STOPPED_EARLY:
        epoch = trials.loc[trials["run_id"] == run_id, STOPPED].iloc[0]
        return f" (stopped early at epoch {epoch})"
    if kind.get(run_id) == UNFINISHED:
        state = trials.loc[trials["run_id"] == run_id, "state"]
        return f" ({state.iloc[0] if len(state) else 'unfinished'})"
    return ""


def gain_over_init(history: pd.DataFrame) -> float | None:
    """Mean over finished runs with a step-0 point of (last value - value at step 0);
    None when no finished run logged step 0."""
    finished = history[history["state"] == "FINISHED"].sort_values("step", kind="stable")
    at_zero = finished["step"] == 0
    start = finished[at_zero].groupby("run_id").tail(1).set_index("run_id")["value"]
    later = finished[~at_zero].groupby("run_id").tail(1).set_index("run_id")["value"]
    gains = (later - start).dropna() if not start.empty else start
    return float(gains.mean()) if not gains.empty else None


def axis_scale(param: OptunaParam | None, values: pd.Series) -> Scale:
    """The axis of a swept parameter on the scale of its search: log for `log: true`
    distributions, categorical for `type: categorical`, else linear. Without a
    declared distribution: categorical for non-numbers, else linear."""
    if param is None:
        return "linear" if pd.api.types.is_numeric_dtype(values) else "categorical"
    if param.type == "categorical":
        return "categorical"
    return "log" if param.log else "linear"


def scatter(table: pd.DataFrame, value: str, axes: Sequence[str], path: Path, title: str,
            params: Mapping[str, OptunaParam] | None = None) -> bool:
    """`value` against each swept parameter (an Optuna search has no grid to map), on
    its search's scale (`axis_scale` of `params`, keyed by the table's column names).
    Trials a scheduler stopped early are marked apart."""
    params = params or {}
    data = table[table[value].notna()] if value in table else table.iloc[0:0]
    if not axes or data.empty:
        return False
    stopped = data[STOPPED].notna().to_numpy() if STOPPED in data else np.zeros(len(data), bool)
    across = min(len(axes), 4)
    down = math.ceil(len(axes) / across)
    size = (min(3.4 * across, MAX_INCHES), min(0.9 + 3.0 * down, MAX_INCHES))
    fig = _figure(size)
    panels: list[Axes] = list(fig.subplots(down, across, squeeze=False).ravel())
    for ax in panels[len(axes):]:
        ax.remove()
    dot = 14 if len(data) <= 200 else 5
    y = data[value].astype(float).to_numpy()
    groups = [(~stopped, "o", "tab:blue", f"ran every epoch ({(~stopped).sum():,})"),
              (stopped, "x", "tab:orange", f"stopped early ({stopped.sum():,})")]
    for ax, axis in zip(panels, axes, strict=False):
        scale = axis_scale(params.get(axis), data[axis])
        x = _positions(ax, data[axis], params.get(axis), (size[0] / across) - 0.8) \
            if scale == "categorical" else data[axis].astype(float).to_numpy()
        for mask, marker, colour, label in groups:
            if mask.any():
                ax.scatter(x[mask], y[mask], s=dot * (2 if marker == "x" else 1), marker=marker,
                           color=colour, alpha=0.8 if len(data) <= 200 or marker == "x"
                           else 0.4, label=label, linewidths=1 if marker == "x" else 0)
        if scale == "log":
            ax.set_xscale("log")
        ax.set_xlabel(f"{axis} ({scale})")
        ax.set_ylabel(value)
        ax.grid(alpha=0.3)
    if stopped.any():
        handles, labels = panels[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=2, fontsize=8)
    fig.suptitle(title)
    fig.savefig(path, dpi=DPI)
    return True


def categories(values: pd.Series, param: OptunaParam | None) -> list[str]:
    """The categories of a categorical axis, left to right: the spec's choices in its
    order, then any other value seen (sorted)."""
    texts = {str(v) for v in values}
    order = [str(c) for c in (param.choices or [])] if param is not None else []
    return order + sorted(texts - set(order))


def _positions(ax: Axes, values: pd.Series, param: OptunaParam | None, inches: float
               ) -> np.ndarray:
    """Categories at 0, 1, ... (`categories`), each point jittered sideways (seeded)
    so that a column of repeats shows its spread."""
    order = categories(values, param)
    where = {text: i for i, text in enumerate(order)}
    jitter = np.random.default_rng(0).uniform(-0.2, 0.2, len(values))
    _ticks(ax, "x", order, max(inches, 0.5) / max(len(order), 1))
    ax.set_xlim(-0.6, len(order) - 0.4)
    return np.array([where[str(v)] for v in values], dtype=float) + jitter


def importance(table: pd.DataFrame, path: Path, title: str) -> bool:
    """param_importance.csv as horizontal bars, the most important on top."""
    if table.empty:
        return False
    fig = _figure((7.5, min(1.4 + 0.32 * len(table), MAX_INCHES)))
    ax = fig.subplots()
    shares = table["importance"].astype(float).to_numpy()[::-1]
    names = table["param"].astype(str).tolist()[::-1]
    ax.barh(range(len(names)), shares, color="tab:blue")
    ax.set_yticks(range(len(names)), names, fontsize=8 if len(names) < 40 else 6)
    for i, share in enumerate(shares):
        ax.text(share, i, f" {share:.2f}", va="center", fontsize=7)
    ax.set_xlim(0, max(1.0, float(shares.max()) * 1.15))
    ax.set_xlabel("importance (shares sum to 1)")
    ax.grid(alpha=0.3, axis="x")
    ax.set_title(title, fontsize=10)
    fig.savefig(path, dpi=DPI)
    return True


# --- helpers -------------------------------------------------------------------------

def _figure(size: tuple[float, float]) -> Figure:
    fig = Figure(figsize=(min(size[0], MAX_INCHES), min(size[1], MAX_INCHES)),
                 layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _heatmap_layout(facets: int, n_rows: int, n_cols: int
                    ) -> tuple[tuple[float, float], int, int, bool]:
    """(figure inches, panels across, panels down, numbers in the cells). Inches: a cell
    0.9 x 0.55 with its number printed when the whole fits MAX_INCHES; else 0.3 x 0.15
    without (colour alone), up to MAX_INCHES a side. Around each panel its labels
    (1.2 x 1.0), around the whole a title (0.8) and a colour bar (1.4)."""
    def arrange(cell: tuple[float, float]) -> tuple[tuple[float, float], int, int]:
        panel = (1.2 + cell[0] * n_cols, 1.0 + cell[1] * n_rows)
        across = _panels_across(facets, panel)
        down = math.ceil(facets / across)
        return (1.4 + across * panel[0], 0.8 + down * panel[1]), across, down

    size, across, down = arrange((0.9, 0.55))
    numbers = max(size) <= MAX_INCHES
    if not numbers:
        size, across, down = arrange((0.3, 0.15))
    return (min(size[0], MAX_INCHES), min(size[1], MAX_INCHES)), across, down, numbers


def _panels_across(count: int, panel: tuple[float, float]) -> int:
    """Panels in one row when they fit the width; else the row length that makes
    the whole closest to square."""
    if count * panel[0] <= MAX_INCHES:
        return count
    return min(range(1, count + 1), key=lambda n: abs(math.log(
        (n * panel[0]) / (math.ceil(count / n) * panel[1]))))


def _ticks(ax: Axes, which: str, values: Sequence[object], spacing: float) -> None:
    """A label every so many values, so that labels of values `spacing` inches apart
    stay readable: 0.25 in apart across the text, 0.6 in along it (x labels turn
    upright when there is no room for them side by side)."""
    labels = [_label(v) for v in values]
    upright = which == "x" and spacing < 0.6
    need = 0.25 if which == "y" or upright else 0.6
    step = max(1, math.ceil(need / max(spacing, 1e-6)))
    positions = list(range(0, len(values), step))
    kept = [labels[i] for i in positions]
    if which == "x":
        ax.set_xticks(positions, kept, rotation=90 if upright else 0, fontsize=8)
    else:
        ax.set_yticks(positions, kept, fontsize=8)


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
