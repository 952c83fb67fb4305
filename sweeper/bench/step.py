"""`sweeper bench step`: training images/s of one step exactly as `trainers.loop` takes it
(two augmented views, forward, backward, optimizer step, BYOL's target update), against
the FLOP floor of the model (sweeper.bench.flops)."""

from __future__ import annotations

import math
import time
from typing import TextIO

import torch

from sweeper.bench.errors import BenchError, BenchFailed
from sweeper.bench.flops import peak_tflops, training_flops_per_image
from sweeper.bench.format import Result, say
from sweeper.bench.timing import Timing, device_name, sync, time_rounds, torch_threads
from trainers.config import ModelConfig, TrainConfig
from trainers.data import make_synthetic
from trainers.determinism import deterministic as deterministic_mode
from trainers.loop import Training, build_training
from trainers.memory import retain_freed_memory
from trainers.methods import METHODS, choices

EPOCH_IMAGES = 50_000  # one CIFAR-10 epoch


def measure_step(
    method_name: str,
    device: torch.device,
    batch_size: int = 512,
    backbone: str = "resnet18",
    width: int = 64,
    steps: int = 20,
    warmup: int = 3,
    precision: str = "auto",
    peak: float | None = None,
    threads: int | None = None,
    progress: TextIO | None = None,
    compile_: bool = False,
    deterministic: bool = False,
) -> Result:
    """Training images/s of `steps` steps taken as trainers.loop takes them, after `warmup`
    untimed ones, with the FLOP floor and the fraction of the peak (`peak` TFLOP/s, else
    looked up for CUDA devices) it reaches. `compile_` as train.compile: the warm-up steps
    include the compilation, reported as `warmup_seconds`. `deterministic` as
    train.deterministic: its steps are the ones timed, alternating with as many of the same
    steps without it (`images_per_sec_nondeterministic`, `deterministic_ratio`)."""
    if method_name not in METHODS:
        raise BenchError(f"unknown method {method_name!r}: choose {choices(method_name)}")
    for what, value, low in (("batch size", batch_size, 1), ("steps", steps, 1),
                             ("warmup", warmup, 0), ("width", width, 1)):
        if value < low:
            raise BenchError(f"{what} must be at least {low}, got {value}")
    if peak is not None and not peak > 0:
        raise BenchError(f"--peak-tflops must be positive, got {peak}")
    if compile_ and warmup < 1:
        raise BenchError("--compile needs --warmup of at least 1: the first step compiles")
    try:
        model_cfg = ModelConfig(backbone=backbone, width=width)
        train = TrainConfig(batch_size=batch_size, precision=precision, compile=compile_)
    except ValueError as exc:
        raise BenchError(str(exc)) from None

    with torch_threads(threads) as used_threads:
        # Two batches' worth of images, drawn in a fresh random order each step as the
        # loop's per-epoch permutation draws them.
        images, labels = make_synthetic(2 * batch_size, seed=0)
        images, labels = images.to(device), labels.to(device)
        image_size = (int(images.shape[2]), int(images.shape[3]))

        # The loop's own set-up and step (trainers.loop.Training).
        retain_freed_memory()  # as `sweeper trial` and the Ray workers do

        def stepper(pinned: bool) -> _Stepper:
            training = build_training(method_name, model_cfg, train, 10, device,
                                      warmup + steps, warmup)
            return _Stepper(training, images, labels, batch_size, pinned, used_threads)

        timed = stepper(deterministic)
        # --deterministic: the same steps without it too, for what determinism costs.
        plain = stepper(False) if deterministic else None
        autocast = timed.training.autocast
        forward, per_image = training_flops_per_image(timed.training.method, image_size)
        say(progress, f"step: {method_name} {backbone} width {width}, batch {batch_size} "
                      f"on {device} ({'bf16' if autocast else 'fp32'}"
                      f"{', compiled' if compile_ else ''}"
                      f"{', deterministic and not, alternating' if plain else ''}), "
                      f"{warmup} warm-up + {steps} timed steps")
        warmup_started = time.perf_counter()
        for _ in range(warmup):
            timed()
        sync(device)
        warmup_seconds = time.perf_counter() - warmup_started
        if plain is None:
            timing = time_rounds(timed, device, 0.0, min_rounds=steps)
        else:
            for _ in range(warmup):
                plain()
            timing, plain_timing = _alternating(timed, plain, device, steps)
        for run in (timed, plain):
            if run is not None and not math.isfinite(run.loss_sum.item()):
                raise BenchFailed(f"the {method_name} loss became NaN while benchmarking")

    rate = timing.median
    achieved = rate * per_image / 1e12
    plain_rate = plain_timing.median if plain is not None else None
    if plain_rate is not None:
        say(progress, f"step: {rate:,.1f} images/s deterministic, {plain_rate:,.1f} without: "
                      f"{rate / plain_rate:.2f}x")
    peak = peak if peak is not None else peak_tflops(device, autocast)
    return {
        "benchmark": "step",
        "method": method_name,
        "device": str(device),
        "device_name": device_name(device),
        "threads": used_threads,
        "precision": "bf16" if autocast else "fp32",
        "compile": compile_,
        "deterministic": deterministic,
        "warmup_seconds": warmup_seconds,
        "backbone": backbone,
        "width": width,
        "batch_size": batch_size,
        "steps": steps,
        "image_size": list(image_size),
        "images_per_sec": rate,  # from the median step; the mean step's below
        "images_per_sec_mean": timing.mean,
        "step_seconds": batch_size / rate,
        "epoch_seconds_50k": EPOCH_IMAGES / rate,
        "forward_flops_per_image": forward,
        "flops_per_image": per_image,
        "achieved_tflops": achieved,
        "peak_tflops": peak,
        "fraction_of_peak": achieved / peak if peak else None,
        # --deterministic: the same steps without train.deterministic, and the ratio.
        "images_per_sec_nondeterministic": plain_rate,
        "deterministic_ratio": rate / plain_rate if plain_rate else None,
    }


class _Stepper:
    """One Training stepped as the loop steps it (a fresh random batch each call), under
    train.deterministic's settings (`threads` threads) if `pinned`; returns the images."""

    def __init__(self, training: Training, images: torch.Tensor, labels: torch.Tensor,
                 batch_size: int, pinned: bool, threads: int) -> None:
        self.training, self.images, self.labels = training, images, labels
        self.batch_size, self.pinned, self.threads = batch_size, pinned, threads
        self.step = 0
        self.loss_sum = torch.zeros((), device=images.device)
        training.method.train()
        training.head.train()

    def __call__(self) -> int:
        with deterministic_mode(self.pinned, self.threads, self.images.device):
            index = torch.randperm(self.images.shape[0], generator=self.training.generator,
                                   device=self.images.device)[:self.batch_size]
            loss, _ = self.training.step(self.images[index], self.labels[index], self.step)
        self.step += 1
        self.loss_sum += loss
        return self.batch_size


def _alternating(first: _Stepper, second: _Stepper, device: torch.device,
                 steps: int) -> tuple[Timing, Timing]:
    """`steps` timed steps of each, alternating (and which goes first): on a shared machine
    both meet the same busy and quiet moments, which keeps their ratio steady."""
    rounds: dict[int, list[Timing]] = {0: [], 1: []}
    for i in range(steps):
        for which in ((0, 1) if i % 2 == 0 else (1, 0)):
            run = (first, second)[which]
            rounds[which].append(time_rounds(run, device, 0.0, min_rounds=1))
    merged = [Timing([r for t in timings for r in t.rates], sum(t.images for t in timings),
                     sum(t.seconds for t in timings)) for timings in rounds.values()]
    return merged[0], merged[1]
