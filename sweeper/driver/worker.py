"""What runs in a Ray worker: one trial, resumed from Tune's checkpoint, reporting
every epoch to Tune (the trial itself is sweeper.driver.trainable, which knows no Ray)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import ray
from ray import tune

from sweeper.driver.repeats import repeat_in
from sweeper.driver.trainable import STATE_FILE, run_trial_in_worker, trial_from_ray_config
from sweeper.record.provenance import trial_provenance
from trainers.data import DatasetError
from trainers.loop import (
    CheckpointError,
    Metrics,
    TrainingDiverged,
    TrialInfeasible,
    load_checkpoint,
)

FAILURE_KEY = "sweeper_failure"  # a final result saying the trial failed for good
NODE_KEY = "sweeper_node_id"  # the Ray node a result came from (all nodes may share an IP)
# What the trial runs on (sweeper.record.provenance), as JSON, with an attempt's first result.
PROVENANCE_KEY = "sweeper_provenance"


def ray_trainable(config: dict[str, Any]) -> None:
    """Run the trial of a Ray config: resume from Tune's checkpoint, report every epoch;
    or, for a repeat of a finished run (sweeper.driver.repeats), report its metrics."""
    node_id = ray.get_runtime_context().get_node_id()
    repeat = repeat_in(config)
    if repeat is not None:
        tune.report({**repeat.metrics, NODE_KEY: node_id})
        return
    resume = None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:  # read now: the folder may be pruned later
            resume = load_checkpoint(Path(folder) / STATE_FILE)

    told = False

    def publish(metrics: Metrics, folder: Path | None) -> None:
        nonlocal told
        extra = {NODE_KEY: node_id}
        if not told:  # measured in the trial, once it has read its data: the first report
            told = True
            extra[PROVENANCE_KEY] = json.dumps(
                trial_provenance(trial_from_ray_config(config).config))
        tune.report({**metrics, **extra}, checkpoint=None if folder is None
                    else tune.Checkpoint.from_directory(str(folder)))

    try:
        run_trial_in_worker(config, publish, resume)
    except (TrainingDiverged, TrialInfeasible, DatasetError, CheckpointError) as exc:
        # A retry would fail the same way: say so first (the driver then turns Tune's
        # retries off for this trial), then fail, so that Tune records the trial as
        # errored: it stays failed across --resume, and --retry-failed re-runs it.
        tune.report({FAILURE_KEY: f"{type(exc).__name__}: {exc}"})
        raise


# Part of the storage format: Tune stores the trainable's name with a sweep (tuner.pkl)
# and restores it only under that name.
ray_trainable.__name__ = "_ray_trainable"
