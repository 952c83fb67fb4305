"""Arithmetic on lists of tensors in a few kernel launches: torch's multi-tensor
`_foreach_*` ops where this torch has them (its own optimizers' fast path, though
not a public API), else one op per tensor, with the same results."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

_FOREACH = all(hasattr(torch, f"_foreach_{op}") for op in ("add", "add_", "mul", "mul_", "norm"))


def add(tensors: Sequence[Tensor], others: Sequence[Tensor], alpha: float = 1.0) -> list[Tensor]:
    if _FOREACH:
        return list(torch._foreach_add(list(tensors), list(others), alpha=alpha))
    return [t.add(o, alpha=alpha) for t, o in zip(tensors, others, strict=True)]


def add_(tensors: Sequence[Tensor], others: Sequence[Tensor], alpha: float = 1.0) -> None:
    if _FOREACH:
        torch._foreach_add_(list(tensors), list(others), alpha=alpha)
        return
    for t, o in zip(tensors, others, strict=True):
        t.add_(o, alpha=alpha)


def mul(tensors: Sequence[Tensor], scalars: Sequence[Tensor]) -> list[Tensor]:
    if _FOREACH:
        return list(torch._foreach_mul(list(tensors), list(scalars)))
    return [t.mul(s) for t, s in zip(tensors, scalars, strict=True)]


def mul_(tensors: Sequence[Tensor], scalar: float) -> None:
    if _FOREACH:
        torch._foreach_mul_(list(tensors), scalar)
        return
    for t in tensors:
        t.mul_(scalar)


def norm(tensors: Sequence[Tensor]) -> Tensor:
    """The L2 norm of each tensor, stacked into one tensor."""
    if _FOREACH:
        return torch.stack(torch._foreach_norm(list(tensors)))
    return torch.stack([t.norm() for t in tensors])
