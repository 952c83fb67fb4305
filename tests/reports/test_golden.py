"""The golden test: the 32 trials of the thesis's Appendix B, logged into MLflow
as the driver logs trials, come back from `sweeper report` as the thesis's tables."""

from __future__ import annotations

import base64
import contextlib
import csv
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from PIL import Image

from sweeper.cli import main

from .conftest import (
    GOLDEN,
    ROOT,
    THESIS_CSV,
    check_golden,
    compile_latex,
    log_sweep,
    thesis_outcome,
)
from .html_tables import Tables

pytestmark = pytest.mark.integration

NAME = "simclr-appendix-b"  # search_spaces/simclr_grid.yaml's name


@dataclass(frozen=True)
class Report:
    folder: Path
    uri: str
    parent_id: str
    stdout: str


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    tmp = tmp_path_factory.mktemp("thesis")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    # The real spec file: its declared axes order is the thesis's column order.
    tracker = log_sweep(uri, (ROOT / "search_spaces" / "simclr_grid.yaml").read_text(),
                        thesis_outcome)
    folder = tmp / "report"
    capture = tmp / "stdout.txt"
    with capture.open("w") as stream, contextlib.redirect_stdout(stream):
        code = main(["report", NAME, "--tracking-uri", uri, "--out", str(folder),
                     "--reference", "thesis"])  # the table that ships with sweeper
    assert code == 0
    return Report(folder, uri, tracker.parent_id, capture.read_text())


def test_appendix_b_csv_is_the_thesis_csv_byte_for_byte(report: Report) -> None:
    # Earlier epochs were logged with other values: this also pins "final = latest".
    assert (report.folder / "appendix_b.csv").read_bytes() == THESIS_CSV.read_bytes()


def test_best_by_batch_size_is_the_thesis_table_2(report: Report) -> None:
    assert (report.folder / "best_by_batch_size.csv").read_text() == (
        "batch_size,temperature,color_jitter,regularization_loss,top_1_accuracy,"
        "top_5_accuracy,steps\n"
        "512,0.25,0.25,0.0093,0.833,0.994,9800\n"
        "1024,0.25,0.75,0.0093,0.841,0.995,4900\n")


def test_latex_tables_match_the_golden_files(report: Report) -> None:
    check_golden(report.folder / "appendix_b.tex", GOLDEN / "appendix_b.tex")
    check_golden(report.folder / "best_by_batch_size.tex", GOLDEN / "best_by_batch_size.tex")
    tex = (report.folder / "appendix_b.tex").read_text()
    for rule in ("\\toprule", "\\midrule", "\\bottomrule"):
        assert tex.count(rule) == 1
    # As in the thesis: the best row per batch size is bold, and so are the leading
    # values printed once for its group (1024 and 0.25 sit two rows above its 0.75).
    assert "\\textbf{1024} & \\textbf{0.25} & 0.25 & 0.0103" in tex
    assert " &  & \\textbf{0.75} & \\textbf{0.0093} & \\textbf{0.841}" in tex


def test_latex_tables_compile(report: Report, tmp_path: Path) -> None:
    for name in ("appendix_b.tex", "best_by_batch_size.tex", "reference_comparison.tex"):
        (tmp_path / name).write_text((report.folder / name).read_text())
    compile_latex(tmp_path, "appendix_b.tex", "best_by_batch_size.tex",
                  "reference_comparison.tex")


def test_reference_comparison_finds_no_difference(report: Report) -> None:
    table = pd.read_csv(report.folder / "reference_comparison.csv")
    assert len(table) == 32
    assert list(table.columns[:6]) == [
        "batch_size", "temperature", "color_jitter", "regularization_loss",
        "regularization_loss_reference", "regularization_loss_diff"]
    diffs = [c for c in table.columns if c.endswith("_diff")]
    assert len(diffs) == 4 and (table[diffs] == 0).all().all()


def test_plots_are_written_and_the_report_is_attached_to_the_sweep_run(report: Report) -> None:
    for name in ("top_1_heatmap.png", "top_1_per_epoch.png", "reference_diff_heatmap.png",
                 "report.html", "reference_agreement.json"):
        assert (report.folder / name).exists(), name
    for name in ("top_1_heatmap.png", "top_1_per_epoch.png", "reference_diff_heatmap.png"):
        assert (report.folder / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    attached = {Path(a.path).name for a in
                MlflowClient(report.uri).list_artifacts(report.parent_id, "report")}
    assert attached == {p.name for p in report.folder.iterdir()}
    assert "32 trials: 32 finished" in report.stdout


def test_agreement_with_the_reference_is_perfect_and_printed(report: Report) -> None:
    result = json.loads((report.folder / "reference_agreement.json").read_text())
    assert result["reference"] == str(ROOT / "sweeper" / "reports" / "reference" /
                                      "thesis_appendix_b.csv")
    assert (result["matched_cells"], result["spearman"], result["kendall"]) == (32, 1.0, 1.0)
    assert (result["mean_abs_diff"], result["max_abs_diff"], result["same_best"]) \
        == (0.0, 0.0, True)
    assert result["best_sweep"] == result["best_reference"] == [
        {"batch_size": 1024, "temperature": 0.25, "color_jitter": 0.75, "top_1_accuracy": 0.841}]
    lines = [line for line in report.stdout.splitlines() if line.startswith("agreement")]
    assert lines == [
        "agreement with thesis_appendix_b.csv on top_1_accuracy: 32 matched cells, "
        "Spearman 1.000, Kendall 1.000, |sweep - reference| mean 0.0000 max 0.0000, "
        "same best cell (batch_size=1024 temperature=0.25 color_jitter=0.75)"]


def test_report_html_is_one_self_contained_page_with_every_trial(report: Report) -> None:
    text = (report.folder / "report.html").read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    # Self-contained: no external reference of any kind, no script needed.
    markup = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "data:", text)
    assert not re.search(r"(?i)https?:|//|\burl\(|@import", markup)
    assert "<script" not in text.lower() and "<link" not in text.lower()
    page = Tables(text)

    def csv_rows(name: str) -> list[list[str]]:
        return list(csv.reader(io.StringIO((report.folder / name).read_text())))

    # Every trial, cell for cell as in the CSVs (Appendix B, Table 2, every run).
    assert page.tables["appendix-b"] == csv_rows("appendix_b.csv")
    assert len(page.tables["appendix-b"]) == 33
    assert page.tables["best-by-batch-size"] == csv_rows("best_by_batch_size.csv")
    assert page.tables["runs"] == csv_rows("trials.csv")
    assert page.tables["reference-comparison"] == csv_rows("reference_comparison.csv")
    assert "Spearman" in text and "same best cell" in text

    # Every plot embedded, and each decodes to the PNG written next to it.
    pngs = sorted(p for p in report.folder.iterdir() if p.suffix == ".png")
    assert len(page.images) == len(pngs) == 3
    decoded = []
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        data = base64.b64decode(src.removeprefix("data:image/png;base64,"), validate=True)
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
        decoded.append(data)
    assert sorted(decoded) == sorted(p.read_bytes() for p in pngs)
    # The best row of each batch size is bold, as in the LaTeX.
    appendix = text[text.index('<table id="appendix-b">'):]
    appendix = appendix[: appendix.index("</table>")]
    assert len(re.findall(r'class="data row\d+ col0 [^"]*\bbest\b"', appendix)) == 2
