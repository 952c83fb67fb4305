"""The two self-supervised objectives, as pure functions of embeddings."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's NT-Xent loss (thesis eq. 20-21), averaged over all 2N anchors.

    `z1[k]` and `z2[k]` are the two views of example k; every other of the 2N
    embeddings is a negative. With all embeddings equal the loss is log(2N - 1).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if z1.shape != z2.shape or z1.ndim != 2:
        raise ValueError(f"expected two [N, D] tensors of one shape, got {tuple(z1.shape)} "
                         f"and {tuple(z2.shape)}")
    n = z1.shape[0]
    if n < 1:
        raise ValueError("nt_xent needs at least one pair")
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    logits = z @ z.T / temperature
    # The indicator 1[k != i] of eq. 20: an anchor is never its own negative.
    logits.fill_diagonal_(float("-inf"))
    positives = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(logits, positives)


def normalized_mse(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """||p/|p| - z/|z|||^2 per example, averaged over the batch; in [0, 4]."""
    if p.shape != z.shape or p.ndim != 2:
        raise ValueError(f"expected two [N, D] tensors of one shape, got {tuple(p.shape)} "
                         f"and {tuple(z.shape)}")
    p = F.normalize(p.float(), dim=1)
    z = F.normalize(z.float(), dim=1)
    return (2 - 2 * (p * z).sum(dim=1)).mean()


def byol_loss(
    p1: torch.Tensor, p2: torch.Tensor, z1_target: torch.Tensor, z2_target: torch.Tensor
) -> torch.Tensor:
    """BYOL's symmetric loss (thesis eq. 22): the online prediction of each view
    regresses the target projection of the other view; in [0, 8]."""
    return normalized_mse(p1, z2_target.detach()) + normalized_mse(p2, z1_target.detach())
