"""`sweeper bench`: how fast augmentation, a training step and a sweep run on this machine.

Each benchmark is a function returning a plain dict of figures (the CLI only prints it):

- augment.py  `measure_augment`: the batched on-device augmentation against torchvision's
              per-image pipeline;
- step.py     `measure_step`: training images/s of the trainer's own step;
- flops.py    its FLOP floor and the GPU peak table;
- sweep.py    `measure_sweep`: the per-trial cost of Ray Tune + MLflow over a plain loop;
- scale.py    `measure_scale`: `sweeper status` and `report` on a sweep of N trials against
              MLflow's own listing of its runs, and a resume's re-attachment (reattach.py);
              the sweep from scale_trials.py, written by scale_store.py (bulk_store.py for
              `--writer sql`), each command timed by measured.py;
- handover.py `measure_handover`: a Ray actor call's round trip beside a busy thread, at
              Python's default GIL switch interval and at the driver's;
- timing.py   shared helpers: device, threads, timed rounds and their medians;
- format.py   the printed table of a result;
- errors.py   BenchError (exit 2) and BenchFailed (exit 1).

Speed is measured here, never asserted: the figures depend on the machine and its load.
"""

from __future__ import annotations

import importlib
from typing import Any

# Each name's module, imported on first use: `sweeper bench`'s arguments (command.py) are
# built for every command, which must not pay for torch.
_HOMES = {
    "load_images": "augment", "measure_augment": "augment",
    "BenchError": "errors", "BenchFailed": "errors",
    "forward_flops": "flops", "peak_tflops": "flops", "training_flops_per_image": "flops",
    "Result": "format", "format_result": "format",
    "measure_step": "step", "measure_sweep": "sweep", "measure_scale": "scale",
    "measure_handover": "handover",
    "resolve_device": "timing", "torch_threads": "timing",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'sweeper.bench' has no attribute {name!r}")
    return getattr(importlib.import_module(f"sweeper.bench.{_HOMES[name]}"), name)


__all__ = [
    "BenchError",
    "BenchFailed",
    "Result",
    "format_result",
    "forward_flops",
    "load_images",
    "measure_augment",
    "measure_handover",
    "measure_scale",
    "measure_step",
    "measure_sweep",
    "peak_tflops",
    "resolve_device",
    "torch_threads",
    "training_flops_per_image",
]
