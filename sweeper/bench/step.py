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
from sweeper.bench.timing import device_name, sync, time_rounds, torch_threads
from trainers.config import ModelConfig, TrainConfig
from trainers.data import make_synthetic
from trainers.loop import build_training
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
) -> Result:
    """Training images/s of `steps` steps taken as trainers.loop takes them, after `warmup`
    untimed ones, with the FLOP floor and the fraction of the peak (`peak` TFLOP/s, else
    looked up for CUDA devices) it reaches. `compile_` as train.compile: the warm-up steps
    include the compilation, reported as `warmup_seconds`."""
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
        training = build_training(method_name, model_cfg, train, 10, device, warmup + steps,
                                  warmup)
        method, head, autocast = training.method, training.head, training.autocast
        forward, per_image = training_flops_per_image(method, image_size)
        step = 0
        loss_sum = torch.zeros((), device=device)

        def one_step() -> int:
            nonlocal step, loss_sum
            index = torch.randperm(images.shape[0], generator=training.generator,
                                   device=device)[:batch_size]
            loss, _ = training.step(images[index], labels[index], step)
            step += 1
            loss_sum += loss
            return batch_size

        method.train()
        head.train()
        say(progress, f"step: {method_name} {backbone} width {width}, batch {batch_size} "
                      f"on {device} ({'bf16' if autocast else 'fp32'}"
                      f"{', compiled' if compile_ else ''}), "
                      f"{warmup} warm-up + {steps} timed steps")
        warmup_started = time.perf_counter()
        for _ in range(warmup):
            one_step()
        sync(device)
        warmup_seconds = time.perf_counter() - warmup_started
        timing = time_rounds(one_step, device, 0.0, min_rounds=steps)
        if not math.isfinite(loss_sum.item()):
            raise BenchFailed(f"the {method_name} loss became NaN while benchmarking")

    rate = timing.median
    achieved = rate * per_image / 1e12
    peak = peak if peak is not None else peak_tflops(device, autocast)
    return {
        "benchmark": "step",
        "method": method_name,
        "device": str(device),
        "device_name": device_name(device),
        "threads": used_threads,
        "precision": "bf16" if autocast else "fp32",
        "compile": compile_,
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
    }
