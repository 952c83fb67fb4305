"""Helpers for the report tests: sweeps logged into a temporary MLflow store
through sweeper.record.writer's own writer, so that they follow the tracking contract
exactly, without Ray or training."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from sweeper.record.writer import SweepTracker
from sweeper.search import expand, summary
from sweeper.spec.load import parse_spec
from sweeper.spec.trials import Trial

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent / "golden"
THESIS_CSV = GOLDEN / "thesis_appendix_b.csv"
THESIS_KEYS = ("batch_size", "temperature", "color_jitter_strength")

# What each trial leaves in MLflow: final metrics, a status, an error; None: no run at all.
Outcome = tuple[dict[str, float], str, str | None] | None


def log_sweep(uri: str, spec_text: str, outcome: Callable[[Trial], Outcome],
              epochs: tuple[int, ...] = (50, 100),
              at_init: Callable[[Trial], dict[str, float]] | None = None,
              overrides: Sequence[str] = ()) -> SweepTracker:
    """Log every trial of `spec_text` with `overrides` (as --set) as the driver would.
    The last epoch gets the outcome's metrics; earlier ones lower values, so a report
    that does not take the latest value shows it. `at_init`: metrics logged at step 0
    first (the untrained network's probe, as trials report it)."""
    spec = parse_spec(spec_text, overrides=list(overrides))
    trials = expand(spec)
    # Artifacts next to the SQLite file: MLflow's default is ./mlruns in the working folder.
    artifacts = Path(uri.removeprefix("sqlite:///")).parent / "artifacts"
    MlflowClient(uri).create_experiment(spec.name, artifact_location=artifacts.as_uri())
    tracker = SweepTracker(uri, spec.name)
    tracker.open_sweep(spec_text, summary(spec), len(trials), overrides=overrides)
    with_seed = len(spec.search.seeds) > 1
    for trial in trials:
        result = outcome(trial)
        if result is None:
            continue
        metrics, status, error = result
        run_id = tracker.trial_run(trial, with_seed)
        if at_init is not None:
            tracker.log_metrics(run_id, {**at_init(trial), "epoch": 0}, step=0)
        for epoch in epochs[:-1]:
            tracker.log_metrics(run_id, {k: v * epoch / epochs[-1] for k, v in metrics.items()}
                                | {"epoch": epoch}, step=epoch)
        tracker.log_metrics(run_id, {**metrics, "epoch": epochs[-1]}, step=epochs[-1])
        if status != "RUNNING":  # a trial still running (or a driver that died) stays so
            tracker.end_trial(run_id, status, error)
    tracker.end_sweep("FINISHED")
    return tracker


def spec_yaml(uri: str, parent_id: str) -> Path:
    """The spec.yaml artifact of a sweep logged by `log_sweep`, on disk."""
    artifacts = Path(uri.removeprefix("sqlite:///")).parent / "artifacts"
    return artifacts / parent_id / "artifacts" / "spec.yaml"


def thesis_outcome(trial: Trial) -> Outcome:
    """The thesis's Appendix B row of the trial's cell, as final metrics."""
    reference = _thesis()
    bs, t, cj = (trial.params[k] for k in THESIS_KEYS)
    row = reference[(reference["batch_size"] == bs) & (reference["temperature"] == t)
                    & (reference["color_jitter"] == cj)].iloc[0]
    metrics = {k: float(row[k]) for k in ("regularization_loss", "top_1_accuracy",
                                          "top_5_accuracy", "steps")}
    return metrics, "FINISHED", None


@functools.cache
def _thesis() -> pd.DataFrame:
    return pd.read_csv(THESIS_CSV)


@pytest.fixture
def store(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def compile_latex(folder: Path, *tables: str) -> None:
    """Compile the tables with pdflatex in a minimal document (booktabs only); skips
    when no LaTeX is installed (apt: texlive-latex-base texlive-latex-recommended)."""
    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex is not installed")
    inputs = "\n".join(f"\\input{{{name}}}" for name in tables)
    (folder / "doc.tex").write_text("\\documentclass{article}\n\\usepackage{booktabs}\n"
                                    f"\\begin{{document}}\n{inputs}\n\\end{{document}}\n")
    result = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error",
                             "doc.tex"], cwd=folder, capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stdout[-3000:]
    assert (folder / "doc.pdf").stat().st_size > 0


def check_golden(path: Path, golden: Path) -> None:
    """`path` equals the golden file; UPDATE_GOLDEN=1 rewrites the golden file instead."""
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.write_text(path.read_text())
    assert path.read_text() == golden.read_text(), f"{path.name} differs from {golden}"
