"""SimCLR (thesis chapter 12): encoder f, projection g, NT-Xent over 2N views."""

from __future__ import annotations

import torch
from torch import nn

from trainers.config import ModelConfig, TrainConfig
from trainers.losses import nt_xent
from trainers.method import SSLMethod
from trainers.methods import MethodInfo
from trainers.models import build_encoder, mlp


class SimCLR(SSLMethod):
    """Encoder f and projection g; NT-Xent over the 2N projected views."""

    def __init__(self, model_cfg: ModelConfig, train_cfg: TrainConfig,
                 info: MethodInfo) -> None:
        super().__init__(model_cfg, train_cfg, info)
        self.encoder = build_encoder(model_cfg)
        hidden, out = info.head_dims(model_cfg.hidden_dim, model_cfg.projection_dim,
                                     self.encoder.feature_dim)
        self.projector = mlp(self.encoder.feature_dim, hidden, out)
        self.temperature = train_cfg.temperature

    def loss(self, views: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both views stacked [2N, ...] (view 1 first) -> (loss, their representations h)."""
        n = views.shape[0] // 2
        h = self.encoder(views)
        z = self.projector(h)
        return nt_xent(z[:n], z[n:], self.temperature), h

    def trainable(self) -> list[nn.Module]:
        return [self.encoder, self.projector]

    def networks(self) -> tuple[nn.Module, nn.Module | None]:
        return nn.Sequential(self.encoder, self.projector), None
