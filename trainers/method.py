"""What the training loop needs of a self-supervised method. A new method subclasses
`SSLMethod` in a module of its own and joins the registry, trainers.methods.METHODS;
the loop, the checkpoints, the probes and `bench step` need nothing else."""

from __future__ import annotations

from abc import ABCMeta, abstractmethod

import torch
from torch import nn

from trainers.models import ResNet


class SSLMethod(nn.Module, metaclass=ABCMeta):
    """An encoder (kept after training) and the heads and loss that train it."""

    encoder: ResNet

    @abstractmethod
    def loss(self, views: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both views stacked [2N, ...] (view 1 first) -> (loss, their representations h)."""

    @abstractmethod
    def trainable(self) -> list[nn.Module]:
        """The modules the optimizer updates."""

    @abstractmethod
    def networks(self) -> tuple[nn.Module, nn.Module | None]:
        """(the network trained on each view, a target network run forward on each view
        or None): what a step computes, for `bench step`'s FLOP floor."""

    def after_step(self, step: int, total_steps: int) -> None:
        """Per-step state beyond the optimizer's (BYOL's target network); none by default."""
