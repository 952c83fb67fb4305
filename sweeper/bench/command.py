"""`sweeper bench` on the command line: arguments and dispatch only.

Kept free of torch at import time so that every other `sweeper` command starts
fast; the measurements live in the sweeper.bench package.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path

from sweeper.errors import EXIT_OK
from trainers.methods import method_names


def _int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= minimum, with a message naming the bad value."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


_positive_int = _int_at_least(1)
_non_negative_int = _int_at_least(0)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """`sweeper bench augment|step|sweep|scale|handover` and their options."""
    benches = parser.add_subparsers(dest="bench", required=True,
                                    metavar="{augment,step,sweep,scale,handover}",
                                    parser_class=type(parser))

    def common(sub: argparse.ArgumentParser, batch_size: int) -> None:
        sub.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda if present)")
        sub.add_argument("--batch-size", type=_positive_int, default=batch_size,
                         help=f"training images per batch (default {batch_size}); augment "
                              "makes both views of each in one call, as a training step does")
        sub.add_argument("--threads", type=_positive_int,
                         help="CPU threads for torch (default: torch's own choice)")
        sub.add_argument("--json", action="store_true",
                         help="also print the result as one JSON object on the last line")

    augment = benches.add_parser(
        "augment", help="batched on-device augmentation vs torchvision's per-image pipeline")
    common(augment, 512)
    augment.add_argument("--data-root", help="an image_folder tree (train/<class>/*.jpg) "
                         "instead of the built-in synthetic images")
    augment.add_argument("--seconds", type=_positive_float, default=3.0,
                         help="time each side for about this long (default 3)")
    augment.add_argument("--strength", type=float, default=0.5,
                         help="colour-jitter strength s (default 0.5)")
    augment.add_argument("--blur", action="store_true", help="include the Gaussian blur")
    augment.add_argument("--baseline-threads", type=_non_negative_int, default=1,
                         help="threads for the per-image baseline (default 1, as in a "
                              "DataLoader worker; 0: the same as --threads)")

    step = benches.add_parser("step", help="training images/s and the FLOP floor")
    common(step, 512)
    step.add_argument("--method", choices=method_names(), default="simclr")
    step.add_argument("--backbone", choices=["resnet18", "resnet50"], default="resnet18")
    step.add_argument("--width", type=_positive_int, default=64,
                      help="channels of the first stage (default 64, the standard ResNet)")
    step.add_argument("--steps", type=_positive_int, default=20,
                      help="timed steps (default 20)")
    step.add_argument("--warmup", type=_non_negative_int, default=3,
                      help="untimed steps first (default 3)")
    step.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                      help="as train.precision (default auto: bf16 on CUDA and AMX CPUs)")
    step.add_argument("--compile", action="store_true",
                      help="as train.compile: torch.compile the loss (the warm-up compiles)")
    step.add_argument("--deterministic", action="store_true",
                      help="as train.deterministic; also times the same steps without it, "
                           "alternating, for what it costs")
    step.add_argument("--peak-tflops", type=_positive_float,
                      help="the device's peak TFLOP/s (default: a table of CUDA GPUs)")

    sweep = benches.add_parser("sweep", help="orchestration overhead per trial (Ray + MLflow)")
    sweep.add_argument("--trials", type=_positive_int, default=8,
                       help="trivial trials to run both ways (default 8)")
    sweep.add_argument("--search", choices=["grid", "optuna"], default="grid",
                       help="a grid over seeds (default), or Optuna sampling a continuous "
                            "temperature")
    sweep.add_argument("--sampler", choices=["tpe", "random"], default="tpe",
                       help="--search optuna: the sampler (default tpe)")
    sweep.add_argument("--loop-trials", type=_positive_int,
                       help="trials the plain loop times, scaled to --trials (default: all, "
                            "at most 50)")
    sweep.add_argument("--tune-floor", action="store_true",
                       help="also run the same sweep through Tune alone (trials that train "
                            "nothing, no MLflow): Tune's own cost per trial")
    sweep.add_argument("--json", action="store_true",
                       help="also print the result as one JSON object on the last line")

    scale = benches.add_parser(
        "scale", help="sweeper status and report on a sweep of N trials, against MLflow's "
                      "own listing of its runs")
    scale.add_argument("--trials", type=_positive_int, required=True,
                       help="trial runs in the synthetic sweep (e.g. 10000)")
    scale.add_argument("--epochs", type=_positive_int, default=11,
                       help="epochs per trial: metric steps 0..EPOCHS (default 11)")
    scale.add_argument("--tracking-uri",
                       help="the store to write and read (default: an SQLite file in --keep "
                            "or a temporary folder); http://... for a tracking server")
    scale.add_argument("--keep", type=Path, metavar="DIR",
                       help="keep the SQLite store, the report and the commands' output in "
                            "DIR; a later run with the same DIR, --trials and --epochs reuses "
                            "the store")
    scale.add_argument("--writer", choices=["mlflow", "sql"], default="mlflow",
                       help="how the store's trial runs are written: mlflow (default) through "
                            "MLflow's API, 0.2-0.4 s a trial; sql: the first so, the others "
                            "as the same rows inserted into the SQLite store, in seconds")
    scale.add_argument("--json", action="store_true",
                       help="also print the result as one JSON object on the last line")

    handover = benches.add_parser(
        "handover", help="a Ray actor call beside a busy thread, at Python's default GIL "
                         "switch interval and at the driver's")
    handover.add_argument("--calls", type=_positive_int, default=300,
                          help="timed calls each way (default 300)")
    handover.add_argument("--json", action="store_true",
                          help="also print the result as one JSON object on the last line")


def run_bench(args: argparse.Namespace) -> int:
    """Run the chosen benchmark, print its table (and JSON line); the exit code."""
    import torch

    from sweeper.bench import (
        BenchFailed,
        format_result,
        load_images,
        measure_augment,
        measure_handover,
        measure_scale,
        measure_step,
        measure_sweep,
        resolve_device,
        torch_threads,
    )

    try:
        if args.bench == "augment":
            device = resolve_device(args.device)
            with torch_threads(args.threads):
                images = load_images(max(2048, args.batch_size), args.data_root)
            result = measure_augment(
                images, device, args.batch_size, args.seconds, args.strength, args.blur,
                threads=args.threads, baseline_threads=args.baseline_threads or None,
                progress=sys.stderr)
        elif args.bench == "step":
            result = measure_step(
                args.method, resolve_device(args.device), args.batch_size, args.backbone,
                args.width, args.steps, args.warmup, args.precision, args.peak_tflops,
                threads=args.threads, progress=sys.stderr, compile_=args.compile,
                deterministic=args.deterministic)
        elif args.bench == "sweep":
            result = measure_sweep(args.trials, progress=sys.stderr, search=args.search,
                                   sampler=args.sampler, loop_trials=args.loop_trials,
                                   tune_floor=args.tune_floor)
        elif args.bench == "handover":
            result = measure_handover(args.calls, progress=sys.stderr)
        else:
            result = measure_scale(args.trials, args.epochs, args.tracking_uri, args.keep,
                                   progress=sys.stderr, writer=args.writer)
    except torch.OutOfMemoryError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "out of memory"
        raise BenchFailed(f"out of memory at batch size {args.batch_size}: {first}") from None
    print(format_result(result))
    if args.json:
        print(json.dumps(result, sort_keys=True))
    return EXIT_OK


