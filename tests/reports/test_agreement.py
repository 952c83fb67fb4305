"""sweeper.reports.agreement: how well a sweep reproduces a published table, on the
thesis's own Appendix B numbers."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sweeper.reports.agreement import agreement, agreement_line

from .conftest import THESIS_CSV

KEYS = ["batch_size", "temperature", "color_jitter"]
BEST = {"batch_size": 1024, "temperature": 0.25, "color_jitter": 0.75, "top_1_accuracy": 0.841}


@pytest.fixture(scope="module")
def thesis() -> pd.DataFrame:
    return pd.read_csv(THESIS_CSV)


def shuffled(table: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    values = np.random.default_rng(seed).permutation(table["top_1_accuracy"].to_numpy())
    return table.assign(top_1_accuracy=values)


def test_the_thesis_agrees_with_itself(thesis: pd.DataFrame) -> None:
    result = agreement(thesis, thesis, KEYS, "top_1_accuracy")
    assert result["matched_cells"] == result["sweep_cells"] == result["reference_cells"] == 32
    assert (result["spearman"], result["kendall"]) == (pytest.approx(1.0), pytest.approx(1.0))
    assert (result["mean_abs_diff"], result["max_abs_diff"]) == (0.0, 0.0)
    assert result["same_best"] is True
    assert result["best_sweep"] == result["best_reference"] == [BEST]
    json.dumps(result, allow_nan=False)  # reference_agreement.json: plain JSON, no NaN
    assert agreement_line(result, "thesis_appendix_b.csv") == (
        "agreement with thesis_appendix_b.csv on top_1_accuracy: 32 matched cells, "
        "Spearman 1.000, Kendall 1.000, |sweep - reference| mean 0.0000 max 0.0000, "
        "same best cell (batch_size=1024 temperature=0.25 color_jitter=0.75)")


def test_a_shuffled_copy_agrees_much_less(thesis: pd.DataFrame) -> None:
    ours = shuffled(thesis)
    result = agreement(ours, thesis, KEYS, "top_1_accuracy")
    assert result["matched_cells"] == 32
    # The permutation with seed 0: barely correlated with the thesis.
    assert result["spearman"] == pytest.approx(0.1064, abs=1e-4)
    assert result["kendall"] == pytest.approx(0.0771, abs=1e-4)
    assert result["spearman"] < 0.5 and result["kendall"] < 0.5
    assert result["spearman"] == pytest.approx(
        stats.spearmanr(ours["top_1_accuracy"], thesis["top_1_accuracy"]).statistic)
    assert result["mean_abs_diff"] == pytest.approx(0.0162, abs=1e-4)
    assert result["max_abs_diff"] == pytest.approx(0.051)
    assert result["same_best"] is False
    assert result["best_reference"] == [BEST]
    assert result["best_sweep"] == [{"batch_size": 512, "temperature": 0.75,
                                     "color_jitter": 0.75, "top_1_accuracy": 0.841}]
    line = agreement_line(result)
    assert "Spearman 0.106, Kendall 0.077" in line
    assert line.endswith("different best cell: sweep batch_size=512 temperature=0.75 "
                         "color_jitter=0.75, reference batch_size=1024 temperature=0.25 "
                         "color_jitter=0.75")


def test_ties_count_every_cell_at_the_best_value(thesis: pd.DataFrame) -> None:
    reference = thesis.copy()
    # A second cell at the thesis's best 0.841: both are best in the reference.
    reference.loc[(reference["batch_size"] == 512) & (reference["temperature"] == 0.25)
                  & (reference["color_jitter"] == 0.25), "top_1_accuracy"] = 0.841
    result = agreement(thesis, reference, KEYS, "top_1_accuracy")
    assert len(result["best_reference"]) == 2 and result["best_sweep"] == [BEST]
    assert result["same_best"] is True  # the sweep's best is one of the reference's
    # tau-b corrects for the tie (scipy's default variant)
    assert result["kendall"] == pytest.approx(
        stats.kendalltau(thesis["top_1_accuracy"], reference["top_1_accuracy"]).statistic)
    assert result["kendall"] < 1.0


def test_too_few_matched_cells_leave_the_correlations_undefined(thesis: pd.DataFrame) -> None:
    one = agreement(thesis.iloc[:1], thesis, KEYS, "top_1_accuracy")
    assert one["matched_cells"] == 1 and one["spearman"] is None and one["kendall"] is None
    assert one["undefined"] == "1 matched cell" and one["same_best"] is True
    assert "Spearman and Kendall undefined (1 matched cell)" in agreement_line(one)

    other_grid = thesis.assign(temperature=thesis["temperature"] + 1)
    none = agreement(other_grid, thesis, KEYS, "top_1_accuracy")
    assert none["matched_cells"] == 0 and none["same_best"] is None
    assert none["mean_abs_diff"] is None and none["best_sweep"] == []
    json.dumps(none, allow_nan=False)
    assert agreement_line(none).endswith(
        "0 matched cells (the sweep has 32 finished cells, the reference 32): nothing to compare")

    flat = agreement(thesis.assign(top_1_accuracy=0.8), thesis, KEYS, "top_1_accuracy")
    assert flat["spearman"] is None
    assert flat["undefined"] == "top_1_accuracy is constant over the matched cells of the sweep"


def test_unscored_cells_are_not_matched_and_min_mode_picks_the_lowest(
        thesis: pd.DataFrame) -> None:
    ours = thesis.copy()
    ours.loc[0, "regularization_loss"] = None  # e.g. a cell whose runs all failed
    result = agreement(ours, thesis, KEYS, "regularization_loss", mode="min")
    assert result["matched_cells"] == 31 and result["sweep_cells"] == 31
    assert result["best_sweep"] == result["best_reference"] == [
        {"batch_size": 512, "temperature": 0.25, "color_jitter": 1.0,
         "regularization_loss": 0.008}]
    with pytest.raises(ValueError, match="the reference table has no column loss"):
        agreement(thesis.assign(loss=1.0), thesis, KEYS, "loss")


def test_the_same_best_cell_with_other_values_is_named(thesis: pd.DataFrame) -> None:
    """The sweep's best cell is the thesis's, but every value is 0.05 lower (a shorter
    run): the cells are the same by their keys, and the line names the cell."""
    ours = thesis.assign(top_1_accuracy=thesis["top_1_accuracy"] - 0.05)
    result = agreement(ours, thesis, KEYS, "top_1_accuracy")
    assert result["same_best"] is True
    assert result["best_sweep"] == [{**BEST, "top_1_accuracy": pytest.approx(0.791)}]
    assert result["best_reference"] == [BEST]
    assert agreement_line(result, "t.csv") == (
        "agreement with t.csv on top_1_accuracy: 32 matched cells, Spearman 1.000, "
        "Kendall 1.000, |sweep - reference| mean 0.0500 max 0.0500, "
        "same best cell (batch_size=1024 temperature=0.25 color_jitter=0.75)")


def test_tied_best_cells_name_only_those_both_sides_share(thesis: pd.DataFrame) -> None:
    # Two cells tie at the top in the sweep, one of them the reference's best.
    ours = thesis.assign(top_1_accuracy=thesis["top_1_accuracy"] * 0.9)
    other = (ours["batch_size"] == 512) & (ours["temperature"] == 0.25) & (
        ours["color_jitter"] == 0.25)
    ours.loc[other, "top_1_accuracy"] = ours["top_1_accuracy"].max()
    result = agreement(ours, thesis, KEYS, "top_1_accuracy")
    assert len(result["best_sweep"]) == 2 and result["same_best"] is True
    assert agreement_line(result, "t.csv").endswith(
        "same best cell (batch_size=1024 temperature=0.25 color_jitter=0.75)")
