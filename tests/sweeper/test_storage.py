"""Results storage: local folders and s3:// URIs. The S3 test runs a sweep against
moto's S3 server on a loopback port: checkpoints land in the bucket, a second run
refuses to overwrite them, --resume reads them back, and a missing bucket is an
error before anything is written."""

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import boto3
import mlflow
import pytest

from sweeper.cluster.storage import (
    StorageError,
    check_bucket,
    check_writable_folder,
    holds_files,
    resolve,
    sweep_location,
)

from .conftest import free_port, tiny_sweep

pytestmark = pytest.mark.integration


def test_a_local_storage_resolves_to_an_absolute_folder(workdir: Path) -> None:
    assert resolve("results") == str(workdir / "results")
    assert sweep_location("results", "demo") == f"{workdir}/results/demo"
    assert sweep_location("s3://bucket/sweeps/", "demo") == "s3://bucket/sweeps/demo"


def test_holds_files_tells_missing_empty_and_used_folders_apart(tmp_path: Path) -> None:
    assert not holds_files(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    assert not holds_files(str(tmp_path / "empty"))
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "state.json").write_text("{}")
    assert holds_files(str(tmp_path / "used"))
    with pytest.raises(StorageError, match="is a file, not a folder"):
        holds_files(str(tmp_path / "used" / "state.json"))


def test_a_storage_that_is_a_file_or_under_one_is_refused_before_anything_is_written(
        workdir: Path) -> None:
    (workdir / "spec.yaml").write_text(tiny_sweep("x", "search:\n  params:\n    seed: [0]\n"))
    (workdir / "afile").write_text("not a folder")
    for storage, says in (("afile", "is a file, not a folder"),
                          ("afile/results", "is under " + str(workdir / "afile") + ", a file")):
        done = subprocess.run([sys.executable, "-m", "sweeper.cli", "run", "spec.yaml",
                               "--storage", storage], cwd=workdir, capture_output=True,
                              text=True, timeout=300,
                              env={k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"})
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr
        assert says in done.stderr and "pass --storage a folder" in done.stderr
    assert sorted(p.name for p in workdir.iterdir()) == ["afile", "spec.yaml"]  # no mlflow.db


def test_a_missing_local_storage_is_fine_and_not_created_by_the_check(tmp_path: Path) -> None:
    check_bucket(tmp_path / "new" / "results")
    check_writable_folder(tmp_path)
    assert list(tmp_path.iterdir()) == []  # the probe file is gone, nothing was created


def _unwritable(folder: Path) -> bool:
    try:
        (folder / ".sweeper-test-probe").touch()
    except OSError:
        return True
    (folder / ".sweeper-test-probe").unlink()
    return False


def test_a_read_only_storage_is_refused(tmp_path: Path) -> None:
    # Root ignores permission bits: chmod only makes the folder read-only for others.
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    candidates = [locked, locked / "results", Path("/proc"), Path("/sys/kernel")]
    tried = 0
    try:
        for folder in candidates:
            if not folder.parent.is_dir() or not _unwritable(folder if folder.is_dir()
                                                             else folder.parent):
                continue
            tried += 1
            with pytest.raises(StorageError, match="is not writable") as info:
                check_bucket(folder)
            assert str(folder) in str(info.value)
            assert "pass --storage a folder you can write to" in str(info.value)
    finally:
        locked.chmod(0o700)
    if not tried:
        pytest.skip("no unwritable folder on this machine to try")


def test_the_writability_probe_reports_a_refused_write(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """What a read-only mount answers (EROFS), wherever the tests cannot mount one."""
    import errno
    import tempfile

    def read_only(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    with pytest.raises(StorageError, match="is not writable: Read-only file system"):
        check_bucket(tmp_path)


@pytest.fixture
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 with one bucket, `sweeps`."""
    port = free_port()
    server = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H",
                               "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url, timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail("moto_server did not start")
                time.sleep(0.3)
        boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                     aws_access_key_id="test", aws_secret_access_key="test"
                     ).create_bucket(Bucket="sweeps")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.slow
def test_a_sweep_keeps_its_results_in_s3_and_resumes_from_there(s3_endpoint: str,
                                                                workdir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS",)}
    env |= {"AWS_ENDPOINT_URL": s3_endpoint, "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
    (workdir / "spec.yaml").write_text(
        tiny_sweep("s3sweep", "search:\n  params:\n    temperature: [0.1, 0.5]\n", epochs=1))
    uri = f"sqlite:///{workdir / 'mlflow.db'}"

    def sweeper(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "sweeper.cli", "run", "spec.yaml",
                               "--tracking-uri", uri, *args], cwd=workdir, env=env,
                              capture_output=True, text=True, timeout=600)

    done = sweeper("--storage", "s3://sweeps/results")
    assert done.returncode == 0, done.stderr
    assert "results: s3://sweeps/results/s3sweep" in done.stderr
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1",
                      aws_access_key_id="test", aws_secret_access_key="test")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="sweeps")["Contents"]]
    assert all(key.startswith("results/") for key in keys), keys  # "results/": a folder marker
    assert any(key.startswith("results/s3sweep/experiment_state-") for key in keys), keys
    # Each trial's last state (one epoch: stored beside Tune's checkpoints, of which it
    # has none) went to the bucket, not to a local folder.
    assert len({key.split("/")[2] for key in keys
                if key.endswith("/final_state/state.pt")}) == 2, keys
    assert not [key for key in keys if "/checkpoint_" in key], keys
    assert not (workdir / "results").exists()

    again = sweeper("--storage", "s3://sweeps/results")
    assert again.returncode == 2
    # MLflow has the sweep: refused, naming where its results are.
    assert ("already exists" in again.stderr
            and "with its results in s3://sweeps/results/s3sweep" in again.stderr)

    resumed = sweeper("--storage", "s3://sweeps/results", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming sweep 's3sweep'" in resumed.stderr
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["s3sweep"], output_format="list",
                              filter_string="tags.`sweeper.kind` = 'trial'")
    assert sorted(run.info.status for run in runs) == ["FINISHED", "FINISHED"]

    missing = sweeper("--storage", "s3://no-such-bucket/results", "--name", "elsewhere")
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert "bucket 'no-such-bucket' does not exist" in missing.stderr
    assert mlflow.get_experiment_by_name("elsewhere") is None  # nothing half-written
