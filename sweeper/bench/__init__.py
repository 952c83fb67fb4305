"""`sweeper bench`: how fast augmentation, a training step and a sweep run on this machine.

Each benchmark is a function returning a plain dict of figures (the CLI only prints it):

- augment.py  `measure_augment`: the batched on-device augmentation against torchvision's
              per-image pipeline;
- step.py     `measure_step`: training images/s of the trainer's own step;
- flops.py    its FLOP floor and the GPU peak table;
- sweep.py    `measure_sweep`: the per-trial cost of Ray Tune + MLflow over a plain loop;
- scale.py    `measure_scale`: `sweeper status` and `report` on a sweep of N trials against
              MLflow's own listing of its runs;
- timing.py   shared helpers: device, threads, timed rounds and their medians;
- format.py   the printed table of a result;
- errors.py   BenchError (exit 2) and BenchFailed (exit 1).

Speed is measured here, never asserted: the figures depend on the machine and its load.
"""

from sweeper.bench.augment import load_images, measure_augment
from sweeper.bench.errors import BenchError, BenchFailed
from sweeper.bench.flops import forward_flops, peak_tflops, training_flops_per_image
from sweeper.bench.format import Result, format_result
from sweeper.bench.scale import measure_scale
from sweeper.bench.step import measure_step
from sweeper.bench.sweep import measure_sweep
from sweeper.bench.timing import resolve_device, torch_threads

__all__ = [
    "BenchError",
    "BenchFailed",
    "Result",
    "format_result",
    "forward_flops",
    "load_images",
    "measure_augment",
    "measure_scale",
    "measure_step",
    "measure_sweep",
    "peak_tflops",
    "resolve_device",
    "torch_threads",
    "training_flops_per_image",
]
