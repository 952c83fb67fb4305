"""The method registry: a plain dict from the spec's `method` to its module.

Each method exposes its encoder (kept after training), `loss(views)`
(both views stacked) returning (loss, representations), the modules its optimizer updates
(`trainable()`), and `after_step` (BYOL's target update).
"""

from __future__ import annotations

from trainers.byol import BYOL
from trainers.config import ModelConfig, TrainConfig
from trainers.simclr import SimCLR

METHODS: dict[str, type[SimCLR] | type[BYOL]] = {"simclr": SimCLR, "byol": BYOL}


def build_method(method: str, model_cfg: ModelConfig, train_cfg: TrainConfig) -> SimCLR | BYOL:
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {sorted(METHODS)}")
    return METHODS[method](model_cfg, train_cfg)
