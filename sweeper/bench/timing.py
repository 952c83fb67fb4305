"""Shared timing helpers: which device, how many threads, and timed rounds of work.

Rates are medians over timed rounds (one step, one batch, 64 images): on a quiet machine
the same as the mean, on a shared one robust to the stalls other processes cause.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from sweeper.bench.errors import BenchError


def resolve_device(name: str | None) -> torch.device:
    """`--device`: CUDA when there is one and nothing was asked for, else what was asked for
    if this machine has it. Only cpu and cuda: the trainer runs on nothing else."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise BenchError(f"unknown device {name!r}: use cpu, cuda or cuda:N") from None
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise BenchError(f"device {name!r} is not supported: use cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise BenchError(f"--device {name}: no CUDA device is visible on this machine; "
                         "use --device cpu")
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise BenchError(f"--device {name}: this machine has {torch.cuda.device_count()} "
                         "CUDA device(s)")
    return device


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def sync(device: torch.device) -> None:
    """CUDA runs asynchronously: wait for queued work before reading the clock."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def torch_threads(count: int | None) -> Iterator[int]:
    """Run with `count` intra-op threads (None: as set), restored afterwards."""
    before = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class Timing:
    """Images/s of each timed round, and the totals."""

    rates: list[float]
    images: int
    seconds: float

    @property
    def median(self) -> float:
        """The headline rate: robust to the stalls other processes cause on a shared
        machine, and equal to the mean on a quiet one."""
        return statistics.median(self.rates)

    @property
    def mean(self) -> float:
        return self.images / self.seconds


def time_rounds(run: Callable[[], int], device: torch.device, seconds: float,
                min_rounds: int, calls_per_round: int = 1) -> Timing:
    """Rounds of `calls_per_round` calls of `run` (which returns how many images it did),
    for at least `seconds` and `min_rounds` rounds; each round ends with a CUDA sync."""
    rates: list[float] = []
    images = 0
    sync(device)
    started = time.perf_counter()
    while len(rates) < min_rounds or time.perf_counter() - started < seconds:
        round_started = time.perf_counter()
        done = sum(run() for _ in range(calls_per_round))
        sync(device)
        rates.append(done / (time.perf_counter() - round_started))
        images += done
    return Timing(rates, images, time.perf_counter() - started)


@dataclass(frozen=True)
class Contender:
    """One side of an interleaved comparison."""

    name: str
    run: Callable[[], int]  # does some images, returns how many
    device: torch.device
    threads: int
    calls_per_round: int


def interleaved_rates(contenders: list[Contender], seconds: float) -> dict[str, float]:
    """Median images/s of each contender, timed in alternating rounds for `seconds` in
    all (after one warm-up round each): on a shared machine every contender meets the
    same slow and fast moments, which keeps their ratio steady."""
    rounds: dict[str, list[float]] = {c.name: [] for c in contenders}
    started = time.perf_counter()
    cycle = 0
    while cycle < 4 or time.perf_counter() - started < seconds:
        for c in contenders:
            with torch_threads(c.threads):
                timing = time_rounds(c.run, c.device, 0.0, min_rounds=1,
                                     calls_per_round=c.calls_per_round)
            if cycle > 0:  # the first cycle warms up the allocator, kernels and caches
                rounds[c.name] += timing.rates
        cycle += 1
    return {name: statistics.median(rates) for name, rates in rounds.items()}
