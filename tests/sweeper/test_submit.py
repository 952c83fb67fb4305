"""`sweeper submit` and `sweeper run --address`: what can be checked without a
cluster (test_cluster.py runs both against a real two-node cluster)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import tiny_sweep

pytestmark = pytest.mark.integration


def sweeper(*args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return subprocess.run([sys.executable, "-m", "sweeper.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_submit_rejects_a_bad_spec_before_contacting_the_cluster(workdir: Path) -> None:
    (workdir / "spec.yaml").write_text("name: x\ntrain: {epochs: -1}\n")
    done = sweeper("submit", "spec.yaml", "--address", "http://127.0.0.1:1", cwd=workdir)
    assert done.returncode == 2 and "train.epochs" in done.stderr
    assert "Traceback" not in done.stderr


def test_ray_client_addresses_are_refused(workdir: Path) -> None:
    (workdir / "spec.yaml").write_text(tiny_sweep("x", "search:\n  params:\n    seed: [0]\n"))
    done = sweeper("run", "spec.yaml", "--address", "ray://127.0.0.1:10001", cwd=workdir)
    assert done.returncode == 2 and "Ray Client" in done.stderr


# --- what `sweeper submit` uploads: an allow-list -------------------------------------------

SECRETS = [".env", ".aws/credentials", ".netrc", "id_rsa", "id_ed25519.pub", "secrets.json",
           "other.db", "mlflow.db", "mlruns/0/meta.yaml", "results/old/experiment_state.json",
           "notes.txt", "data/.git/config", "data/train/cat/.hidden.png",
           "data/train/cat/id_rsa", "data/test/cat/server.key"]


def project_with_secrets(workdir: Path, root: str = "data") -> None:
    from PIL import Image

    (workdir / "spec.yaml").write_text(
        tiny_sweep("ship", "search:\n  params:\n    seed: [0]\n")
        .replace("{name: synthetic, synthetic_train_size: 48, synthetic_test_size: 24}",
                 f"{{name: image_folder, root: {root}}}"))
    for split in ("train", "test"):
        (workdir / "data" / split / "cat").mkdir(parents=True)
        Image.new("RGB", (8, 8), (1, 2, 3)).save(workdir / "data" / split / "cat" / "0.png")
    for name in SECRETS:
        (workdir / name).parent.mkdir(parents=True, exist_ok=True)
        (workdir / name).write_text("do not upload")


def test_dry_run_lists_the_allow_list_and_none_of_the_secrets(workdir: Path) -> None:
    project_with_secrets(workdir)
    done = sweeper("submit", "spec.yaml", "--dry-run", cwd=workdir)  # no --address: no server
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1].startswith(f"total: {len(lines) - 1} files, ")
    listed = lines[:-1]
    assert "working_dir/spec.yaml" in listed
    assert {"working_dir/data/train/cat/0.png", "working_dir/data/test/cat/0.png"} <= set(listed)
    assert "py_modules/sweeper/cli.py" in listed and "py_modules/trainers/data.py" in listed
    assert all(line.startswith(("working_dir/", "py_modules/")) for line in listed)
    uploaded = {line.removeprefix("working_dir/") for line in listed
                if line.startswith("working_dir/")}
    assert uploaded == {"spec.yaml", "data/train/cat/0.png", "data/test/cat/0.png"}
    assert not uploaded & set(SECRETS)
    assert not any("__pycache__" in line or "/." in line for line in listed)


def test_a_dataset_root_outside_the_folder_is_not_uploaded_and_said_so(workdir: Path) -> None:
    project_with_secrets(workdir, root="/srv/data/cifar")
    done = sweeper("submit", "spec.yaml", "--dry-run", cwd=workdir)
    assert done.returncode == 0, done.stderr
    assert [line for line in done.stdout.splitlines() if line.startswith("working_dir/")] == [
        "working_dir/spec.yaml"]
    assert "dataset.root /srv/data/cifar is not uploaded" in done.stderr
    assert "must exist at that path on every node" in done.stderr


def test_the_staging_folder_holds_exactly_the_listed_files(
        workdir: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    from sweeper.cluster.shipping import stage
    from sweeper.cluster.submit import plan
    from sweeper.search import expand
    from sweeper.spec.load import load_spec

    project_with_secrets(workdir)
    upload = plan("spec.yaml", {t.config.dataset for t in expand(load_spec("spec.yaml"))})
    staging = tmp_path_factory.mktemp("staging")
    working_dir, modules = stage(upload, staging)
    staged = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*")
                    if p.is_file())
    assert staged == sorted(upload.files)
    assert working_dir == str(staging / "working_dir")
    assert [Path(m).name for m in modules] == ["sweeper", "trainers"]  # packages
    image = staging / "working_dir" / "data" / "train" / "cat" / "0.png"
    assert image.is_symlink() and image.read_bytes() == (
        workdir / "data" / "train" / "cat" / "0.png").read_bytes()
    assert (staging / "working_dir" / "spec.yaml").read_text() == (
        workdir / "spec.yaml").read_text()


# --- links: judged by where they lead ---------------------------------------------------

def _link_refused(workdir: Path) -> str:
    done = sweeper("submit", "spec.yaml", "--dry-run", cwd=workdir)
    assert done.returncode == 2, done.stdout
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert not done.stdout  # nothing listed, nothing staged
    return done.stderr


def test_a_data_file_linked_to_a_key_outside_is_refused(
        workdir: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    project_with_secrets(workdir)
    key = tmp_path_factory.mktemp("home") / "id_rsa"
    key.write_text("PRIVATE KEY")
    (workdir / "data" / "train" / "cat" / "1.png").symlink_to(key)
    message = _link_refused(workdir)
    assert message.startswith("sweeper: not uploaded: data/train/cat/1.png links outside "
                              f"{workdir.resolve()}"), message
    assert "copy the files in, or name an absolute dataset.root" in message
    assert "PRIVATE KEY" not in message and "id_rsa" not in message


def test_a_folder_linked_outside_is_refused_without_being_walked(
        workdir: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    from PIL import Image

    project_with_secrets(workdir)
    elsewhere = tmp_path_factory.mktemp("datasets")
    for name in ("dog", "bird"):
        (elsewhere / name).mkdir()
        Image.new("RGB", (8, 8)).save(elsewhere / name / "0.png")
    (workdir / "data" / "train" / "dog").symlink_to(elsewhere / "dog")
    (workdir / "data" / "test" / "bird").symlink_to(elsewhere / "bird")
    message = _link_refused(workdir)
    assert "not uploaded: data/train/dog links outside" in message  # train/ is read first
    assert message.rstrip().endswith("every node has (and 1 more like it)")


def test_a_split_folder_or_cifar_folder_linked_outside_is_refused(
        workdir: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    from sweeper.cluster.shipping import plan_upload
    from trainers.config import DatasetConfig

    project_with_secrets(workdir)
    outside = tmp_path_factory.mktemp("shared")
    (outside / "cifar-10-batches-py").mkdir()
    (outside / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"x")
    (workdir / "cifar").mkdir()
    (workdir / "cifar" / "cifar-10-batches-py").symlink_to(outside / "cifar-10-batches-py")
    (workdir / "linked").mkdir()
    (workdir / "linked" / "train").symlink_to(workdir / "data" / "train")  # stays inside
    (workdir / "linked" / "test").symlink_to(outside)
    upload = plan_upload(workdir / "spec.yaml", workdir, [
        DatasetConfig(name="cifar10", root="cifar", download=False),
        DatasetConfig(name="image_folder", root="linked")])
    assert [line.split(" links")[0] for line in upload.refused] == [
        "cifar/cifar-10-batches-py", "linked/test"]
    assert not any(name.startswith("working_dir/cifar") for name in upload.files)
    assert "working_dir/linked/train/cat/0.png" in upload.files


def test_a_link_to_a_secret_inside_the_project_is_refused(workdir: Path) -> None:
    project_with_secrets(workdir)
    (workdir / "data" / "train" / "cat" / "1.png").symlink_to(workdir / ".env")
    message = _link_refused(workdir)
    assert ("not uploaded: data/train/cat/1.png links to .env, which is never uploaded; "
            "remove the link") in message


def test_links_that_stay_inside_are_uploaded_where_the_spec_names_them(
        workdir: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    from sweeper.cluster.shipping import stage
    from sweeper.cluster.submit import plan
    from sweeper.search import expand
    from sweeper.spec.load import load_spec

    project_with_secrets(workdir, root="current")
    (workdir / "datasets").mkdir()
    (workdir / "data").rename(workdir / "datasets" / "v2")
    (workdir / "current").symlink_to(workdir / "datasets" / "v2")  # the root is a link
    (workdir / "datasets" / "v2" / "train" / "dog").symlink_to(
        workdir / "datasets" / "v2" / "train" / "cat")  # a folder linked inside
    (workdir / "datasets" / "v2" / "test" / "cat" / "1.png").symlink_to(
        workdir / "datasets" / "v2" / "test" / "cat" / "0.png")  # a file linked inside
    (workdir / "datasets" / "v2" / "train" / "cat" / "loop").symlink_to(
        workdir / "datasets" / "v2" / "train")  # a cycle: entered once
    done = sweeper("submit", "spec.yaml", "--dry-run", cwd=workdir)
    assert done.returncode == 0, done.stderr
    assert [line for line in done.stdout.splitlines() if line.startswith("working_dir/")] == [
        "working_dir/current/test/cat/0.png", "working_dir/current/test/cat/1.png",
        "working_dir/current/train/cat/0.png", "working_dir/current/train/dog/0.png",
        "working_dir/spec.yaml"]
    upload = plan("spec.yaml", {t.config.dataset for t in expand(load_spec("spec.yaml"))})
    staging = tmp_path_factory.mktemp("staging")
    stage(upload, staging)
    staged = staging / "working_dir" / "current" / "test" / "cat" / "1.png"
    assert staged.read_bytes() == (workdir / "datasets" / "v2" / "test" / "cat" /
                                   "0.png").read_bytes()


def test_submit_without_an_address_says_what_to_pass(workdir: Path) -> None:
    (workdir / "spec.yaml").write_text(tiny_sweep("x", "search:\n  params:\n    seed: [0]\n"))
    done = sweeper("submit", "spec.yaml", cwd=workdir)
    assert done.returncode == 2 and "needs --address" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_job_server_that_never_answers_fails_in_seconds(workdir: Path) -> None:
    import socket

    (workdir / "spec.yaml").write_text(tiny_sweep("x", "search:\n  params:\n    seed: [0]\n"))
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        address = f"http://127.0.0.1:{silent.getsockname()[1]}"
        for command in (["submit", "spec.yaml"], ["status", "--job", "raysubmit_x"]):
            # The timeout only guards against the hang (Ray's client waits forever).
            done = sweeper(*command, "--address", address, cwd=workdir, timeout=120)
            assert done.returncode == 2, done.stderr
            assert f"the Ray job server at {address} is unavailable: timed out" in done.stderr
