"""`sweeper submit` and `sweeper run --address`: what can be checked without a
cluster (test_cluster.py runs both against a real two-node cluster)."""

import os
import subprocess
import sys
from pathlib import Path

from .conftest import tiny_sweep


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
