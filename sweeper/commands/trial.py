"""`sweeper trial SPEC`: one trial of a spec in the foreground (no Ray), printing a line
per epoch."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import TextIO

from sweeper.commands import read_user_spec
from sweeper.errors import EXIT_OK, SweeperError
from sweeper.search import trial_at
from sweeper.spec.trials import Trial
from trainers.checkpoint import CheckpointError, CheckpointState
from trainers.data import DatasetError
from trainers.loop import DeviceUnavailable, Metrics, TrainingDiverged, TrialInfeasible, fit
from trainers.memory import retain_freed_memory
from trainers.metrics import HEADLINE, TABLE_COLUMNS, short


class TrialFailed(SweeperError):
    """A trial could not finish; `exit_code` is 2 for a user mistake, 1 otherwise."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def run_trial(trial: Trial, progress: TextIO | None = None,
              on_epoch: Callable[[Metrics], None] | None = None) -> Metrics:
    """Train `trial` to the end; per-epoch progress goes to `progress`, and each epoch's
    metrics to `on_epoch` (called inside the trial: its settings, e.g. its threads, hold)."""
    cfg = trial.config
    started = time.perf_counter()

    def report(metrics: Metrics, _state: CheckpointState) -> None:
        if on_epoch is not None:
            on_epoch(metrics)
        if progress is not None:
            print(format_epoch(metrics, cfg.train.epochs, time.perf_counter() - started),
                  file=progress, flush=True)

    if progress is not None:
        print(describe(trial), file=progress, flush=True)
    retain_freed_memory()  # process-wide: every step reallocates the same batch tensors
    try:
        return fit(cfg, report=report)
    except (DatasetError, CheckpointError, DeviceUnavailable) as exc:
        raise TrialFailed(str(exc), exit_code=2) from None
    except (TrainingDiverged, TrialInfeasible) as exc:
        raise TrialFailed(f"trial {trial.index} failed: {exc}", exit_code=1) from None


def describe(trial: Trial) -> str:
    cfg = trial.config
    swept = ", ".join(f"{k}={v}" for k, v in trial.params.items())
    return (f"trial {trial.index} [{trial.config_hash}] {cfg.method} {cfg.model.backbone}"
            f"(width {cfg.model.width}) on {cfg.dataset.name}, batch {cfg.train.batch_size}, "
            f"{cfg.train.epochs} epochs, {cfg.train.optimizer} lr {cfg.train.learning_rate}"
            f"/256, probe {cfg.eval.protocol}; {swept}")


def format_epoch(metrics: Metrics, epochs: int, elapsed: float) -> str:
    parts = [f"epoch {int(metrics['epoch'])}/{epochs}", f"step {int(metrics['steps'])}"]
    if "loss" in metrics:
        parts.append(f"loss {metrics['loss']:.4f}")
    parts += [f"{short(name)} {metrics[name]:.3f}" for name in HEADLINE if name in metrics]
    if "images_per_sec" in metrics:
        parts.append(f"{metrics['images_per_sec']:.0f} img/s")
    parts.append(f"{elapsed:.0f} s")
    return "  ".join(parts)



def trial_command(args: argparse.Namespace) -> int:
    spec, _ = read_user_spec(args.spec)
    trial = trial_at(spec, args.index, args.overrides)
    started = time.perf_counter()
    metrics = run_trial(trial, progress=sys.stderr)
    result = {
        "trial": trial.index,
        "config_hash": trial.config_hash,
        "params": trial.params,
        **metrics,
        "wall_seconds": round(time.perf_counter() - started, 3),
    }
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        print(format_final(result))
    return EXIT_OK


def format_final(result: dict[str, object]) -> str:
    keys = dict.fromkeys((*HEADLINE, *TABLE_COLUMNS, "wall_seconds"))
    return "final: " + "  ".join(f"{k}={result[k]}" for k in keys if k in result)
