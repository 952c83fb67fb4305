"""The process-wide settings of a Ray worker that runs trials, made at each trial's
entry (the worker is Ray's process: nothing else sets it up for us)."""

from __future__ import annotations

import torch

from trainers.config import TrialConfig
from trainers.memory import freeze_startup_objects, retain_freed_memory


def prepare_worker(cfg: TrialConfig) -> None:
    """Set the worker up for `cfg`'s trial: trials packed on one node must not
    oversubscribe its cores; every step reallocates the same batch-sized tensors;
    and the objects the worker holds from its start are set aside from garbage
    collection (both: trainers.memory)."""
    if cfg.resources.cpu >= 1:
        torch.set_num_threads(int(cfg.resources.cpu))
    retain_freed_memory()
    freeze_startup_objects()
