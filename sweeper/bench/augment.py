"""`sweeper bench augment`: images/s of the batched on-device `simclr_augment` against
torchvision's per-image pipeline with the same parameters.

The batched side augments both views of a training batch per call, as the trainer calls
it; the baseline makes one view per call, one image at a time on the CPU, as a DataLoader
worker does, in this process. The faster of its two forms (tensors, PIL) is the baseline.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TextIO

import torch
from PIL import Image

from sweeper.bench.errors import BenchError
from sweeper.bench.format import Result, say
from sweeper.bench.timing import Contender, device_name, interleaved_rates
from trainers.augment import simclr_augment, torchvision_pipeline
from trainers.config import DatasetConfig
from trainers.data import DatasetError, load_dataset, make_synthetic
from trainers.loop import VIEWS
from trainers.memory import retain_freed_memory


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

    retain_freed_memory()  # as `sweeper trial` and the Ray workers do
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
    size = min(height, width)
    cpu_images = images.cpu()
    pil_images = [Image.fromarray(image.permute(1, 2, 0).numpy()) for image in cpu_images]
    cpu = torch.device("cpu")
    used_threads = threads if threads is not None else torch.get_num_threads()
    used_baseline_threads = baseline_threads if baseline_threads is not None else used_threads
    contenders = [
        Contender("batched", batched, device, used_threads, 4),
        Contender("tensor", _per_image(torchvision_pipeline(size, strength, blur),
                                       list(cpu_images)), cpu, used_baseline_threads, 64),
        Contender("pil", _per_image(torchvision_pipeline(size, strength, blur, pil=True),
                                    pil_images), cpu, used_baseline_threads, 64),
    ]
    say(progress, f"augment: batched simclr_augment (batch {batch_size}: "
                  f"{VIEWS * batch_size} views per call on {device}, "
                  f"{used_threads} thread(s)) against torchvision per image on tensors "
                  f"and on PIL images (cpu, {used_baseline_threads} thread(s)), "
                  f"interleaved for {3 * seconds:g} s")
    rates = interleaved_rates(contenders, 3 * seconds)
    batched_rate = rates.pop("batched")
    baseline_kind = max(rates, key=rates.__getitem__)
    baseline_rate = rates[baseline_kind]

    return {
        "benchmark": "augment",
        "device": str(device),
        "device_name": device_name(device),
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


def _per_image(pipeline: Callable[[Any], object], inputs: list[Any]) -> Callable[[], int]:
    index = 0

    def one() -> int:
        nonlocal index
        pipeline(inputs[index % len(inputs)])
        index += 1
        return 1

    return one
