"""The report at any size: pictures at most 4,000 px a side, report.html at most 2 MB
with its full tables linked, the curves' named trials, the scatter's axis scales.
Sweeps are built directly as frames (tests/reports/synthetic.py), without MLflow."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from sweeper.reports import page, plots, tables
from sweeper.reports.command import importance_of, write_report
from sweeper.spec.schema import OptunaParam

from .html_tables import Tables
from .synthetic import grid_sweep, optuna_sweep


@pytest.fixture(scope="module", params=[5, 3000], ids=["5-trials", "3000-trials"])
def optuna_report(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                  ) -> tuple[int, Path]:
    sweep = optuna_sweep(request.param)
    folder = tmp_path_factory.mktemp(f"optuna{request.param}")
    write_report(sweep, folder, importance=importance_of(sweep))
    return request.param, folder


def png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size


def test_every_picture_of_an_optuna_report_is_within_4000_pixels(
        optuna_report: tuple[int, Path]) -> None:
    _, folder = optuna_report
    pictures = {p.name: png_size(p) for p in folder.glob("*.png")}
    assert set(pictures) == {"top_1_per_epoch.png", "top_1_vs_params.png",
                             "param_importance.png"}
    for name, (width, height) in pictures.items():
        assert width <= plots.MAX_PIXELS and height <= plots.MAX_PIXELS, (name, width, height)


@pytest.mark.parametrize(("batch_sizes", "temperatures", "jitters"),
                         [([512], 5, 1), ([256, 512, 1024], 100, 10)],
                         ids=["5-cells", "3000-cells"])
def test_grid_heatmaps_are_within_4000_pixels(
        tmp_path: Path, batch_sizes: list[int], temperatures: int, jitters: int) -> None:
    # (The curves do not depend on the grid: the Optuna report above draws 3,000.)
    sweep = grid_sweep(batch_sizes, temperatures, jitters)
    table = sweep.trials.rename(columns=tables.RENAMES)
    axes = [tables.renamed(a) for a in sweep.axes]
    assert plots.heatmaps(table, "top_1_accuracy", axes, tmp_path / "map.png", "map")
    # The reference difference map: the same drawing, diverging around 0.
    diff = table.assign(top_1_accuracy_diff=table["top_1_accuracy"] - 0.8)
    assert plots.heatmaps(diff, "top_1_accuracy_diff", axes, tmp_path / "diff.png", "diff",
                          diverging=True)
    for path in tmp_path.glob("*.png"):
        width, height = png_size(path)
        assert width <= plots.MAX_PIXELS and height <= plots.MAX_PIXELS, (path.name, width,
                                                                            height)


def test_report_html_stays_under_2_mb_and_links_the_full_tables(
        optuna_report: tuple[int, Path]) -> None:
    trials, folder = optuna_report
    html = folder / "report.html"
    assert html.stat().st_size <= page.MAX_BYTES
    text = html.read_text(encoding="utf-8")
    for name in ("appendix_b.csv", "trials.csv", "best_by_batch_size.csv",
                 "param_importance.csv"):
        assert f'<a href="{name}">' in text and (folder / name).exists(), name
    parsed = Tables(text)
    appendix = pd.read_csv(folder / "appendix_b.csv", keep_default_na=False, dtype=str)
    shown = parsed.tables["appendix-b"]
    if trials <= page.PAGE_ROWS:
        assert len(shown) == trials + 1 and "runs" in parsed.tables
        return
    # The best 50 by the metric among the trials that may be best (appendix_b.csv of an
    # Optuna sweep is sorted by the metric, then by trial index).
    assert len(shown) == page.PAGE_ROWS + 1
    full = appendix[(appendix["state"] == "FINISHED") & (appendix[tables.STOPPED] == "")]
    assert shown[1:] == full.head(page.PAGE_ROWS).values.tolist()
    assert f"50 of {trials:,} rows" in text
    assert "runs" not in parsed.tables and f"{trials:,} runs, too many for this page" in text
    assert len(parsed.images) == 3  # every picture fits the bound at this size


def test_a_picture_that_would_break_the_bound_is_linked_not_embedded() -> None:
    sweep = optuna_sweep(5)
    summary = tables.summarise(sweep.trials, tables.Layout(axes=tuple(sweep.axes), grid=False))
    big = bytes(np.random.default_rng(0).integers(0, 256, 1_600_000, dtype=np.uint8))
    small = b"\x89PNG small"
    report = page.Page(name="big", summary=summary, headline="5 trials",
                       runs=tables.trials_table(sweep.trials, summary.layout),
                       pictures={"top_1_per_epoch.png": small, "top_1_vs_params.png": big},
                       files=("top_1_vs_params.png",))
    text = page.render(report)
    assert len(text.encode("utf-8")) <= page.MAX_BYTES
    assert len(Tables(text).images) == 1  # the small one
    assert re.search(r'top_1_vs_params.png \(1.6 MB\) would take this page over 2 MB: '
                     r'<a href="top_1_vs_params.png">', text)


def finished(values: list[float | None], states: list[str] | None = None,
             stopped: list[int | None] | None = None) -> pd.DataFrame:
    n = len(values)
    return pd.DataFrame({
        "run_id": [f"r{i}" for i in range(n)], "trial_index": range(n),
        "state": states or ["FINISHED"] * n, "top_1_accuracy": values,
        tables.STOPPED: pd.array(stopped or [None] * n, dtype="Int64"),
    })


def test_the_best_k_are_by_the_metric_ties_to_the_lower_trial_index() -> None:
    trials = finished([0.5, 0.9, 0.7, 0.9, 0.95, 0.99, 0.7, None],
                      states=["FINISHED"] * 5 + ["FAILED", "FINISHED", "FINISHED"],
                      stopped=[None, None, None, None, 3, None, None, None])
    # r5 failed and r4 was stopped early: never best; r7 has no metric. 0.9 twice: r1
    # before r3; 0.7 twice: r2 before r6.
    assert plots.best_runs(trials, "top_1_accuracy", "max", k=3) == ["r1", "r3", "r2"]
    assert plots.best_runs(trials, "top_1_accuracy", "max", k=10) == [
        "r1", "r3", "r2", "r6", "r0"]
    assert plots.best_runs(trials, "top_1_accuracy", "min", k=3) == ["r0", "r2", "r6"]
    # The tables rank alike: Table 2's best row is r1, not r3.
    rows = trials.assign(batch_size=512)
    layout = tables.Layout(axes=(), grid=False)
    assert rows.loc[tables.best_mask(rows, layout), "run_id"].tolist() == ["r1"]


def test_curves_name_every_trial_of_a_small_sweep_and_the_best_k_of_a_large_one() -> None:
    small = optuna_sweep(8)
    assert plots.named_runs(small.history, small.trials, "top_1_accuracy", "max", k=10) \
        == list(small.trials["run_id"])  # failed and stopped ones too, drawn apart
    large = optuna_sweep(300)
    named = plots.named_runs(large.history, large.trials, "top_1_accuracy", "max", k=10)
    eligible = large.trials[(large.trials["state"] == "FINISHED")
                            & large.trials[tables.STOPPED].isna()]
    expected = eligible.sort_values(["top_1_accuracy", "trial_index"],
                                    ascending=[False, True])["run_id"].head(10).tolist()
    assert named == expected


@pytest.mark.parametrize(("param", "values", "scale"), [
    (OptunaParam(type="float", low=0.05, high=1.0, log=True), [0.1], "log"),
    (OptunaParam(type="int", low=16, high=1024, log=True), [64], "log"),
    (OptunaParam(type="float", low=0.0, high=1.0), [0.5], "linear"),
    (OptunaParam(type="int", low=1, high=8), [3], "linear"),
    (OptunaParam(type="categorical", choices=[128, 256, 512]), [256], "categorical"),
    (OptunaParam(type="categorical", choices=["lars", "adamw"]), ["lars"], "categorical"),
    (None, [0.001, 1000.0], "linear"),  # no declared distribution: no guessing a log
    (None, ["lars"], "categorical"),
])
def test_scatter_axes_follow_the_search_scale(param: OptunaParam | None, values: list[object],
                                              scale: str) -> None:
    assert plots.axis_scale(param, pd.Series(values)) == scale


def test_categorical_axes_follow_the_specs_order_of_choices() -> None:
    choices = OptunaParam(type="categorical", choices=["lars", "adamw", "sgd"])
    assert plots.categories(pd.Series(["sgd", "lars", "sgd"]), choices) == [
        "lars", "adamw", "sgd"]
    # A value outside the choices (a spec overridden afterwards) still gets a place.
    assert plots.categories(pd.Series([512, 128]), None) == ["128", "512"]
    assert plots.categories(pd.Series(["x"]), choices) == ["lars", "adamw", "sgd", "x"]


def test_a_long_reference_comparison_shows_its_largest_differences() -> None:
    sweep = optuna_sweep(5)
    summary = tables.summarise(sweep.trials, tables.Layout(axes=tuple(sweep.axes), grid=False))
    diffs = [0.001 * i * (-1) ** i for i in range(80)]  # |diff| grows with i
    comparison = pd.DataFrame({"temperature": range(80), "top_1_accuracy_diff": diffs})
    report = page.Page(name="ref", summary=summary, headline="5 trials",
                       runs=tables.trials_table(sweep.trials, summary.layout),
                       comparison=comparison, files=("reference_comparison.csv",))
    text = page.render(report)
    shown = Tables(text).tables["reference-comparison"]
    assert [row[0] for row in shown[1:]] == [str(i) for i in range(79, 29, -1)]
    assert "50 of 80 rows: the largest |top_1_accuracy diff| first. Every row: " \
        '<a href="reference_comparison.csv">' in text
