"""A results storage that refuses writes mid-sweep (full, read-only): the sweep stops
once, with one line naming the storage and the cause, every run ended, the summary and
a resume command that works once the storage is fixed. Injected through the worker's
checkpoint upload (SWEEPER_FAULT_STORAGE_AT) everywhere; for real on a tiny tmpfs,
filled or remounted read-only, where this process may mount one."""

from __future__ import annotations

import errno
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest

from sweeper.driver.storage_faults import describe, storage_errno, watched

from .conftest import tiny_sweep

SPEC = tiny_sweep("full", "search:\n  params:\n    temperature: [0.2, 0.5]\n", epochs=2,
                  concurrent=1)


def test_the_errno_of_a_refused_write_is_read_from_the_error_or_its_text() -> None:
    assert storage_errno(OSError(errno.ENOSPC, "No space left on device")) == errno.ENOSPC
    # pyarrow's words, as Ray logs and records them
    assert storage_errno("OSError: [Errno 28] Error writing bytes to file. Detail: "
                         "[errno 28] No space left on device") == errno.ENOSPC
    assert storage_errno("OSError: [Errno 30] Cannot delete directory ... Detail: [errno 30] "
                         "Read-only file system") == errno.EROFS
    assert storage_errno(OSError(errno.EACCES, "Permission denied")) == errno.EACCES
    # what a retry may get past, or no OS error at all: Tune's to retry
    assert storage_errno(OSError(errno.EIO, "Input/output error")) is None
    assert storage_errno("ValueError: [Errno 5] nope") is None
    assert storage_errno(RuntimeError("boom")) is None


def test_the_message_names_the_storage_the_cause_and_the_fix() -> None:
    assert describe(errno.ENOSPC, "/mnt/r/full") == (
        "the results storage /mnt/r/full has no space left ([Errno 28] No space left on "
        "device): the sweep stopped; free space there, then resume it")
    assert describe(errno.EROFS, "/mnt/r/full").startswith(
        "the results storage /mnt/r/full became read-only ([Errno 30] Read-only file system)")
    assert "permission denied" in describe(errno.EACCES, "/x")


def test_ray_s_refused_uploads_are_reported_not_logged_while_watched(
        caplog: pytest.LogCaptureFixture) -> None:
    seen: list[int] = []
    sync = logging.getLogger("ray.train._internal.syncer")
    with caplog.at_level(logging.WARNING), watched(seen.append):
        sync.warning("Last sync command failed with the following error:\nTraceback ...\n"
                     "OSError: [Errno 28] Error writing bytes to file. Detail: [errno 28] No "
                     "space left on device")
        sync.warning("Last sync command failed with the following error:\nOSError: timed out")
        try:
            raise OSError(errno.EROFS, "Read-only file system")
        except OSError:
            logging.getLogger("ray.train._internal.storage").exception(
                "Caught exception when deleting path at /r/x:")
    assert seen == [errno.ENOSPC, errno.EROFS]
    assert [r.getMessage().splitlines()[-1] for r in caplog.records] == ["OSError: timed out"]
    sync.warning("Last sync command failed: [Errno 28] ...")  # not watched: logged again
    assert len(caplog.records) == 2


def _runs(workdir: Path) -> dict[str, dict[str, object]]:
    mlflow.set_tracking_uri(f"sqlite:///{workdir / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["full"])
    return {str(row["tags.mlflow.runName"]): row.to_dict() for _, row in runs.iterrows()}


def _sweep(workdir: Path, storage: Path, *extra: str, env: dict[str, str] | None = None,
           stop_after: str | None = None, on_line: object = None
           ) -> subprocess.CompletedProcess[str]:
    (workdir / "spec.yaml").write_text(SPEC)
    command = [sys.executable, "-m", "sweeper.cli", "run", "spec.yaml", "--storage",
               str(storage), *extra]
    if on_line is None:
        return subprocess.run(command, cwd=workdir, env={**os.environ, **(env or {})},
                              capture_output=True, text=True, timeout=300)
    driver = subprocess.Popen(command, cwd=workdir, stderr=subprocess.PIPE, text=True)
    assert driver.stderr is not None
    lines = []
    for line in driver.stderr:
        lines.append(line)
        if stop_after and stop_after in line:
            on_line()  # type: ignore[operator]
            stop_after = None
    driver.wait(timeout=300)
    return subprocess.CompletedProcess(command, driver.returncode, "", "".join(lines))


def _assert_stopped_cleanly(done: subprocess.CompletedProcess[str], workdir: Path,
                            folder: str, cause: str) -> None:
    err = done.stderr
    assert done.returncode == 1, err
    assert "Traceback" not in err and "EOFError" not in err and "retrying" not in err, err
    assert f"sweeper: the results storage {folder} {cause}" in err
    assert "/2 trials finished, 0 failed" in err  # the summary
    assert err.rstrip().endswith("--resume")  # the resume command, last
    runs = _runs(workdir)
    assert runs["full"]["status"] == "FAILED"
    assert str(runs["full"]["tags.sweeper.error"]).startswith(f"the results storage {folder}")
    assert "RUNNING" not in {r["status"] for r in runs.values()}


def _assert_resumes(workdir: Path, storage: Path) -> None:
    resumed = _sweep(workdir, storage, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "Traceback" not in resumed.stderr and "WARNING" not in resumed.stderr
    runs = _runs(workdir)
    assert sorted(runs) == ["full", "t0.2", "t0.5"]  # one run per trial
    assert {r["status"] for r in runs.values()} == {"FINISHED"}
    assert {r["metrics.epoch"] for n, r in runs.items() if n != "full"} == {2}


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.parametrize("code, cause", [(errno.ENOSPC, "has no space left"),
                                         (errno.EROFS, "became read-only")])
def test_an_injected_refused_upload_stops_the_sweep_then_resume_finishes_it(
        workdir: Path, code: int, cause: str) -> None:
    # Every checkpoint upload from epoch 1 on fails as that storage would.
    done = _sweep(workdir, workdir / "results", env={"SWEEPER_FAULT_STORAGE_AT": f"1:{code}"})
    _assert_stopped_cleanly(done, workdir, str(workdir / "results" / "full"), cause)
    assert "t0.2 epoch 0/2" in done.stderr  # epoch 0 was reported; epoch 1 was refused
    _assert_resumes(workdir, workdir / "results")


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 100 KiB tmpfs (a width-4 checkpoint is ~68 KiB), where this process may mount."""
    where = tmp_path / f"tmpfs-{uuid.uuid4().hex[:6]}"
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=100k", "tmpfs", str(where)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _remount(where: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(where)], check=True)


@pytest.mark.slow
@pytest.mark.integration
def test_a_full_storage_stops_the_sweep_then_resume_finishes_it_once_space_is_freed(
        workdir: Path, tmpfs: Path) -> None:
    done = _sweep(workdir, tmpfs)
    _assert_stopped_cleanly(done, workdir, str(tmpfs / "full"), "has no space left")
    _remount(tmpfs, "size=20m")  # space freed
    _assert_resumes(workdir, tmpfs)


@pytest.mark.slow
@pytest.mark.integration
def test_a_storage_remounted_read_only_mid_sweep_stops_it_then_resume_finishes_it(
        workdir: Path, tmpfs: Path) -> None:
    _remount(tmpfs, "size=20m")
    done = _sweep(workdir, tmpfs, stop_after="t0.2 epoch 0/2",
                  on_line=lambda: _remount(tmpfs, "ro"))
    _assert_stopped_cleanly(done, workdir, str(tmpfs / "full"), "became read-only")
    _remount(tmpfs, "rw")
    _assert_resumes(workdir, tmpfs)


def _stopped_after_one_checkpoint(workdir: Path) -> Path:
    """A sweep stopped (injected: no space left) once t0.2 stored its epoch-1 checkpoint;
    that checkpoint's state file."""
    done = _sweep(workdir, workdir / "results", env={"SWEEPER_FAULT_STORAGE_AT": "2:28"})
    assert done.returncode == 1, done.stderr
    [state] = (workdir / "results" / "full").glob("t0.2-*/checkpoint_*/state.pt")
    return state


@pytest.mark.slow
@pytest.mark.integration
def test_a_trial_whose_checkpoint_was_deleted_starts_over_in_its_own_run(
        workdir: Path) -> None:
    import shutil

    state = _stopped_after_one_checkpoint(workdir)
    shutil.rmtree(state.parent.parent)  # the trial's whole folder
    resumed = _sweep(workdir, workdir / "results", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert (f"t0.2: warning: its checkpoint at {state} was missing; it starts over from "
            "epoch 0") in resumed.stderr
    assert "Traceback" not in resumed.stderr and "ValueError" not in resumed.stderr
    runs = _runs(workdir)
    assert sorted(runs) == ["full", "t0.2", "t0.5"]
    assert {r["status"] for r in runs.values()} == {"FINISHED"}
    assert runs["t0.2"]["tags.sweeper.started_over"] == f"its checkpoint at {state} was missing"
    client = mlflow.MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    # One point per epoch: epoch 0, logged before the stop, is not logged twice.
    assert sorted(m.step for m in client.get_metric_history(
        str(runs["t0.2"]["run_id"]), "steps")) == [0, 1, 2]

    # The whole Tune experiment gone: what is missing, and what to do.
    shutil.rmtree(workdir / "results" / "full")
    again = _sweep(workdir, workdir / "results", "--resume")
    assert again.returncode == 2
    assert again.stderr.strip().splitlines()[-1].startswith(
        f"sweeper: --resume: {workdir / 'results' / 'full'} holds no state of sweep 'full'")
    assert "--storage" in again.stderr and "--name" in again.stderr


@pytest.mark.slow
@pytest.mark.integration
def test_a_corrupt_checkpoint_fails_its_trial_naming_it_and_retry_failed_starts_it_over(
        workdir: Path) -> None:
    state = _stopped_after_one_checkpoint(workdir)
    state.write_bytes(b"not a checkpoint")
    resumed = _sweep(workdir, workdir / "results", "--resume")
    assert resumed.returncode == 1, resumed.stderr
    assert (f"FAILED t0.2: CheckpointError: checkpoint {state} is unreadable or corrupt"
            in resumed.stderr)
    assert "retrying" not in resumed.stderr and "Traceback" not in resumed.stderr

    retried = _sweep(workdir, workdir / "results", "--resume", "--retry-failed")
    assert retried.returncode == 0, retried.stderr
    assert (f"t0.2: warning: its checkpoint at {state} could not be used (CheckpointError: "
            in retried.stderr)
    assert "it starts over from epoch 0" in retried.stderr
    runs = _runs(workdir)
    assert {r["status"] for r in runs.values()} == {"FINISHED"}
    assert runs["t0.2"]["tags.sweeper.retries"] == "1"
    assert str(runs["t0.2"]["tags.sweeper.previous_error"]).startswith("CheckpointError: ")


def test_a_trial_starts_over_when_its_state_file_is_gone_or_its_checkpoint_failed_it(
        tmp_path: Path) -> None:
    from types import SimpleNamespace

    from pyarrow.fs import LocalFileSystem

    from sweeper.driver.checkpoints import why_start_over

    folder = tmp_path / "checkpoint_000001"
    folder.mkdir()
    trial = SimpleNamespace(checkpoint=SimpleNamespace(path=str(folder),
                                                       filesystem=LocalFileSystem()))
    state = folder / "state.pt"
    assert why_start_over(trial, None) == f"its checkpoint at {state} was missing"  # type: ignore[arg-type]
    state.write_bytes(b"x")
    assert why_start_over(trial, None) is None  # type: ignore[arg-type]
    assert why_start_over(trial, "TrainingDiverged: loss became NaN") is None  # type: ignore[arg-type]
    assert why_start_over(trial, "CheckpointError: checkpoint x is corrupt") == (  # type: ignore[arg-type]
        f"its checkpoint at {state} could not be used (CheckpointError: checkpoint x is corrupt)")
    assert why_start_over(SimpleNamespace(checkpoint=None), "CheckpointError: x") is None  # type: ignore[arg-type]
