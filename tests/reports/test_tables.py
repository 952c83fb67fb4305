"""reports.tables on hand-made trial frames: BYOL and Optuna layouts, "best",
and the LaTeX details, without MLflow."""

from __future__ import annotations

from typing import Any

import pandas as pd

from reports import tables
from reports.tables import Layout, appendix_b, best_by_batch_size, summarise, to_csv


def trials(rows: list[dict[str, Any]], axes: tuple[str, ...]) -> pd.DataFrame:
    """A frame shaped like reports.collect's: defaults for what a test leaves out."""
    filled = []
    for index, row in enumerate(rows):
        base = {"run_id": f"r{index}", "run_name": f"trial{index}", "trial_index": index,
                "state": "FINISHED", "error": "", "seed": 0, "batch_size": 512,
                "regularization_loss": 0.01, "top_1_accuracy": 0.5, "top_5_accuracy": 0.9,
                "steps": 100, "epoch": 10}
        filled.append(base | row)
    frame = pd.DataFrame(filled)
    return frame[[*dict.fromkeys([*base, *axes])]]


def test_byol_axes_lead_in_declared_order_and_best_is_per_batch_size() -> None:
    axes = ("batch_size", "ema_decay", "color_jitter_strength")
    rows = [{"batch_size": bs, "ema_decay": ema, "color_jitter_strength": cj,
             "top_1_accuracy": 0.6 + 0.01 * i}
            for i, (bs, ema, cj) in enumerate(
                (bs, ema, cj) for bs in (1024, 512) for ema in (0.996, 0.99) for cj in (1.0, 0.5))]
    summary = summarise(trials(rows, axes), Layout(axes))
    table = appendix_b(summary)
    assert list(table.columns) == ["batch_size", "ema_decay", "color_jitter",
                                   "regularization_loss", "top_1_accuracy", "top_5_accuracy",
                                   "steps"]
    assert table[["batch_size", "ema_decay", "color_jitter"]].values.tolist()[:3] == [
        [512, 0.99, 0.5], [512, 0.99, 1.0], [512, 0.996, 0.5]]  # sorted ascending
    best = best_by_batch_size(summary)
    assert best[["batch_size", "ema_decay", "color_jitter", "top_1_accuracy"]].values.tolist() \
        == [[512, 0.99, 0.5, 0.67], [1024, 0.99, 0.5, 0.63]]


def test_optuna_trials_are_sorted_by_the_metric_and_failures_come_last() -> None:
    axes = ("temperature", "learning_rate")
    rows = [
        {"temperature": 0.1234567, "learning_rate": 2.0, "top_1_accuracy": 0.41},
        {"temperature": 0.5, "learning_rate": 0.3, "top_1_accuracy": 0.95, "state": "FAILED"},
        {"temperature": 0.5, "learning_rate": 1.0, "top_1_accuracy": 0.62},
        {"temperature": 0.5, "learning_rate": 0.1, "top_1_accuracy": 0.58},
    ]
    summary = summarise(trials(rows, axes), Layout(axes, grid=False))
    table = appendix_b(summary)
    assert table["top_1_accuracy"].tolist() == [0.62, 0.58, 0.41, 0.95]
    assert table["state"].tolist() == ["FINISHED"] * 3 + ["FAILED"]
    assert to_csv(table).splitlines()[3].startswith("0.1234567,2.0,")  # CSV: as logged
    tex = tables.appendix_b_latex(summary, caption="c", label="l")
    # No grid, so no collapsing: equal neighbours are printed; long samples shortened.
    assert "\\textbf{0.5} & \\textbf{1.0} & " in tex and "\n0.5 & 0.1 & " in tex
    assert "\n0.1235 & 2.0 & " in tex


def test_best_minimises_when_the_spec_says_min_and_uses_unrounded_values() -> None:
    axes = ("temperature",)
    rows = [{"temperature": 0.1, "top_1_accuracy": 0.8334, "regularization_loss": 0.5},
            {"temperature": 0.2, "top_1_accuracy": 0.8336, "regularization_loss": 0.2},
            {"temperature": 0.3, "top_1_accuracy": 0.9, "regularization_loss": 0.1,
             "state": "RUNNING"}]
    best = best_by_batch_size(summarise(trials(rows, axes), Layout(axes)))
    assert best["temperature"].tolist() == [0.2]  # 0.834 vs 0.834 printed
    lowest = best_by_batch_size(summarise(
        trials(rows, axes), Layout(axes, metric="regularization_loss", mode="min")))
    assert lowest["temperature"].tolist() == [0.2]  # the RUNNING trial's 0.1 does not count


def test_a_spec_metric_outside_the_thesis_columns_is_added() -> None:
    axes = ("temperature",)
    frame = trials([{"temperature": 0.1}], axes).assign(loss=1.234567)
    table = appendix_b(summarise(frame, Layout(axes, metric="loss", mode="min")))
    assert list(table.columns[-2:]) == ["steps", "loss"] and table["loss"][0] == 1.2346


def test_compare_keeps_cells_missing_on_either_side() -> None:
    axes = ("batch_size", "color_jitter_strength")
    ours = trials([{"color_jitter_strength": 0.5, "top_1_accuracy": 0.8},
                   {"color_jitter_strength": 1.0, "top_1_accuracy": 0.7}], axes)
    reference = pd.DataFrame({"batch_size": [512, 512], "color_jitter": [0.5, 0.25],
                              "top_1_accuracy": [0.75, 0.6]})
    table = tables.compare(summarise(ours, Layout(axes)), reference)
    assert list(table.columns) == ["batch_size", "color_jitter", "top_1_accuracy",
                                   "top_1_accuracy_reference", "top_1_accuracy_diff"]
    assert table.fillna(-1).values.tolist() == [
        [512, 0.25, -1, 0.6, -1], [512, 0.5, 0.8, 0.75, 0.05], [512, 1.0, 0.7, -1, -1]]
