"""A trial's checkpoint as a file: what it holds, written atomically and read back
weights-only; and a finished trial's, its weights only and packed (trainers.packed).
The training state itself is made and restored by the loop (trainers.loop)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from trainers.packed import pack, unpack

CheckpointState = dict[str, Any]

CHECKPOINT_FORMAT = 2  # 2: elapsed_seconds and baseline_top_1_accuracy
# A finished trial's checkpoint (finished_state): these keys, the weights packed, and
# _FINISHED set.
_FINISHED = "finished"
_FINISHED_KEYS = ("format", "epoch", "step", "elapsed_seconds", "baseline_top_1_accuracy")
_WEIGHTS = ("method", "head")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable or from a different config."""


def is_finished(state: CheckpointState) -> bool:
    """Whether `state` is a finished trial's (finished_state): nothing continues it."""
    return bool(state.get(_FINISHED))


def finished_state(state: CheckpointState) -> CheckpointState:
    """What a trial that trained its last epoch keeps: its weights and where it ended.
    Nothing continues a finished trial, so the optimizer's moments and the RNG states
    (which only continuing needs) are left out, and the weights are packed
    (trainers.packed): the bench sweep's trial saves in ~1 ms instead of ~11.5 ms. Its
    encoder is read from it (`checkpoint_weights`); continuing from it is refused
    (CheckpointError)."""
    return {**{key: state[key] for key in _FINISHED_KEYS},
            **{part: pack(state[part]) for part in _WEIGHTS}, _FINISHED: True}


def checkpoint_weights(state: CheckpointState, part: str = "method") -> dict[str, torch.Tensor]:
    """The state dict of `part` ("method" or "head") in a checkpoint, a finished trial's
    (packed) or not."""
    return unpack(state[part]) if is_finished(state) else dict(state[part])


def save_checkpoint(state: CheckpointState, path: Path) -> None:
    """Write atomically: a crash mid-write never leaves a truncated checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(path.suffix + ".partial")
    torch.save(state, partial)
    partial.replace(path)


def load_checkpoint(path: Path) -> CheckpointState:
    """Load with weights_only=True: a checkpoint can hold tensors and plain data only."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        state: CheckpointState = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt file
        raise CheckpointError(f"checkpoint {path} is unreadable or corrupt "
                              f"({type(exc).__name__}: {_last_line(exc)})") from exc
    return state


def _last_line(exc: BaseException) -> str:
    """The telling line of torch's message, one line for a run's tag and a summary: its
    weights-only refusal spans lines of advice (to load with weights_only=False, which a
    corrupt file needs no more than an untrusted one) before 'Unsupported operand 110'."""
    lines = [line.strip() for line in str(exc).splitlines()
             if line.strip() and not line.startswith("Check the documentation")]
    return lines[-1] if lines else "no detail"
