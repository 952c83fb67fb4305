"""`train.deterministic`: a trial rerun on the same machine reproduces its metrics bit
for bit.

Seeds alone do not: torch's CPU kernels split their reductions by thread, so the same
seeded trial ends elsewhere with 1 thread than with 2 (a Ray worker runs with
`resources.cpu` threads, `sweeper trial` with torch's default), and on CUDA cuDNN and
cuBLAS pick algorithms that accumulate in any order. `deterministic` fixes all of it for
the length of a trial and then puts the process back as it found it: library code
changes no process-wide setting for good.

Every random draw of a trial is seeded already (trainers.loop: the model's init from
`train.seed`, the augmentations and the epoch order from one seeded generator; the
caps, the probe's subset and the synthetic images from fixed seeds).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch

# cuBLAS reduces in a fixed order only with a fixed workspace (CUDA's documented setting).
CUBLAS_WORKSPACE = ("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def trial_threads(cpu: float) -> int:
    """The torch threads of a deterministic trial: its whole `resources.cpu`, whoever runs
    it, but no more than the machine's CPUs (beyond them threads only stall each other, and
    torch 2.14's CPU backward was seen to crash with 3 threads on 2 cores)."""
    return max(1, min(int(cpu), os.cpu_count() or 1))


@dataclass(frozen=True)
class _ProcessState:
    """The process-wide settings `deterministic` changes."""

    algorithms: bool
    warn_only: bool
    cudnn_benchmark: bool
    cudnn_deterministic: bool
    threads: int
    cublas_workspace: str | None

    @classmethod
    def now(cls) -> _ProcessState:
        return cls(
            algorithms=torch.are_deterministic_algorithms_enabled(),
            warn_only=torch.is_deterministic_algorithms_warn_only_enabled(),
            cudnn_benchmark=torch.backends.cudnn.benchmark,
            cudnn_deterministic=torch.backends.cudnn.deterministic,
            threads=torch.get_num_threads(),
            cublas_workspace=os.environ.get(CUBLAS_WORKSPACE[0]),
        )

    def restore(self) -> None:
        torch.use_deterministic_algorithms(self.algorithms, warn_only=self.warn_only)
        torch.backends.cudnn.benchmark = self.cudnn_benchmark
        torch.backends.cudnn.deterministic = self.cudnn_deterministic
        torch.set_num_threads(self.threads)
        if self.cublas_workspace is None:
            os.environ.pop(CUBLAS_WORKSPACE[0], None)
        else:
            os.environ[CUBLAS_WORKSPACE[0]] = self.cublas_workspace


@contextlib.contextmanager
def deterministic(enabled: bool, threads: int, device: torch.device) -> Iterator[None]:
    """Within: deterministic algorithms only (an op without one raises), cuDNN without
    autotuning, `threads` torch threads, and on CUDA cuBLAS's fixed workspace. Afterwards
    every one of these settings is as it was. `enabled=False` changes nothing."""
    if not enabled:
        yield
        return
    before = _ProcessState.now()
    try:
        if device.type == "cuda":  # read when cuBLAS first runs: set it before any work
            os.environ.setdefault(*CUBLAS_WORKSPACE)
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        torch.set_num_threads(threads)
        yield
    finally:
        before.restore()
