"""The host-side plan behind trainers.augment.apply_params: in which order the batch
goes through each stage so that every colour op runs on one contiguous slice.

Why it exists: each sample applies its colour-jitter ops in its own random order
(as torchvision's ColorJitter does), so at any stage the samples that need, say,
hue are scattered through the batch. Naively each op of each stage would gather
its samples and scatter them back; here the batch is instead reordered once per
stage (sorted by that stage's op), each op then changes its slice in place, and
one last gather restores the batch's order. All of it is bookkeeping on the plan,
a [B, 6] array of op ids on the host (numpy calls cost a microsecond where torch's
cost ten), and every gather index goes to the device in one copy. Together with
the in-place colour ops and the closed-form hue, it measured 2.2x the throughput of
gathering and scattering per op on the 2-core CPU (the batched path's figures, with
their machine and date: `sweeper bench augment`, docs/benchmarks.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

# Stages after the crop, as columns of the plan: four colour-jitter slots, grayscale, blur.
GRAY_STAGE, BLUR_STAGE = 4, 5


def run_starts(ops: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.diff(ops, prepend=ops[0] - 1))


def runs(ops: np.ndarray) -> list[tuple[int, int, int]]:
    """Host [B] op ids -> (op, start, end) of each run of equal ids, leaving out -1 (none)."""
    starts = run_starts(ops)
    ends = np.append(starts[1:], ops.shape[0])
    keep = ops[starts] >= 0
    return list(zip(ops[starts][keep].tolist(), starts[keep].tolist(), ends[keep].tolist(),
                    strict=True))


def scattered(ops: np.ndarray) -> bool:
    """Whether some op's samples in host [B] op ids form more than one run."""
    run_ops = ops[run_starts(ops)]
    run_ops = run_ops[run_ops >= 0]
    return run_ops.size > np.unique(run_ops).size


def stage_order(plan: np.ndarray, col: int) -> np.ndarray:
    """Host sample order that makes each op of stage `col` one contiguous run.

    The last colour stage also sorts by grayscale within each op, so that grayscale (two
    cheap ops per run) needs no reorder of its own: a few short runs beat a full gather.
    """
    key = plan[:, col]
    if col == GRAY_STAGE - 1:
        key = 2 * key + (plan[:, GRAY_STAGE] >= 0)
    return np.argsort(key, kind="stable")


def inverse(perm: np.ndarray) -> np.ndarray:
    inverse = np.empty_like(perm)
    inverse[perm] = np.arange(perm.shape[0])
    return inverse


@dataclass(frozen=True)
class Stage:
    col: int  # the plan's column
    reorder: bool  # gather the batch into this stage's order first
    runs: list[tuple[int, int, int]]  # (op, start, end) in that order


def schedule(plan: np.ndarray) -> tuple[list[np.ndarray], list[Stage]]:
    """The host side of `apply_params`: the stages that run and where each reorders.

    Returns the gather indices in the order they are used: the input's order for the crop,
    one per reorder, and last the inverse that restores the batch's order (if needed).
    """
    b = plan.shape[0]
    cols = [col for col in range(plan.shape[1]) if (plan[:, col] >= 0).any()]
    # The crop already runs in the first stage's order: reordering the input (uint8, and before
    # the float conversion) is cheaper than reordering its float views.
    perm = stage_order(plan, cols[0]) if cols else np.arange(b)
    indices, stages = [perm], []
    for col in cols:
        reorder = col != GRAY_STAGE and scattered(plan[perm, col])
        if reorder:
            order = stage_order(plan, col)
            indices.append(inverse(perm)[order])
            perm = order
        stages.append(Stage(col, reorder, runs(plan[perm, col])))
    if not (perm == np.arange(b)).all():
        indices.append(inverse(perm))
    return indices, stages


def indices_to(device: torch.device, indices: list[np.ndarray]) -> list[Tensor]:
    """Every gather index in one host->device copy (pinned and asynchronous on CUDA)."""
    host = torch.from_numpy(np.concatenate(indices))
    if device.type == "cuda":
        host = host.pin_memory()
    return list(host.to(device, non_blocking=True).split([len(i) for i in indices]))
