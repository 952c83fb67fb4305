"""BYOL (thesis chapter 13): online network regressing an EMA target network."""

from __future__ import annotations

import copy

import torch
from torch import nn

from trainers import tensor_lists
from trainers.config import ModelConfig, TrainConfig
from trainers.losses import byol_loss
from trainers.method import SSLMethod
from trainers.methods import MethodInfo
from trainers.models import build_encoder, mlp
from trainers.schedules import ema_momentum


class BYOL(SSLMethod):
    """Online encoder+projector+predictor; target encoder+projector as their EMA."""

    def __init__(self, model_cfg: ModelConfig, train_cfg: TrainConfig,
                 info: MethodInfo) -> None:
        super().__init__(model_cfg, train_cfg, info)
        self.encoder = build_encoder(model_cfg)
        hidden, out = info.head_dims(model_cfg.hidden_dim, model_cfg.projection_dim,
                                     self.encoder.feature_dim)
        self.projector = mlp(self.encoder.feature_dim, hidden, out)
        self.predictor = mlp(out, hidden, out)
        self.target_encoder = copy.deepcopy(self.encoder).requires_grad_(False)
        self.target_projector = copy.deepcopy(self.projector).requires_grad_(False)
        self.base_ema = train_cfg.ema_decay

    def loss(self, views: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both views stacked [2N, ...] (view 1 first) -> (loss, their representations h)."""
        n = views.shape[0] // 2
        h = self.encoder(views)
        p = self.predictor(self.projector(h))
        with torch.no_grad():
            z_target = self.target_projector(self.target_encoder(views))
        return byol_loss(p[:n], p[n:], z_target[:n], z_target[n:]), h

    def trainable(self) -> list[nn.Module]:
        return [self.encoder, self.projector, self.predictor]

    def networks(self) -> tuple[nn.Module, nn.Module | None]:
        return (nn.Sequential(self.encoder, self.projector, self.predictor),
                nn.Sequential(self.target_encoder, self.target_projector))

    @torch.no_grad()
    def after_step(self, step: int, total_steps: int) -> None:
        """xi <- tau xi + (1 - tau) theta, with tau at the step just taken."""
        tau = ema_momentum(min(step, total_steps), total_steps, self.base_ema)
        online: list[torch.Tensor] = [*self.encoder.parameters(), *self.projector.parameters()]
        target: list[torch.Tensor] = [*self.target_encoder.parameters(),
                                      *self.target_projector.parameters()]
        tensor_lists.mul_(target, tau)
        tensor_lists.add_(target, online, alpha=1 - tau)
        # BN running statistics follow the same average.
        for t_buf, o_buf in zip(
            [*self.target_encoder.buffers(), *self.target_projector.buffers()],
            [*self.encoder.buffers(), *self.projector.buffers()],
            strict=True,
        ):
            if t_buf.dtype.is_floating_point:
                t_buf.mul_(tau).add_(o_buf, alpha=1 - tau)
            else:
                t_buf.copy_(o_buf)
