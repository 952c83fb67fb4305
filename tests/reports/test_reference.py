"""`sweeper report --reference`: the thesis's table shipped with the package, and
every reference checked before anything of the sweep is collected, each problem
one short line (exit 2)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest

import sweeper.record.sweeps
import sweeper.reports.reference
from sweeper.cli import main
from sweeper.reports.reference import SHIPPED, reference_path

from .conftest import ROOT, THESIS_CSV, log_sweep

GRID = """\
name: {name}
train: {{epochs: 4, batch_size: 256}}
search:
  params:
    temperature: [0.1, 0.2]
    color_jitter_strength: [0.5, 1.0]
"""
METRICS = {"regularization_loss": 0.01, "top_5_accuracy": 0.9, "steps": 392.0}
HEADER = "temperature,color_jitter,regularization_loss,top_1_accuracy,top_5_accuracy,steps"
GOOD = [f"{t},{c},0.01,{a},0.9,392" for t, c, a in
        [(0.1, 0.5, 0.5), (0.1, 1.0, 0.6), (0.2, 0.5, 0.7), (0.2, 1.0, 0.8)]]


@pytest.fixture(scope="module")
def uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    uri = f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"
    log_sweep(uri, GRID.format(name="ref"), lambda t: (
        {**METRICS, "top_1_accuracy": t.params["temperature"] + t.params[
            "color_jitter_strength"] / 10}, "FINISHED", None), epochs=(4,))
    return uri


def report(uri: str, reference: str, out: Path, capsys: pytest.CaptureFixture[str]
           ) -> tuple[int, str, str]:
    code = main(["report", "ref", "--tracking-uri", uri, "--out", str(out),
                 "--reference", reference])
    got = capsys.readouterr()
    return code, got.out, got.err


# --- the thesis's table ships with the package -----------------------------------------

def test_thesis_names_the_shipped_table_which_is_the_thesis_csv() -> None:
    path = reference_path("thesis")
    assert path == ROOT / "sweeper" / "reports" / "reference" / SHIPPED["thesis"]
    assert path.read_bytes() == THESIS_CSV.read_bytes()  # Appendix B, byte for byte
    assert reference_path("./thesis") == Path("thesis")  # a file of that name, by path


@pytest.mark.integration
def test_the_shipped_table_is_package_data_in_the_wheel(tmp_path: Path) -> None:
    """What a fresh `pip install` gets: the wheel built from this checkout's sources
    (copied: setuptools builds in the source tree) holds it."""
    pytest.importorskip("setuptools", minversion="70.1")  # the dev extras install it
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for package in ("sweeper", "trainers"):
        shutil.copytree(ROOT / package, source / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                           "--no-build-isolation", "--no-cache-dir", "-q", "-w",
                           str(tmp_path), str(source)], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("sweeper-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = archive.read("sweeper/reports/reference/thesis_appendix_b.csv")
    assert shipped == THESIS_CSV.read_bytes()


# --- checked before anything is collected ----------------------------------------------

def bad(tmp_path: Path, text: str | bytes, name: str = "ref.csv") -> str:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return str(path)


@pytest.mark.parametrize(("text", "expected"), [
    (f"{HEADER}\n{GOOD[0]}\n0.1,1.0,0.01,nan,0.9,392\n",
     "column top_1_accuracy, line 3: 'nan' is not a finite number; write a number, or "
     "leave the cell empty"),
    (f"{HEADER}\n{GOOD[0]}\n{GOOD[1]}\n0.2,0.5,0.01,NaN,0.9,392\n",
     "column top_1_accuracy, line 4: 'NaN' is not a finite number"),
    (f"{HEADER}\n0.1,0.5,0.01,0.5,inf,392\n", "column top_5_accuracy, line 2: inf is not"),
    (f"{HEADER}\n0.1,0.5,-Infinity,0.5,0.9,392\n",
     "column regularization_loss, line 2: -inf is not"),
    (f"{HEADER}\n{GOOD[0]}\n0.1,1.0,0.01,83%,0.9,392\n",
     "column top_1_accuracy, line 3: '83%' is not a finite number"),
    (f"{HEADER}\n{GOOD[0]}\n{GOOD[1]}\n{GOOD[0].replace('0.5,0.9', '0.55,0.9')}\n",
     "holds the cell temperature=0.1 color_jitter=0.5 twice (lines 2 and 4); keep one row "
     "per cell"),
    ("temperature,top_1_accuracy,top_1_accuracy\n0.1,0.5,0.5\n",
     "names the column 'top_1_accuracy' twice; keep one"),
    ("", "is empty: it needs a header line"),
    ("temperature;color_jitter;top_1_accuracy\n0.1;0.5;0.5\n",
     "has none of the metric columns regularization_loss, top_1_accuracy, top_5_accuracy, "
     "steps; its columns: temperature;color_jitter;top_1_accuracy (separated by ';': write "
     "a comma-separated file)"),
    (f"{HEADER}\n{GOOD[0]}\n0.1,1.0,0.01,0.6,0.9,392,7,8\n",
     "Error tokenizing data. C error: Expected 6 fields in line 3, saw 8"),
    (b"\xff\xfe\x00t\x00e\x00m\x00p\n", "cannot read the reference table"),
])
def test_a_bad_reference_file_is_one_line_before_the_store_is_opened(
        text: str | bytes, expected: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    # No store at this URI: a message about the reference shows that it came first.
    store = f"sqlite:///{tmp_path / 'absent' / 'mlflow.db'}"
    code, out, err = report(store, bad(tmp_path, text), tmp_path / "out", capsys)
    assert code == 2 and not out, err
    assert err.count("\n") == 1 and len(err) < 500, err
    assert err.startswith("sweeper: ") and expected in err, err
    assert not (tmp_path / "out").exists()


def test_a_hundred_thousand_column_csv_is_a_short_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    header = ",".join(f"column_number_{i}" for i in range(100_000))
    path = bad(tmp_path, f"{header}\n" + ",".join(["1"] * 100_000) + "\n")
    assert Path(path).stat().st_size > 1_000_000
    code, _, err = report("sqlite:///absent/mlflow.db", path, tmp_path / "out", capsys)
    assert code == 2 and err == (
        f"sweeper: the reference table {path} has 100000 columns; a reference has the "
        "sweep's axes and metrics (at most 1000 columns)\n")


def test_a_huge_column_name_and_value_are_cut(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    name = "x" * 100_000
    path = bad(tmp_path, f"{name},top_1_accuracy\n1,{'y' * 200_000}\n")
    code, _, err = report("sqlite:///absent/mlflow.db", path, tmp_path / "out", capsys)
    assert code == 2 and err.count("\n") == 1 and len(err) < 500, err[:600]
    assert "column top_1_accuracy, line 2: 'yyy" in err


def test_an_oversized_file_or_a_folder_is_refused_unread(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sweeper.reports.reference, "MAX_BYTES", 2**20)
    path = bad(tmp_path, HEADER + "\n" + "\n".join(GOOD * 20_000) + "\n")
    code, _, err = report("sqlite:///absent/mlflow.db", path, tmp_path / "out", capsys)
    assert code == 2 and "MiB; a reference table is small (at most 1 MiB)" in err, err
    code, _, err = report("sqlite:///absent/mlflow.db", str(tmp_path), tmp_path / "o", capsys)
    assert code == 2 and err == (f"sweeper: cannot read the reference table {tmp_path}: a "
                                 "folder, not a CSV file\n")


@pytest.fixture
def no_runs_read(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the runs were read before the reference's axes were checked")

    monkeypatch.setattr(sweeper.record.sweeps, "trial_records", refuse)


@pytest.mark.integration
@pytest.mark.parametrize(("text", "expected"), [
    ("temperature,top_1_accuracy\n0.1,0.5\n0.2,0.6\n",
     "has no column color_jitter, which the sweep varies (its axes: temperature, "
     "color_jitter); its columns: temperature, top_1_accuracy"),
    ("batch_size,temperature,color_jitter,top_1_accuracy\n"
     "256,0.1,0.5,0.5\n256,0.1,1.0,0.6\n512,0.1,0.5,0.7\n",
     "holds the cell temperature=0.1 color_jitter=0.5 twice (lines 2 and 4) (it also varies "
     "batch_size, which the sweep does not); keep one row per cell"),
    ("temperature,color_jitter,loss\n0.1,0.5,2.0\n",
     "has none of the metric columns regularization_loss, top_1_accuracy, top_5_accuracy, "
     "steps the report compares"),
])
def test_a_reference_that_does_not_fit_the_sweep_is_refused_before_its_runs_are_read(
        text: str, expected: str, uri: str, tmp_path: Path, no_runs_read: None,
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = report(uri, bad(tmp_path, text), tmp_path / "out", capsys)
    assert code == 2 and not out, err
    assert err.count("\n") == 1 and expected in err, err


@pytest.mark.integration
def test_a_sweeps_own_table_with_empty_cells_and_unfinished_rows_is_a_reference(
        uri: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (f"{HEADER},seeds,state\n"
            "0.1,0.5,0.01,0.5,0.9,392,0,FINISHED\n"
            "0.1,1.0,0.01,,0.9,392,0,FINISHED\n"  # no value: left out, not an error
            "0.2,0.5,0.01,0.7,0.9,392,0,FINISHED\n"
            "0.2,0.5,0.01,0.1,0.1,12,1,FAILED\n"  # the same cell, failed: not counted
            "0.2,1.0,0.01,0.8,0.9,392,0,FINISHED\n")
    code, out, err = report(uri, bad(tmp_path, text), tmp_path / "out", capsys)
    assert code == 0, err
    comparison = pd.read_csv(tmp_path / "out" / "reference_comparison.csv")
    assert comparison["top_1_accuracy_reference"].fillna(-1).tolist() == [0.5, -1, 0.7, 0.8]
    assert "agreement with ref.csv on top_1_accuracy: 3 matched cells" in out


@pytest.mark.integration
def test_any_other_csv_works_by_its_path(uri: str, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    path = bad(tmp_path, HEADER + "\n" + "\n".join(GOOD) + "\n", name="thesis")
    code, out, err = report(uri, path, tmp_path / "o", capsys)
    assert code == 0, err
    assert "agreement with thesis on top_1_accuracy: 4 matched cells" in out
