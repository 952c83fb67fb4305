"""Shared fixtures for the sweep tests: a tiny spec and one local Ray instance."""

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

TINY_SWEEP = """\
name: {name}
method: simclr
dataset: {{name: synthetic, synthetic_train_size: 48, synthetic_test_size: 24}}
model: {{width: 4, hidden_dim: 16, projection_dim: 8}}
train: {{epochs: {epochs}, batch_size: 16, warmup_epochs: 1, optimizer: adamw,
        learning_rate: 0.01}}
eval: {{protocol: online_linear}}
resources: {{cpu: 1, gpu: 0}}
max_concurrent_trials: {concurrent}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tiny_sweep(name: str, search: str, epochs: int = 2, concurrent: int = 2,
               extra: str = "") -> str:
    return TINY_SWEEP.format(name=name, epochs=epochs, concurrent=concurrent) + search + extra


@pytest.fixture(scope="session")
def local_ray() -> Iterator[None]:
    ray = pytest.importorskip("ray")
    from sweeper.driver import init_ray

    init_ray(None)
    yield
    ray.shutdown()


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path
