"""What runs in a Ray worker: one trial, resumed from Tune's checkpoint, reporting
every epoch to Tune, its baseline with the first epoch when that epoch is quick
(sweeper.driver.baseline_hold; the trial itself is sweeper.driver.trainable, which knows
no Ray)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import ray
from ray import tune

from sweeper.driver.baseline_hold import BaselineHold
from sweeper.driver.final_state import store_final_state
from sweeper.driver.handover import quick_handovers
from sweeper.driver.repeats import repeat_in
from sweeper.driver.storage_faults import STORAGE_FAULT_KEY, storage_errno
from sweeper.driver.trainable import STATE_FILE, run_trial_in_worker, trial_from_ray_config
from sweeper.record.provenance import trial_provenance
from trainers.checkpoint import CheckpointError, load_checkpoint
from trainers.data import DatasetError
from trainers.loop import Metrics, TrainingDiverged, TrialInfeasible

FAILURE_KEY = "sweeper_failure"  # a final result saying the trial failed for good
NODE_KEY = "sweeper_node_id"  # the Ray node a result came from (all nodes may share an IP)
# What the trial runs on (sweeper.record.provenance), as JSON, with an attempt's first result.
PROVENANCE_KEY = "sweeper_provenance"
# Earlier epochs' metrics that a result carries (as a JSON list): a held baseline.
EARLIER_KEY = "sweeper_earlier"
# A result with this key set ends its trial (Tune's `done`): the last epoch's says so,
# rather than the trial's return telling the driver in one more hand-over.
DONE_KEY = "done"
# How long a worker whose checkpoint upload the storage refused waits for the driver to
# stop the sweep (sweeper.driver.storage_faults) before it fails as any trial would.
STORAGE_FAULT_WAIT_S = 120.0
# Fault injection for the reliability tests (as trainers.faults, for what no trial
# config can cause): "EPOCH:ERRNO" makes every checkpoint upload from that epoch on
# fail as the storage would, e.g. 1:28 (no space left), 1:30 (read-only).
STORAGE_FAULT_ENV = "SWEEPER_FAULT_STORAGE_AT"


def ray_trainable(config: dict[str, Any]) -> None:
    """Run the trial of a Ray config: resume from Tune's checkpoint, report every epoch;
    or, for a repeat of a finished run (sweeper.driver.repeats), report its metrics."""
    with quick_handovers():  # Tune's main thread answers the driver while the trial trains
        _run_trial(config)


def _run_trial(config: dict[str, Any]) -> None:
    node_id = ray.get_runtime_context().get_node_id()
    repeat = repeat_in(config)
    if repeat is not None:
        tune.report({**repeat.metrics, NODE_KEY: node_id, DONE_KEY: True})
        return
    cfg = trial_from_ray_config(config).config
    told = False
    checkpoint = tune.get_checkpoint()
    tune_holds_one = checkpoint is not None  # a state of this trial, for Tune to replace

    def send(metrics: Metrics, folder: Path | None, earlier: list[Metrics]) -> None:
        nonlocal told, tune_holds_one
        extra: dict[str, Any] = {NODE_KEY: node_id}
        if metrics.get("epoch") == cfg.train.epochs:  # Tune stops the trial (its thread) after it
            extra[DONE_KEY] = True
        if not told:  # measured in the trial, once it has read its data: the first report
            told = True
            extra[PROVENANCE_KEY] = json.dumps(trial_provenance(cfg))
        try:
            if folder is not None:  # the upload of a checkpoint is what fails
                _inject_storage_fault(int(metrics.get("epoch", 0)))
                if DONE_KEY in extra and not tune_holds_one:  # sweeper.driver.final_state
                    store_final_state(folder / STATE_FILE)
                    folder = None
                tune_holds_one = tune_holds_one or folder is not None
            tune.report({**metrics, **extra, **({EARLIER_KEY: json.dumps(earlier)}
                                                if earlier else {})},
                        checkpoint=None if folder is None
                        else tune.Checkpoint.from_directory(str(folder)))
        except OSError as exc:  # uploading the checkpoint to the storage
            code = storage_errno(exc)
            if code is None:
                raise
            for held in earlier:  # what the refused report carried besides its checkpoint
                tune.report({**held, **extra})
            # No retry gets past a full or read-only storage: say so, and wait for the
            # driver to stop the sweep (this trial then resumes from its last checkpoint).
            tune.report({STORAGE_FAULT_KEY: code, NODE_KEY: node_id})
            time.sleep(STORAGE_FAULT_WAIT_S)
            raise

    hold = BaselineHold(send)
    try:
        resume = None
        if checkpoint is not None:  # read now: the folder may be pruned later
            with checkpoint.as_directory() as folder:
                resume = load_checkpoint(Path(folder) / STATE_FILE)
        run_trial_in_worker(cfg, hold.report, resume)
    except (TrainingDiverged, TrialInfeasible, DatasetError, CheckpointError) as exc:
        # A retry would fail the same way: say so first (the driver then turns Tune's
        # retries off for this trial), then fail, so that Tune records the trial as
        # errored: it stays failed across --resume, and --retry-failed re-runs it.
        hold.flush()  # its baseline is recorded all the same
        tune.report({FAILURE_KEY: f"{type(exc).__name__}: {exc}"})
        raise
    except SystemExit:  # Tune stopped the trial
        hold.discard()
        raise
    finally:
        hold.flush()


def _inject_storage_fault(epoch: int) -> None:
    at, _, code = os.environ.get(STORAGE_FAULT_ENV, "").partition(":")
    if code and epoch >= int(at):
        raise OSError(int(code), os.strerror(int(code)))


# Part of the storage format: Tune stores the trainable's name with a sweep (tuner.pkl)
# and restores it only under that name.
ray_trainable.__name__ = "_ray_trainable"
