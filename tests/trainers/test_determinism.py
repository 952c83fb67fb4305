"""train.deterministic: a rerun reports the same metrics bit for bit, whatever the
process's thread count before it, and so does a run interrupted and resumed from its
checkpoint; the process's settings are put back afterwards."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from trainers.checkpoint import load_checkpoint, save_checkpoint
from trainers.config import (
    DatasetConfig,
    EvalConfig,
    ModelConfig,
    ResourcesConfig,
    TrainConfig,
    TrialConfig,
)
from trainers.determinism import CUBLAS_WORKSPACE, deterministic, trial_threads
from trainers.loop import TIMING_METRICS, Metrics, fit

CPU = torch.device("cpu")


def tiny(method: str = "simclr", precision: str = "auto", epochs: int = 2,
         cpu: float = 1) -> TrialConfig:
    return TrialConfig(
        method=method,
        dataset=DatasetConfig(name="synthetic", synthetic_train_size=40, synthetic_test_size=20),
        model=ModelConfig(width=4, hidden_dim=16, projection_dim=8),
        train=TrainConfig(epochs=epochs, batch_size=16, warmup_epochs=1, precision=precision,
                          deterministic=True),
        eval=EvalConfig(probe_max_iter=20, knn_k=10),
        resources=ResourcesConfig(cpu=cpu),
    )


def reproducible(metrics: Metrics) -> Metrics:
    return {k: v for k, v in metrics.items() if k not in TIMING_METRICS}


@pytest.fixture
def threads() -> Iterator[None]:
    """Whatever a test does to torch's thread count, the next test starts as this one did."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize(("method", "precision"), [("simclr", "fp32"), ("byol", "auto")])
@pytest.mark.usefixtures("threads")
def test_two_runs_report_the_same_metrics_whatever_the_threads_before(
        method: str, precision: str) -> None:
    """precision auto is bf16 autocast on a bf16-capable CPU (as on the machine the figures
    in docs/benchmarks.md come from), fp32 elsewhere: deterministic either way."""
    cfg = tiny(method, precision)
    runs: list[list[Metrics]] = []
    during: list[tuple[int, bool]] = []

    def keep(metrics: Metrics, _state: dict[str, object]) -> None:
        runs[-1].append(reproducible(metrics))
        during.append((torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()))

    # As `sweeper trial` (torch's default, here 2) and a Ray worker (resources.cpu) would
    # leave the process: unpinned, 2 threads and 1 thread end at different metrics.
    for threads_before in (2, 1):
        torch.set_num_threads(threads_before)
        runs.append([])
        final = fit(cfg, report=keep)
        assert runs[-1][-1] == reproducible(final)
    first, second = runs
    assert [m["epoch"] for m in first] == [0, 1, 2]
    assert first == second  # every metric of every epoch, exactly: no tolerance
    assert set(during) == {(1, True)}  # resources.cpu threads, deterministic kernels only


@pytest.mark.usefixtures("threads")
def test_a_run_interrupted_and_resumed_equals_an_uninterrupted_one(tmp_path: Path) -> None:
    cfg = tiny("byol")
    straight = [reproducible(m) for m in _reports(cfg)]

    class Interrupted(Exception):
        pass

    def interrupt_after_epoch_1(metrics: Metrics, state: dict[str, object]) -> None:
        if metrics["epoch"] == 1:
            save_checkpoint(state, tmp_path / "epoch1.pt")
            raise Interrupted  # as if the worker died here

    torch.set_num_threads(2)
    with pytest.raises(Interrupted):
        fit(cfg, report=interrupt_after_epoch_1)
    torch.set_num_threads(1)  # another worker, with other threads, resumes it
    resumed = [reproducible(m) for m in _reports(cfg, load_checkpoint(tmp_path / "epoch1.pt"))]
    assert [m["epoch"] for m in resumed] == [2]
    assert resumed == straight[2:]


def _reports(cfg: TrialConfig, resume: dict[str, object] | None = None) -> list[Metrics]:
    reports: list[Metrics] = []
    fit(cfg, report=lambda metrics, _state: reports.append(metrics), resume=resume)
    return reports


@pytest.mark.usefixtures("threads")
def test_fit_puts_the_process_settings_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)
    torch.set_num_threads(1)
    fit(tiny(epochs=0, cpu=2))
    assert torch.get_num_threads() == 1
    assert not torch.are_deterministic_algorithms_enabled()
    assert torch.backends.cudnn.benchmark is True


@pytest.mark.usefixtures("threads")
def test_the_settings_within_and_after_even_when_the_trial_fails(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CUBLAS_WORKSPACE[0], raising=False)
    torch.set_num_threads(1)
    with pytest.raises(RuntimeError, match="diverged"), deterministic(
            True, threads=2, device=torch.device("cuda")):  # settings only: no CUDA needed
        assert torch.get_num_threads() == 2
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        assert os.environ[CUBLAS_WORKSPACE[0]] == ":4096:8"
        raise RuntimeError("diverged")
    assert torch.get_num_threads() == 1
    assert not torch.are_deterministic_algorithms_enabled()
    assert not torch.backends.cudnn.deterministic
    assert CUBLAS_WORKSPACE[0] not in os.environ

    with deterministic(True, threads=2, device=CPU):  # the CPU needs no cuBLAS setting
        assert CUBLAS_WORKSPACE[0] not in os.environ
    with deterministic(False, threads=2, device=CPU):  # off: nothing changes
        assert torch.get_num_threads() == 1
        assert not torch.are_deterministic_algorithms_enabled()


@pytest.mark.parametrize(("cpu", "threads"), [(0.5, 1), (1, 1), (2, 2), (3.7, 3), (8, 8),
                                               (16, 8)])
def test_a_deterministic_trial_runs_with_its_whole_cpus_up_to_the_machines(
        cpu: float, threads: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert trial_threads(cpu) == threads
