"""What the training loop needs of a self-supervised method, and building one from the
registry. A new method subclasses `SSLMethod` in a module of its own and joins the
registry (trainers.methods.METHODS); the loop, the checkpoints, the probes and
`bench step` need nothing else."""

from __future__ import annotations

from abc import ABCMeta, abstractmethod

import torch
from torch import nn

from trainers.augment import simclr_augment
from trainers.config import ModelConfig, TrainConfig
from trainers.methods import MethodInfo, method_info
from trainers.models import ResNet


class SSLMethod(nn.Module, metaclass=ABCMeta):
    """An encoder (kept after training) and the heads and loss that train it, built by
    `build_method` from its registry entry `info` (its head sizes: `info.head_dims`)."""

    encoder: ResNet

    def __init__(self, model_cfg: ModelConfig, train_cfg: TrainConfig,
                 info: MethodInfo) -> None:
        super().__init__()
        self.info = info

    def views(self, images: torch.Tensor, train: TrainConfig,
              generator: torch.Generator) -> torch.Tensor:
        """`info.views` augmented views of a uint8 batch [N, ...], stacked view by view
        [views * N, ...] (view 1 first), every random draw from `generator`. By default
        SimCLR's augmentation (train.color_jitter_strength, train.blur)."""
        return simclr_augment(images, train.color_jitter_strength, train.blur, generator,
                              views=self.info.views)

    @abstractmethod
    def loss(self, views: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The stacked views (from `views`) -> (loss, their representations h)."""

    @abstractmethod
    def trainable(self) -> list[nn.Module]:
        """The modules the optimizer updates."""

    @abstractmethod
    def networks(self) -> tuple[nn.Module, nn.Module | None]:
        """(the network trained on each view, a target network run forward on each view
        or None): what a step computes, for `bench step`'s FLOP floor."""

    def after_step(self, step: int, total_steps: int) -> None:
        """Per-step state beyond the optimizer's (BYOL's target network); none by default."""


def build_method(name: str, model_cfg: ModelConfig, train_cfg: TrainConfig) -> SSLMethod:
    """A fresh instance of the registered method `name` (a ValueError if there is none)."""
    info = method_info(name)
    cls = info.load()
    if not (isinstance(cls, type) and issubclass(cls, SSLMethod)):
        raise TypeError(f"method {name!r}: {info.cls} is not an SSLMethod subclass")
    return cls(model_cfg, train_cfg, info)
