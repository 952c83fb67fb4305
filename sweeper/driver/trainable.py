"""Ray <-> trainer glue without Ray: a Ray trial's config dict becomes a
`Trial`, its checkpoint folder a resume state, and each trained epoch's state a folder
handed to `publish` (which the driver wires to `tune.report`); the baseline's goes
without one, and the last epoch's holds the weights only (trainers.checkpoint.finished_state)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sweeper.driver.worker_process import prepare_worker
from sweeper.search import kind_of_ray_config
from sweeper.spec.trials import Trial
from trainers.checkpoint import CheckpointState, finished_state, save_checkpoint
from trainers.config import TrialConfig
from trainers.loop import Metrics, fit

STATE_FILE = "state.pt"
Publish = Callable[[Metrics, Path | None], None]


def trial_from_ray_config(config: dict[str, Any], number: int | None = None) -> Trial:
    """The Trial behind a Ray config, decoded by the search kind that made it (`number`:
    its place among a sampler's trials, when known)."""
    return kind_of_ray_config(config).decode(config, number)


def run_trial_in_worker(cfg: TrialConfig, publish: Publish,
                        resume: CheckpointState | None) -> Metrics:
    """Train one trial inside a Ray worker, continuing from `resume` if given."""
    prepare_worker(cfg)

    def report(metrics: Metrics, state: CheckpointState) -> None:
        if state["epoch"] == 0:  # the initial state: starting over reproduces it exactly
            publish(metrics, None)
            return
        if state["epoch"] == cfg.train.epochs:  # its encoder is all that is read from it
            state = finished_state(state)
        with tempfile.TemporaryDirectory(prefix="sweeper-ckpt-") as folder:
            save_checkpoint(state, Path(folder) / STATE_FILE)
            publish(metrics, Path(folder))

    return fit(cfg, report=report, resume=resume)
