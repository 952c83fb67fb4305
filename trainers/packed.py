"""A state dict packed as one flat tensor per dtype, and back.

torch.save writes one zip record per tensor, ~25 us each on a 2-core VM: the bench
sweep's tiny trial (130 tensors) took ~4 ms to save, packed ~1 ms. A packed dict is
plain data and tensors, so torch.load(weights_only=True) reads it."""

from __future__ import annotations

import math
from typing import Any

import torch

Packed = dict[str, Any]  # {"layout": [[name, shape, dtype], ...], "data": {dtype: flat}}


def pack(weights: dict[str, torch.Tensor]) -> Packed:
    """`weights` as one flat tensor per dtype, with each entry's name, shape and dtype
    in order."""
    layout: list[list[Any]] = []
    parts: dict[str, list[torch.Tensor]] = {}
    for name, tensor in weights.items():
        dtype = str(tensor.dtype).removeprefix("torch.")
        layout.append([name, list(tensor.shape), dtype])
        parts.setdefault(dtype, []).append(tensor.detach().reshape(-1))
    return {"layout": layout, "data": {dtype: torch.cat(flat) for dtype, flat in parts.items()}}


def unpack(packed: Packed) -> dict[str, torch.Tensor]:
    """The state dict `pack` was given (each tensor its own copy, on the packed device)."""
    offsets = dict.fromkeys(packed["data"], 0)
    weights: dict[str, torch.Tensor] = {}
    for name, shape, dtype in packed["layout"]:
        start, numel = offsets[dtype], math.prod(shape)
        weights[name] = packed["data"][dtype][start:start + numel].reshape(shape).clone()
        offsets[dtype] = start + numel
    return weights
