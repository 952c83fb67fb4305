"""Golden files for a grid run with three seeds per cell: mean ± std, the 95%
t-interval, the group indistinguishable from the best cell (Welch), and the
gain over the epoch-0 baseline, as `sweeper report` writes them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from sweeper.cli import main
from sweeper.spec.trials import Trial

from .conftest import GOLDEN, Outcome, check_golden, compile_latex, log_sweep

pytestmark = pytest.mark.integration

SPEC = """\
name: three-seeds
train: {epochs: 4}
search:
  params:
    batch_size: [256, 512]
    temperature: [0.1, 0.5]
  seeds: [0, 1, 2]
"""
TOP_1 = {  # per cell, one value per seed
    (256, 0.1): (0.80, 0.81, 0.79),   # mean 0.80, tight: significantly below the best
    (256, 0.5): (0.70, 0.71, 0.69),
    (512, 0.1): (0.82, 0.84, 0.83),   # the best mean, 0.83
    (512, 0.5): (0.815, 0.835, 0.79),  # 0.813, but spread wide: not significantly below
}


def outcome(trial: Trial) -> Outcome:
    bs, t, seed = (trial.params[k] for k in ("batch_size", "temperature", "seed"))
    top_1 = TOP_1[(bs, t)][seed]
    return ({"top_1_accuracy": top_1, "top_5_accuracy": top_1 + 0.15,
             "regularization_loss": 0.01 + 0.001 * seed, "steps": 50_000 // bs},
            "FINISHED", None)


def at_init(trial: Trial) -> dict[str, float]:
    return {"top_1_accuracy": 0.1 + 0.01 * trial.params["seed"], "top_5_accuracy": 0.5}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("seeds")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    log_sweep(uri, SPEC, outcome, epochs=(2, 4), at_init=at_init)
    assert main(["report", "three-seeds", "--tracking-uri", uri, "--out",
                 str(tmp / "report")]) == 0
    return tmp / "report"


@pytest.mark.parametrize("name", ["appendix_b.csv", "appendix_b.tex", "best_by_batch_size.csv",
                                  "best_by_batch_size.tex"])
def test_three_seed_tables_match_the_golden_files(folder: Path, name: str) -> None:
    check_golden(folder / name, GOLDEN / "three_seeds" / name)


def test_intervals_and_the_tie_group(folder: Path) -> None:
    table = pd.read_csv(folder / "appendix_b.csv", dtype={"seeds": str})
    assert list(table.columns) == [
        "batch_size", "temperature",
        "regularization_loss", "regularization_loss_std", "regularization_loss_ci95",
        "top_1_accuracy", "top_1_accuracy_std", "top_1_accuracy_ci95",
        "top_5_accuracy", "top_5_accuracy_std", "top_5_accuracy_ci95",
        "steps", "gain_over_init", "seeds", "indistinguishable_from_best"]
    # 4.303 * 0.01 / sqrt(3) = 0.0248; gain = mean final - mean step 0 = 0.83 - 0.11
    best = table.iloc[2]
    assert (best.batch_size, best.temperature, best.top_1_accuracy, best.top_1_accuracy_ci95,
            best.gain_over_init) == (512, 0.1, 0.83, 0.025, 0.72)
    assert table["indistinguishable_from_best"].tolist() == [False, False, True, True]
    tex = (folder / "appendix_b.tex").read_text()
    assert tex.count("\\textsuperscript{\\dag}") == 3  # two cells and the note
    html = (folder / "report.html").read_text()
    assert "0.83 \u2020" not in html and "0.83\u2020" in html and "Welch" in html
    assert "gain over random init" in html


def test_three_seed_latex_compiles(folder: Path, tmp_path: Path) -> None:
    for name in ("appendix_b.tex", "best_by_batch_size.tex"):
        (tmp_path / name).write_text((folder / name).read_text())
    compile_latex(tmp_path, "appendix_b.tex", "best_by_batch_size.tex")
