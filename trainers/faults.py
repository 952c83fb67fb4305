"""Fault injection for the reliability tests: make one trial of a real sweep fail
for good through the real code paths, where no honest setting can (a tiny model
does not diverge at any sane learning rate, and a real out-of-memory would take
the machine with it).

    SWEEPER_FAULT_NAN_WHEN=train.learning_rate=0.03
    SWEEPER_FAULT_OOM_WHEN=model.width=8

A trial whose resolved config has that value gets NaN weights before it trains
(the NaN guard must catch it: TrainingDiverged), or asks the allocator for 2**62
bytes (a real allocation failure: TrialInfeasible). Unset, nothing happens.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from trainers.config import TrialConfig


def _targets(cfg: TrialConfig, variable: str) -> bool:
    path, sep, expected = os.environ.get(variable, "").partition("=")
    if not sep:
        return False
    value: object = cfg.model_dump(mode="json")
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value is not None and str(value) == expected


def inject_faults(cfg: TrialConfig, model: nn.Module) -> None:
    """Break this trial as the environment asks (see the module's docstring)."""
    if _targets(cfg, "SWEEPER_FAULT_OOM_WHEN"):
        torch.empty(1 << 62, dtype=torch.uint8)
    if _targets(cfg, "SWEEPER_FAULT_NAN_WHEN"):
        with torch.no_grad():
            next(model.parameters()).fill_(float("nan"))
