"""One error model: every error a command reports carries its exit status, and
`main` turns it into one line on stderr; a bug keeps its traceback."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sweeper import cli
from sweeper.bench.errors import BenchError, BenchFailed
from sweeper.cluster.access import ClusterUnavailable
from sweeper.cluster.storage import StorageError
from sweeper.cluster.submit import SubmitError
from sweeper.commands.trial import TrialFailed
from sweeper.commands.ui import UiError
from sweeper.driver.admission import SweepExists
from sweeper.driver.storage_faults import StorageFault
from sweeper.driver.tuner import SweepStateUnreadable
from sweeper.errors import SpecError, SweeperError
from sweeper.record.store import TrackingUnavailable
from sweeper.record.sweeps import SweepNotFound
from trainers.data import DatasetError


@pytest.mark.parametrize(("error", "status"), [
    (SpecError("a.yaml, line 3: train.epochs: ..."), 2), (StorageError("read-only"), 2),
    (SweepExists("already exists"), 2), (ClusterUnavailable("nothing answers"), 2),
    (TrackingUnavailable("down"), 2), (SubmitError("no server"), 2), (UiError("port"), 2),
    (SweepNotFound("no sweep"), 2), (SweepStateUnreadable("tuner.pkl"), 2),
    (BenchError("no cuda"), 2), (DatasetError("no data"), 2),
    (BenchFailed("nan"), 1), (TrialFailed("diverged", exit_code=1), 1),
    (StorageFault("the results storage /r/s has no space left"), 1), (KeyboardInterrupt(), 130),
])
def test_each_reported_error_exits_with_its_status_and_one_line(
        error: BaseException, status: int, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    def fail(args: object) -> int:
        raise error

    monkeypatch.setattr(cli, "_validate", fail)
    assert cli.main(["validate", "spec.yaml"]) == status
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("sweeper: ")
    if not isinstance(error, KeyboardInterrupt):
        assert str(error) in err


def test_every_command_error_is_a_sweeper_error() -> None:
    for kind in (SpecError, StorageError, SweepExists, ClusterUnavailable, TrackingUnavailable,
                 SubmitError, UiError, SweepNotFound, BenchError, BenchFailed, TrialFailed,
                 StorageFault):
        assert issubclass(kind, SweeperError), kind


def test_a_bug_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    def bug(args: object) -> int:
        raise ZeroDivisionError("a plain bug")

    monkeypatch.setattr(cli, "_validate", bug)
    with pytest.raises(ZeroDivisionError):
        cli.main(["validate", "spec.yaml"])


@pytest.mark.integration
@pytest.mark.parametrize("command", [["validate"], ["run", "--dry-run"]])
def test_a_reader_that_stops_reading_ends_the_command_without_a_traceback(
        command: list[str], tmp_path: Path) -> None:
    """`sweeper ... | head`: the reader may close the pipe before a word is written."""
    spec = tmp_path / "big.yaml"
    spec.write_text("name: big\nsearch:\n  params:\n    temperature: [0.1, 0.2]\n"
                    "    batch_size: [16, 32, 64, 128, 256]\n")
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the command writes
    try:
        done = subprocess.run([sys.executable, "-m", "sweeper.cli", command[0], str(spec),
                               *command[1:]], stdout=write_end, stderr=subprocess.PIPE,
                              text=True, timeout=120)
    finally:
        os.close(write_end)
    assert done.returncode == 141, done.stderr
    assert done.stderr == ""


@pytest.mark.slow
@pytest.mark.integration
def test_a_double_ctrl_c_ends_a_sweep_quietly_with_one_resume_hint(tmp_path: Path) -> None:
    """Ctrl-C twice in a terminal: SIGINT to the whole foreground process group (the
    driver and Ray's processes), the second while Tune is still stopping."""
    import signal
    import time

    import mlflow

    from .conftest import tiny_sweep

    (tmp_path / "spec.yaml").write_text(tiny_sweep(
        "twice", "search:\n  params:\n    temperature: [0.2, 0.5]\n", epochs=3,
        concurrent=1).replace("synthetic_train_size: 48", "synthetic_train_size: 768"))
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    driver = subprocess.Popen([sys.executable, "-m", "sweeper.cli", "run", "spec.yaml"],
                              cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True,
                              start_new_session=True)
    assert driver.stderr is not None
    seen = []
    for line in driver.stderr:
        seen.append(line)
        if "epoch 1/3" in line:  # mid-trial
            os.killpg(driver.pid, signal.SIGINT)
            time.sleep(0.5)
            os.killpg(driver.pid, signal.SIGINT)
            break
    _, rest = driver.communicate(timeout=180)
    output = "".join(seen) + rest
    assert driver.returncode == 130, output
    for noise in ("Traceback", "Exception ignored", "KeyboardInterrupt"):
        assert noise not in output, output
    assert output.count("--resume") == 1
    assert output.rstrip().endswith("spec.yaml --resume")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["twice"])
    assert len(runs) >= 2 and "RUNNING" not in set(runs["status"])
