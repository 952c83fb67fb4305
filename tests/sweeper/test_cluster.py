"""A real two-node Ray cluster on this machine, started apart from sweeper with
`ray start` (a head without CPUs and a worker node with two, each with its own
temp folder): `sweeper run --address` and `sweeper submit --wait` to the head's
job server both leave FINISHED trial runs in MLflow, every trial run on the
cluster's worker node.

The head has no CPUs so that where trials run is certain: with two one-CPU
nodes, Tune's actor reuse lets the first node's finished actor take over a
trial whose actor on the second node is still starting (a few seconds of
imports on a loaded machine), so which nodes run trials would be a race."""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pytest

from .conftest import free_port

pytestmark = [pytest.mark.slow, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# The demo sweep (4 trials), shrunk to seconds per trial.
DEMO_OVERRIDES = ["--set", "train.epochs=1", "--set", "dataset.synthetic_train_size=256",
                  "--set", "dataset.synthetic_test_size=128"]


@dataclass(frozen=True)
class Cluster:
    address: str  # the GCS, HOST:PORT, for `sweeper run --address`
    job_server: str  # the dashboard, for `sweeper submit --address`
    env: dict[str, str]
    worker_node: str  # the Ray node id of the only node with CPUs


def cluster_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI")}
    # Ray 2.60's `ray start --head` turns token auth on when ~/.ray/auth_token exists (any
    # earlier ray.init() writes one) but a joining node does not: pin it off for the test.
    env["RAY_AUTH_MODE"] = "disabled"
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"  # the job's `python` is this one
    return env


def ray_start(env: dict[str, str], temp_dir: str, cpus: int, *args: str) -> None:
    ports = [f"--{name}={free_port()}" for name in
             ("dashboard-agent-listen-port", "metrics-export-port", "runtime-env-agent-port")]
    done = subprocess.run(
        [str(BIN / "ray"), "start", *args, *ports, f"--num-cpus={cpus}", "--num-gpus=0",
         "--node-ip-address=127.0.0.1", f"--temp-dir={temp_dir}",
         "--object-store-memory=200000000", "--disable-usage-stats"],
        env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, f"ray start {args} failed:\n{done.stdout}\n{done.stderr}"


def node_with_cpus(env: dict[str, str], job_server: str) -> str:
    """The id of the one alive node that has CPUs, from Ray's state API."""
    done = subprocess.run([str(BIN / "ray"), "list", "nodes", "--address", job_server,
                           "--format", "json"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    nodes = [node for node in json.loads(done.stdout)
             if node["state"] == "ALIVE" and node["resources_total"].get("CPU", 0) > 0]
    assert len(nodes) == 1, nodes
    return str(nodes[0]["node_id"])


def kill_processes_under(folders: list[str]) -> None:
    """Every Ray process of these nodes names its temp folder on its command line; `ray
    stop` would also kill other Ray instances of this user (the test session's own)."""
    def matching() -> list[int]:
        pids = []
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:  # exited meanwhile
                continue
            if any(folder in text for folder in folders):
                pids.append(int(cmdline.parent.name))
        return pids

    deadline = time.monotonic() + 30
    while (pids := matching()) and time.monotonic() < deadline:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):  # exited meanwhile
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    env = cluster_env()
    # Short roots: Ray's Unix sockets live below them (108-byte path limit). One per node,
    # as on separate machines: nodes sharing one would delete each other's runtime envs.
    folders = [tempfile.mkdtemp(prefix="ray-head-"), tempfile.mkdtemp(prefix="ray-node-")]
    port, dashboard = free_port(), free_port()
    try:
        ray_start(env, folders[0], 0, "--head", f"--port={port}", "--include-dashboard=true",
                  "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
                  f"--ray-client-server-port={free_port()}")
        ray_start(env, folders[1], 2, f"--address=127.0.0.1:{port}")
        job_server = f"http://127.0.0.1:{dashboard}"
        yield Cluster(f"127.0.0.1:{port}", job_server, env, node_with_cpus(env, job_server))
    finally:
        kill_processes_under(folders)
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)


def sweeper(cluster: Cluster, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sweeper.cli", *args], cwd=cwd,
                          env=cluster.env, capture_output=True, text=True, timeout=600)


def trial_runs(tracking_uri: str, experiment: str) -> list[tuple[str, str]]:
    """(status, Ray node id) of every trial run of the experiment."""
    mlflow.set_tracking_uri(tracking_uri)
    runs = mlflow.search_runs(experiment_names=[experiment], output_format="list",
                              filter_string="tags.`sweeper.kind` = 'trial'")
    return [(run.info.status, run.data.tags.get("sweeper.node", "")) for run in runs]


def test_the_demo_sweep_runs_on_a_separately_started_cluster(cluster: Cluster,
                                                             tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = sweeper(cluster, "run", str(ROOT / "search_spaces" / "demo.yaml"),
                   "--address", cluster.address, "--storage", str(tmp_path / "results"),
                   "--tracking-uri", uri, *DEMO_OVERRIDES, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4/4 trials finished, 0 failed" in done.stderr
    runs = trial_runs(uri, "demo")
    assert sorted(status for status, _ in runs) == ["FINISHED"] * 4
    # The cluster's worker ran them (a private local Ray would have other node ids).
    assert {node for _, node in runs} == {cluster.worker_node}


def test_submit_wait_runs_the_demo_as_a_job_on_the_cluster(cluster: Cluster,
                                                           tmp_path: Path) -> None:
    # Submitted from a folder that holds just the spec: the project's code travels as
    # py_modules, the folder as the job's working directory.
    shutil.copy(ROOT / "search_spaces" / "demo.yaml", tmp_path / "demo.yaml")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = sweeper(cluster, "submit", "demo.yaml", "--address", cluster.job_server, "--wait",
                   "--storage", str(tmp_path / "results"), "--tracking-uri", uri,
                   *DEMO_OVERRIDES, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    job_id = done.stdout.split("submitted job ", 1)[1].split()[0]
    assert "4/4 trials finished, 0 failed" in done.stdout  # the job's log, streamed
    assert done.stdout.rstrip().endswith(f"job {job_id}: SUCCEEDED")
    runs = trial_runs(uri, "demo")
    assert sorted(status for status, _ in runs) == ["FINISHED"] * 4
    assert {node for _, node in runs} == {cluster.worker_node}

    status = sweeper(cluster, "status", "--job", job_id, "--address", cluster.job_server,
                     cwd=tmp_path)
    assert status.returncode == 0 and f"job {job_id}: SUCCEEDED" in status.stdout


def test_submit_wait_exits_1_when_the_job_fails(cluster: Cluster, tmp_path: Path) -> None:
    (tmp_path / "spec.yaml").write_text(
        (ROOT / "search_spaces" / "demo.yaml").read_text()
        .replace("dataset: {name: synthetic", "dataset: {name: image_folder, root: missing"))
    done = sweeper(cluster, "submit", "spec.yaml", "--address", cluster.job_server, "--wait",
                   "--storage", str(tmp_path / "results"),
                   "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "missing" in done.stdout and done.stdout.rstrip().endswith("FAILED")


@pytest.fixture(scope="module")
def head_after_the_demo() -> Iterator[Cluster]:
    """A one-node cluster from `ray start --head` on a machine where a local sweep (the
    demo) already ran: ~/.ray/auth_token exists, so Ray turns token authentication on,
    and nobody has set RAY_AUTH_MODE."""
    home = Path(tempfile.mkdtemp(prefix="ray-home-"))
    env = {k: v for k, v in cluster_env().items() if k != "RAY_AUTH_MODE"}
    env["HOME"] = str(home)
    generated = subprocess.run([str(BIN / "ray"), "get-auth-token", "--generate"], env=env,
                               capture_output=True, text=True, timeout=60)
    assert (home / ".ray" / "auth_token").is_file(), generated.stdout + generated.stderr
    folder = tempfile.mkdtemp(prefix="ray-solo-")
    port, dashboard = free_port(), free_port()
    try:
        ray_start(env, folder, 2, "--head", f"--port={port}", "--include-dashboard=true",
                  "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
                  f"--ray-client-server-port={free_port()}")
        yield Cluster(f"127.0.0.1:{port}", f"http://127.0.0.1:{dashboard}", env, "")
    finally:
        kill_processes_under([folder])
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)


def test_run_and_submit_work_against_a_token_head_with_no_extra_environment(
        head_after_the_demo: Cluster, tmp_path: Path) -> None:
    cluster = head_after_the_demo
    assert "RAY_AUTH_MODE" not in cluster.env
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = sweeper(cluster, "run", str(ROOT / "search_spaces" / "demo.yaml"),
                   "--address", cluster.address, "--storage", str(tmp_path / "results"),
                   "--tracking-uri", uri, *DEMO_OVERRIDES, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(status for status, _ in trial_runs(uri, "demo")) == ["FINISHED"] * 4

    shutil.copy(ROOT / "search_spaces" / "demo.yaml", tmp_path / "demo.yaml")
    done = sweeper(cluster, "submit", "demo.yaml", "--address", cluster.job_server, "--wait",
                   "--name", "demo-job", "--storage", str(tmp_path / "results"),
                   "--tracking-uri", uri, *DEMO_OVERRIDES, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.rstrip().endswith("SUCCEEDED")
    assert sorted(status for status, _ in trial_runs(uri, "demo-job")) == ["FINISHED"] * 4
