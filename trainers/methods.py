"""The method registry: a plain dict from the spec's `method` to its class, each an
`SSLMethod` (trainers.method: what the loop needs of a method)."""

from __future__ import annotations

from trainers.byol import BYOL
from trainers.config import ModelConfig, TrainConfig
from trainers.method import SSLMethod
from trainers.simclr import SimCLR

METHODS: dict[str, type[SSLMethod]] = {"simclr": SimCLR, "byol": BYOL}


def build_method(method: str, model_cfg: ModelConfig, train_cfg: TrainConfig) -> SSLMethod:
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {sorted(METHODS)}")
    return METHODS[method](model_cfg, train_cfg)
