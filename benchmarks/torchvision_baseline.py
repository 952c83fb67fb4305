"""An independent check of `sweeper bench augment`'s baseline: torchvision's classic
per-image SimCLR pipeline timed with nothing from this project, one thread (as in a
DataLoader worker), on PIL images and on uint8 tensors.

    .venv/bin/python benchmarks/torchvision_baseline.py [--data-root DIR] [--strength 0.5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torchvision import transforms as T
from torchvision.transforms import v2


def load(data_root: str | None, count: int) -> list[Image.Image]:
    if data_root:
        files = sorted(p for p in Path(data_root).rglob("*") if p.suffix.lower() in
                       (".png", ".jpg", ".jpeg"))[:count]
        return [Image.open(p).convert("RGB").resize((32, 32)) for p in files]
    pixels = torch.randint(0, 256, (count, 32, 32, 3), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    return [Image.fromarray(p.numpy()) for p in pixels]


def rate(pipeline: Callable[[Any], Any], items: list[Any], rounds: int = 7,
         per_round: int = 256) -> float:
    for item in items[:32]:
        pipeline(item)
    rates = []
    for r in range(rounds):
        start = time.perf_counter()
        for i in range(per_round):
            pipeline(items[(r * per_round + i) % len(items)])
        rates.append(per_round / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root")
    parser.add_argument("--strength", type=float, default=0.5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    s = args.strength
    pils = load(args.data_root, 512)
    tensors = [T.functional.pil_to_tensor(p) for p in pils]
    classic = T.Compose([
        T.RandomResizedCrop(32), T.RandomHorizontalFlip(),
        T.RandomApply([T.ColorJitter(0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s)], p=0.8),
        T.RandomGrayscale(0.2), T.ToTensor()])
    tensor_v2 = v2.Compose([
        v2.RandomResizedCrop(32, antialias=True), v2.RandomHorizontalFlip(),
        v2.RandomApply([v2.ColorJitter(0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s)], p=0.8),
        v2.RandomGrayscale(0.2), v2.ToDtype(torch.float32, scale=True)])
    for name, pipeline, items in (("classic transforms on PIL images", classic, pils),
                                  ("v2 transforms on uint8 tensors", tensor_v2, tensors)):
        print(f"torchvision {name:34s} {rate(pipeline, items):8,.0f} images/s")


if __name__ == "__main__":
    main()
