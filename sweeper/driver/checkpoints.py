"""A trial's Tune checkpoint as the driver sees it, before Tune restores the trial from
it: is it still there, can it be used; and, when not, the trial started over from
epoch 0 instead (in its own run), rather than failing at once on every retry and every
`--resume --retry-failed` (Ray's `ValueError: Could not recover from checkpoint`).

Tune keeps a trial's latest checkpoint in private bookkeeping (`_CheckpointManager`);
forgetting it is the one place sweeper reaches into it (Ray 2.60)."""

from __future__ import annotations

from ray.train._internal.checkpoint_manager import _CheckpointManager
from ray.tune.experiment import Trial as RayTrial

from sweeper.driver.trainable import STATE_FILE

# A recorded error that says the trial's checkpoint is unusable: retried, it starts over.
_CHECKPOINT_ERRORS = ("CheckpointError: ", "ValueError: Could not recover from checkpoint")


def why_start_over(trial: RayTrial, recorded_error: str | None) -> str | None:
    """Why the trial, about to start, cannot continue from its checkpoint (None: it can,
    or it has none): its state file is gone from the storage, or the error it failed
    with says the checkpoint is unusable."""
    checkpoint = trial.checkpoint
    if checkpoint is None or checkpoint.filesystem is None:
        return None
    from pyarrow.fs import FileType

    state = f"{checkpoint.path.rstrip('/')}/{STATE_FILE}"
    try:
        missing = checkpoint.filesystem.get_file_info(state).type == FileType.NotFound
    except OSError:
        missing = False  # unreachable now: Tune's restore will say what is wrong
    if missing:
        return f"its checkpoint at {state} was missing"
    if recorded_error and recorded_error.startswith(_CHECKPOINT_ERRORS):
        return f"its checkpoint at {state} could not be used ({recorded_error})"
    return None


def forget_checkpoint(trial: RayTrial) -> None:
    """Make Tune start the trial from scratch (no restore) when it starts it next."""
    old = trial.run_metadata.checkpoint_manager
    trial.run_metadata.checkpoint_manager = _CheckpointManager(
        old.checkpoint_config if old is not None else None)
    trial._restore_checkpoint_result = None
