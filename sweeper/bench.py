"""`sweeper bench`: how fast augmentation, a training step and a sweep run on this machine.

Three measurements, each a small function returning a plain dict (the CLI only formats it):

- `measure_augment`: images/s of the batched on-device `simclr_augment` (both views of a
  training batch per call, as the trainer calls it) against torchvision's per-image
  pipeline with the same parameters, one image at a time on CPU (what a DataLoader worker
  does), in this process;
- `measure_step`: training images/s of one step exactly as `trainers.loop` takes it (two
  augmented views, forward, backward, optimizer step, BYOL's target update), against the
  FLOP floor of the model counted with `FlopCounterMode`;
- `measure_sweep`: the per-trial cost of running trivial trials through `run_sweep`
  (Ray Tune + MLflow) rather than in a plain loop over `trainers.loop.fit`.

Rates are medians over timed rounds (one step, one batch, 64 images): on a quiet machine
the same as the mean, on a shared one robust to the stalls other processes cause. Speed is
measured here, never asserted: the figures depend on the machine and its load.
"""

from __future__ import annotations

import contextlib
import io
import math
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import torch
from PIL import Image
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from trainers.augment import simclr_augment, torchvision_pipeline
from trainers.byol import BYOL
from trainers.config import DatasetConfig, ModelConfig, TrainConfig
from trainers.data import DatasetError, load_dataset, make_synthetic
from trainers.loop import VIEWS, build_training
from trainers.memory import retain_freed_memory
from trainers.methods import METHODS
from trainers.simclr import SimCLR

EPOCH_IMAGES = 50_000  # one CIFAR-10 epoch
# Dense bf16 tensor-core peaks (TFLOP/s) from the vendors' data sheets, matched against
# torch.cuda.get_device_name in this order (most specific first). Autocast trains in bf16
# on CUDA, so the bf16 peak is the right ceiling; anything else needs --peak-tflops.
PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H200", 989.0),
    ("H100 PCIe", 756.0),
    ("H100", 989.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L40", 181.0),
    ("A10", 125.0),
    ("L4", 121.0),
)


class BenchError(Exception):
    """A bad argument or an unusable device/dataset: the CLI prints it and exits 2."""


class BenchFailed(RuntimeError):
    """The measured work itself failed (a NaN loss, a failed sweep trial): exit 1."""


Result = dict[str, Any]


# --- shared helpers ---------------------------------------------------------------------

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


def _sync(device: torch.device) -> None:
    """CUDA runs asynchronously: wait for queued work before reading the clock."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


@contextlib.contextmanager
def _threads(count: int | None) -> Iterator[int]:
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


def _time_rounds(run: Callable[[], int], device: torch.device, seconds: float,
                 min_rounds: int, calls_per_round: int = 1) -> Timing:
    """Rounds of `calls_per_round` calls of `run` (which returns how many images it did),
    for at least `seconds` and `min_rounds` rounds; each round ends with a CUDA sync."""
    rates: list[float] = []
    images = 0
    _sync(device)
    started = time.perf_counter()
    while len(rates) < min_rounds or time.perf_counter() - started < seconds:
        round_started = time.perf_counter()
        done = sum(run() for _ in range(calls_per_round))
        _sync(device)
        rates.append(done / (time.perf_counter() - round_started))
        images += done
    return Timing(rates, images, time.perf_counter() - started)


def _progress(stream: TextIO | None, message: str) -> None:
    if stream is not None:
        print(message, file=stream, flush=True)


def load_images(count: int, data_root: str | None = None, seed: int = 0) -> torch.Tensor:
    """`count` uint8 [N, 3, H, W] images: built-in synthetic shapes (32x32, CIFAR-sized), or
    the first `count` training images (a seeded slice) of an image_folder tree."""
    if count <= 0:
        raise BenchError(f"need a positive number of images, got {count}")
    if data_root is None:
        return make_synthetic(count, seed)[0]
    try:
        cfg = DatasetConfig(name="image_folder", root=data_root, train_size=count, test_size=1)
        images = load_dataset(cfg).train_images
    except (DatasetError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
        raise BenchError(f"--data-root {data_root}: {exc}") from None
    if images.shape[0] < count:  # a small tree: cycle it so every batch is full
        images = images.repeat(math.ceil(count / images.shape[0]), 1, 1, 1)[:count]
    return images


# --- augment ------------------------------------------------------------------------------

def measure_augment(
    images: torch.Tensor,
    device: torch.device,
    batch_size: int = 512,
    seconds: float = 3.0,
    strength: float = 0.5,
    blur: bool = False,
    threads: int | None = None,
    baseline_threads: int | None = 1,
    progress: TextIO | None = None,
) -> Result:
    """Images/s (augmented views) of `simclr_augment` on uint8 batches on `device` and of
    the per-image torchvision pipeline on CPU, timed in alternating rounds for about
    3 * `seconds` after a warm-up.

    Each call augments both views of a `batch_size`-image training batch (2 * batch_size
    views), exactly as `Training.step` calls it; the baseline makes one view per call.

    The baseline runs with `baseline_threads` (1, as torch sets in every DataLoader worker;
    None: the same as the batched path), the batched path with `threads` (None: as set).
    """
    if baseline_threads is None:
        baseline_threads = threads
    if batch_size <= 0:
        raise BenchError(f"batch size must be positive, got {batch_size}")
    if not 0 <= strength <= 2.5:  # torchvision's ColorJitter rejects a hue range over 0.5
        raise BenchError(f"--strength must be in [0, 2.5], got {strength}")
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
        raise BenchError(f"expected uint8 [N, 3, H, W] images, got {images.dtype} "
                         f"{tuple(images.shape)}")
    pool = images.shape[0]
    if pool < batch_size:  # cycle the pool so that every batch is full-size
        images = images.repeat(math.ceil(batch_size / pool), 1, 1, 1)
        pool = images.shape[0]
    height, width = images.shape[2:]

    retain_freed_memory()  # as build_training does for the trainer
    on_device = images.to(device)
    generator = torch.Generator(device=device).manual_seed(0)
    starts = list(range(0, pool - batch_size + 1, batch_size))
    cursor = 0

    def batched() -> int:
        nonlocal cursor
        start = starts[cursor % len(starts)]
        cursor += 1
        simclr_augment(on_device[start : start + batch_size], strength, blur, generator,
                       views=VIEWS)
        return VIEWS * batch_size

    # The per-image references, one image at a time as a Dataset's __getitem__ hands it to
    # the transform in a DataLoader worker: a CHW uint8 tensor through torchvision's tensor
    # kernels, and a PIL image (as torchvision's CIFAR10 gives) through PIL's kernels.
    # The faster of the two is the baseline.
    size = min(height, width)
    cpu_images = images.cpu()
    pil_images = [Image.fromarray(image.permute(1, 2, 0).numpy()) for image in cpu_images]
    cpu = torch.device("cpu")
    used_threads = threads if threads is not None else torch.get_num_threads()
    used_baseline_threads = baseline_threads if baseline_threads is not None else used_threads
    contenders = [
        _Contender("batched", batched, device, used_threads, 4),
        _Contender("tensor", _per_image(torchvision_pipeline(size, strength, blur),
                                        list(cpu_images)), cpu, used_baseline_threads, 64),
        _Contender("pil", _per_image(torchvision_pipeline(size, strength, blur, pil=True),
                                     pil_images), cpu, used_baseline_threads, 64),
    ]
    _progress(progress, f"augment: batched simclr_augment (batch {batch_size}: "
                        f"{VIEWS * batch_size} views per call on {device}, "
                        f"{used_threads} thread(s)) against torchvision per image on tensors "
                        f"and on PIL images (cpu, {used_baseline_threads} thread(s)), "
                        f"interleaved for {3 * seconds:g} s")
    rates = _interleaved_rates(contenders, 3 * seconds)
    batched_rate = rates.pop("batched")
    baseline_kind = max(rates, key=rates.__getitem__)
    baseline_rate = rates[baseline_kind]

    return {
        "benchmark": "augment",
        "device": str(device),
        "device_name": _device_name(device),
        "batch_size": batch_size,
        "views_per_call": VIEWS * batch_size,
        "image_size": [int(height), int(width)],
        "strength": strength,
        "blur": blur,
        "threads": used_threads,
        "baseline_threads": used_baseline_threads,
        "images_per_sec": batched_rate,
        "baseline_images_per_sec": baseline_rate,
        "baseline": baseline_kind,
        "baseline_tensor_images_per_sec": rates["tensor"],
        "baseline_pil_images_per_sec": rates["pil"],
        "ratio": batched_rate / baseline_rate,
    }


@dataclass(frozen=True)
class _Contender:
    name: str
    run: Callable[[], int]  # does some images, returns how many
    device: torch.device
    threads: int
    calls_per_round: int


def _per_image(pipeline: Callable[[Any], object], inputs: list[Any]) -> Callable[[], int]:
    index = 0

    def one() -> int:
        nonlocal index
        pipeline(inputs[index % len(inputs)])
        index += 1
        return 1

    return one


def _interleaved_rates(contenders: list[_Contender], seconds: float) -> dict[str, float]:
    """Median images/s of each contender, timed in alternating rounds for `seconds` in
    all (after one warm-up round each): on a shared machine every contender meets the
    same slow and fast moments, which keeps their ratio steady."""
    rounds: dict[str, list[float]] = {c.name: [] for c in contenders}
    started = time.perf_counter()
    cycle = 0
    while cycle < 4 or time.perf_counter() - started < seconds:
        for c in contenders:
            with _threads(c.threads):
                timing = _time_rounds(c.run, c.device, 0.0, min_rounds=1,
                                      calls_per_round=c.calls_per_round)
            if cycle > 0:  # the first cycle warms up the allocator, kernels and caches
                rounds[c.name] += timing.rates
        cycle += 1
    return {name: statistics.median(rates) for name, rates in rounds.items()}


# --- step ---------------------------------------------------------------------------------

def forward_flops(module: nn.Module, example: torch.Tensor) -> int:
    """FLOPs (2 per multiply-add, as FlopCounterMode counts) of one forward pass of `module`
    on `example`, in eval mode and without autograd; only matmuls and convolutions count,
    which is what bounds a ResNet."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            module(example)
    finally:
        module.train(was_training)
    return int(counter.get_total_flops())


def training_flops_per_image(method: SimCLR | BYOL, image_size: tuple[int, int]) -> tuple[int, int]:
    """(forward FLOPs of the trained network for one image, training FLOPs per image).

    The usual floor: a training pass costs 3x its forward (backward ~2x); both methods train
    on two views; BYOL also runs its target network forward on both views.
    """
    device = next(method.parameters()).device
    example = torch.zeros(1, 3, *image_size, device=device)
    if isinstance(method, BYOL):
        online = nn.Sequential(method.encoder, method.projector, method.predictor)
        target = nn.Sequential(method.target_encoder, method.target_projector)
        forward = forward_flops(online, example)
        return forward, 2 * 3 * forward + 2 * forward_flops(target, example)
    forward = forward_flops(nn.Sequential(method.encoder, method.projector), example)
    return forward, 2 * 3 * forward


def peak_tflops(device: torch.device, bf16: bool) -> float | None:
    """The device's dense bf16 peak from PEAK_BF16_TFLOPS, or None when unknown."""
    if device.type != "cuda" or not bf16:
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_BF16_TFLOPS if key in name), None)


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
        raise BenchError(f"unknown method {method_name!r}; choose one of {sorted(METHODS)}")
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

    with _threads(threads) as used_threads:
        # Two batches' worth of images, drawn in a fresh random order each step as the
        # loop's per-epoch permutation draws them.
        images, labels = make_synthetic(2 * batch_size, seed=0)
        images, labels = images.to(device), labels.to(device)
        image_size = (int(images.shape[2]), int(images.shape[3]))

        # The loop's own set-up and step (trainers.loop.Training).
        total_steps = warmup + steps
        training = build_training(method_name, model_cfg, train, 10, device, total_steps,
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
        _progress(progress, f"step: {method_name} {backbone} width {width}, batch {batch_size} "
                            f"on {device} ({'bf16' if autocast else 'fp32'}"
                            f"{', compiled' if compile_ else ''}), "
                            f"{warmup} warm-up + {steps} timed steps")
        warmup_started = time.perf_counter()
        for _ in range(warmup):
            one_step()
        _sync(device)
        warmup_seconds = time.perf_counter() - warmup_started
        timing = _time_rounds(one_step, device, 0.0, min_rounds=steps)
        if not math.isfinite(loss_sum.item()):
            raise BenchFailed(f"the {method_name} loss became NaN while benchmarking")

    rate = timing.median
    achieved = rate * per_image / 1e12
    peak = peak if peak is not None else peak_tflops(device, autocast)
    return {
        "benchmark": "step",
        "method": method_name,
        "device": str(device),
        "device_name": _device_name(device),
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


# --- sweep --------------------------------------------------------------------------------

SWEEP_SPEC = """\
name: bench-sweep
method: simclr
dataset: {{name: synthetic, synthetic_train_size: {train}, synthetic_test_size: {test}}}
model: {{width: 4, hidden_dim: 16, projection_dim: 8}}
train: {{epochs: 1, batch_size: 16, warmup_epochs: 0, optimizer: adamw, learning_rate: 0.01}}
eval: {{protocol: online_linear}}
resources: {{cpu: 1, gpu: 0}}
max_concurrent_trials: 1
max_failures: 0
search:
  seeds: [{seeds}]
"""


class _FinishTimes(io.TextIOBase):
    """The driver's progress stream, passed through, noting when each trial finished
    (its '<name> finished' line) so the steady per-trial cost can be told from start-up."""

    def __init__(self, forward: TextIO | None) -> None:
        self.forward = forward
        self.finished: list[float] = []

    def write(self, text: str) -> int:
        if " finished" in text:
            self.finished.append(time.perf_counter())
        if self.forward is not None:
            self.forward.write(text)
        return len(text)

    def flush(self) -> None:
        if self.forward is not None:
            self.forward.flush()


def measure_sweep(trials: int = 8, train_images: int = 32, test_images: int = 16,
                  progress: TextIO | None = None) -> Result:
    """Wall time of `trials` trivial trials through `run_sweep` (one at a time, temporary
    results folder and SQLite MLflow store) against the same trials in a plain loop over
    `trainers.loop.fit`, both with one thread per trial as the sweep's workers use.

    One-off costs are timed apart: importing and starting Ray (`ray_start_seconds`, 0 when
    Ray was already running) and creating the MLflow store (`store_setup_seconds`).
    `marginal_overhead_per_trial_s` is the steady cost from the first trial's end to the
    last's, per trial, less the loop's per-trial time (None for a single trial).
    """
    if trials <= 0:
        raise BenchError(f"--trials must be positive, got {trials}")
    from sweeper.spec import expand, parse_spec
    from trainers.loop import fit

    text = SWEEP_SPEC.format(train=train_images, test=test_images,
                             seeds=", ".join(str(i) for i in range(trials)))
    spec = parse_spec(text, source="<bench sweep>")
    configs = [t.config for t in expand(spec)]

    with _threads(1), tempfile.TemporaryDirectory(prefix="sweeper-bench-") as folder:
        _progress(progress, f"sweep: {trials} trial(s) in a plain loop over trainers.loop.fit")
        fit(configs[0])  # untimed: first-call costs (kernels, caches) belong to neither side
        started = time.perf_counter()
        for cfg in configs:
            fit(cfg)
        loop_seconds = time.perf_counter() - started

        _progress(progress, "sweep: starting Ray")
        started = time.perf_counter()
        import ray

        from sweeper.driver import SweepOptions, init_ray, run_sweep
        started_ray = not ray.is_initialized()
        init_ray(None)
        ray_start = time.perf_counter() - started if started_ray else 0.0
        try:
            from mlflow.tracking import MlflowClient

            uri = f"sqlite:///{Path(folder) / 'mlflow.db'}"
            started = time.perf_counter()
            MlflowClient(uri).search_experiments(max_results=1)  # creates the SQLite schema
            store_setup = time.perf_counter() - started

            _progress(progress, f"sweep: {trials} trial(s) through run_sweep")
            options = SweepOptions(storage=Path(folder) / "results", tracking_uri=uri)
            times = _FinishTimes(progress)
            sweep_started = time.perf_counter()
            outcome = run_sweep(spec, text, options, progress=times)  # type: ignore[arg-type]
            sweep_seconds = time.perf_counter() - sweep_started
        finally:
            if started_ray:  # leave Ray as we found it
                ray.shutdown()
    if outcome.failed or len(outcome.finished) != trials:
        errors = "; ".join(f"{name}: {error}" for name, error in outcome.failed)
        raise BenchFailed(f"only {len(outcome.finished)}/{trials} benchmark trials finished"
                           + (f" ({errors})" if errors else ""))

    loop_per_trial = loop_seconds / trials
    marginal = None
    if trials > 1 and len(times.finished) == trials:
        steady = (times.finished[-1] - times.finished[0]) / (trials - 1)
        marginal = steady - loop_per_trial
    return {
        "benchmark": "sweep",
        "trials": trials,
        "threads_per_trial": 1,
        "sweep_seconds": sweep_seconds,
        "loop_seconds": loop_seconds,
        "overhead_per_trial_s": (sweep_seconds - loop_seconds) / trials,
        "marginal_overhead_per_trial_s": marginal,
        # Tuner set-up, the worker's start and the first trial: mostly one-off.
        "first_trial_seconds": times.finished[0] - sweep_started if times.finished else None,
        "ray_start_seconds": ray_start,
        "store_setup_seconds": store_setup,
    }


def _num(value: float | None, digits: int = 1, unit: str = "") -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}{unit}"


def format_result(result: Result) -> str:
    """The human table of one benchmark's result."""
    kind = result["benchmark"]
    if kind == "augment":
        h, w = result["image_size"]
        rows = [
            (f"augment on {result['device_name']}, batch {result['batch_size']} "
             f"({result['views_per_call']} views per call), {h}x{w}, "
             f"strength {result['strength']}, blur {'on' if result['blur'] else 'off'}", ""),
            (f"batched simclr_augment ({result['device']}, {result['threads']} threads)",
             _num(result["images_per_sec"], 0, " images/s")),
            (f"torchvision per image, tensors (cpu, {result['baseline_threads']} threads)",
             _num(result["baseline_tensor_images_per_sec"], 0, " images/s")),
            (f"torchvision per image, PIL (cpu, {result['baseline_threads']} threads)",
             _num(result["baseline_pil_images_per_sec"], 0, " images/s")),
            (f"ratio (to the faster, {result['baseline']})", _num(result["ratio"], 1, "x")),
        ]
    elif kind == "step":
        peak = result["peak_tflops"]
        rows = [
            (f"step: {result['method']} {result['backbone']} width {result['width']}, batch "
             f"{result['batch_size']}, {result['precision']}"
             f"{', compiled' if result['compile'] else ''} on {result['device_name']}", ""),
            ("training throughput (median step)", _num(result["images_per_sec"], 1, " images/s")),
            ("  mean over the steps", _num(result["images_per_sec_mean"], 1, " images/s")),
            ("seconds per 50k-image epoch", _num(result["epoch_seconds_50k"], 1, " s")),
            ("untimed warm-up" + (" (incl. compiling)" if result["compile"] else ""),
             _num(result["warmup_seconds"], 1, " s")),
            ("forward GFLOP per image", _num(result["forward_flops_per_image"] / 1e9, 3)),
            ("training GFLOP per image", _num(result["flops_per_image"] / 1e9, 3)),
            ("achieved", _num(result["achieved_tflops"] * 1e3, 1, " GFLOP/s")),
            ("peak", _num(peak, 0, " TFLOP/s") if peak else "unknown (--peak-tflops)"),
            ("fraction of peak", _num(result["fraction_of_peak"] and
                                      100 * result["fraction_of_peak"], 1, "%")),
        ]
    else:
        rows = [
            (f"sweep: {result['trials']} trivial trials, one at a time, "
             f"{result['threads_per_trial']} thread each", ""),
            ("plain loop over fit", _num(result["loop_seconds"], 2, " s")),
            ("run_sweep (Ray already up)", _num(result["sweep_seconds"], 2, " s")),
            ("overhead per trial", _num(result["overhead_per_trial_s"], 2, " s")),
            ("  steady (after the first trial)",
             _num(result["marginal_overhead_per_trial_s"], 2, " s")),
            ("  first trial (incl. Tuner + worker start)",
             _num(result["first_trial_seconds"], 2, " s")),
            ("Ray import + start (one-off)", _num(result["ray_start_seconds"], 2, " s")),
            ("MLflow store creation (one-off)", _num(result["store_setup_seconds"], 2, " s")),
        ]
    title, _ = rows[0]
    width = max(len(label) for label, _ in rows[1:])
    return "\n".join([title, *(f"  {label:<{width}}  {value}" for label, value in rows[1:])])
