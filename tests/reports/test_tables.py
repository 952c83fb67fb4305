"""sweeper.reports.tables on hand-made trial frames: BYOL and Optuna layouts, "best",
and the LaTeX details, without MLflow."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sweeper.reports import latex, statistics, tables
from sweeper.reports.tables import Layout, appendix_b, best_by_batch_size, summarise, to_csv


def trials(rows: list[dict[str, Any]], axes: tuple[str, ...]) -> pd.DataFrame:
    """A frame shaped like sweeper.reports.collect's: defaults for what a test leaves out."""
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
    rows: list[dict[str, Any]] = [
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
    tex = latex.appendix_b_latex(summary, caption="c", label="l")
    # No grid, so no collapsing: equal neighbours are printed; long samples shortened.
    assert "\\textbf{0.5} & \\textbf{1.0} & " in tex and "\n0.5 & 0.1 & " in tex
    assert "\n0.1235 & 2.0 & " in tex


def test_best_minimises_when_the_spec_says_min_and_uses_unrounded_values() -> None:
    axes = ("temperature",)
    rows: list[dict[str, Any]] = [
        {"temperature": 0.1, "top_1_accuracy": 0.8334, "regularization_loss": 0.5},
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


# --- intervals and ties over seeds -------------------------------------------------

def seeded(cells: dict[float, list[float]], **extra: Any) -> pd.DataFrame:
    """A temperature grid, each cell run once per listed top-1 value (seeds 0, 1, ...)."""
    rows = [{"temperature": t, "seed": seed, "top_1_accuracy": v, **extra}
            for t, values in cells.items() for seed, v in enumerate(values)]
    return trials(rows, ("temperature",))


def test_ci95_is_the_student_t_half_width() -> None:
    sample = [0.80, 0.81, 0.79, 0.83]
    low, high = stats.t.interval(0.95, len(sample) - 1, loc=np.mean(sample),
                                 scale=stats.sem(sample))
    assert statistics.ci95(sample) == pytest.approx((high - low) / 2, rel=1e-12)
    # by hand: t_{0.975, 2} = 4.302653, s = 0.01, n = 3
    assert statistics.ci95([0.5, 0.51, 0.52]) == pytest.approx(4.302653 * 0.01 / 3**0.5, rel=1e-6)
    assert np.isnan(statistics.ci95([0.5]))


def test_welch_p_is_scipys_one_sided_welch_test() -> None:
    best, other = [0.83, 0.84, 0.82, 0.835], [0.80, 0.83, 0.78]
    expected = stats.ttest_ind(other, best, equal_var=False, alternative="less").pvalue
    assert statistics.welch_p_below(best, other) == pytest.approx(expected, rel=1e-10)
    # mode=min: "other is above best"; losses mirror accuracies
    assert statistics.welch_p_below([-v for v in best], [-v for v in other], mode="min") \
        == pytest.approx(expected, rel=1e-10)
    assert np.isnan(statistics.welch_p_below(best, [0.8]))
    assert statistics.welch_p_below([0.5, 0.5], [0.4, 0.4]) == 0.0  # no spread, lower: below
    assert statistics.welch_p_below([0.5, 0.5], [0.5, 0.5]) == 1.0


def test_indistinguishable_from_best_marks_the_best_and_its_ties() -> None:
    frame = seeded({0.1: [0.82, 0.84, 0.83],    # best mean 0.83
                    0.2: [0.815, 0.835, 0.79],  # 0.813, wide spread: a tie
                    0.3: [0.80, 0.81, 0.79],    # 0.80, tight: significantly below
                    0.4: [0.7]})                # one seed: cannot be tested
    frame.loc[len(frame)] = frame.iloc[0].to_dict() | {"temperature": 0.5, "state": "FAILED",
                                                        "top_1_accuracy": 0.99}
    cells = statistics.indistinguishable_from_best(frame, ["temperature"])
    assert cells["temperature"].tolist() == [0.1, 0.2, 0.3, 0.4]  # FAILED runs are no cell
    assert cells["n"].tolist() == [3, 3, 3, 1]
    assert cells[tables.TIED].astype(object).fillna("NA").tolist() == [True, True, False, "NA"]
    p = cells["p_value"].tolist()
    assert np.isnan(p[0]) and p[1] > 0.05 and p[2] < 0.05 and np.isnan(p[3])
    assert p[2] == pytest.approx(stats.ttest_ind([0.80, 0.81, 0.79], [0.82, 0.84, 0.83],
                                                 equal_var=False, alternative="less").pvalue)
    assert cells["ci95"][0] == pytest.approx(statistics.ci95([0.82, 0.84, 0.83]))
    # mode=min (a loss): 0.3 is best, 0.1 significantly above it, 0.2 a tie.
    low = statistics.indistinguishable_from_best(frame[frame["temperature"] < 0.35],
                                             ["temperature"], mode="min")
    assert low[tables.TIED].tolist() == [False, True, True]


def test_seeded_tables_gain_ci95_and_the_tie_column_single_seeds_do_not() -> None:
    axes = ("temperature",)
    frame = seeded({0.1: [0.82, 0.84, 0.83], 0.2: [0.815, 0.835, 0.79],
                    0.3: [0.80, 0.81, 0.79]})
    table = appendix_b(summarise(frame, Layout(axes)))
    assert list(table.columns) == [
        "temperature", "regularization_loss", "regularization_loss_std",
        "regularization_loss_ci95", "top_1_accuracy", "top_1_accuracy_std",
        "top_1_accuracy_ci95", "top_5_accuracy", "top_5_accuracy_std", "top_5_accuracy_ci95",
        "steps", "seeds", tables.TIED]
    assert to_csv(table).splitlines()[1:] == [
        "0.1,0.01,0.0,0.0,0.83,0.01,0.025,0.9,0.0,0.0,100,0 1 2,True",
        "0.2,0.01,0.0,0.0,0.813,0.023,0.056,0.9,0.0,0.0,100,0 1 2,True",
        "0.3,0.01,0.0,0.0,0.8,0.01,0.025,0.9,0.0,0.0,100,0 1 2,False"]
    tex = latex.appendix_b_latex(summarise(frame, Layout(axes)), caption="c", label="l")
    assert "\\textbf{$0.83 \\pm 0.01$\\textsuperscript{\\dag}}" in tex
    assert "& $0.813 \\pm 0.023$\\textsuperscript{\\dag} &" in tex
    assert "& $0.8 \\pm 0.01$ &" in tex
    single = appendix_b(summarise(seeded({0.1: [0.8], 0.2: [0.7]}), Layout(axes)))
    assert not [c for c in single.columns if c.endswith("_ci95") or c == tables.TIED]
