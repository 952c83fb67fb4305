"""A trial's last epoch (its weights only), stored by its worker beside Tune's checkpoints
in the trial's folder on the storage when Tune holds no checkpoint of the trial to
replace: a trial of one epoch. Reported as Tune's checkpoint instead, it cost ~4.7 ms of
every hand-over (Tune's copy to the storage, its `save` round trip before it stops the
trial, its bookkeeping; `sweeper bench sweep`, docs/benchmarks.md), which a sweep of
thousands of quick trials pays thousands of times. A trial of more epochs still reports
it through Tune, which then deletes the previous epoch's full state, so that a trial
keeps one state on the storage either way. The driver exports a trial's encoder from
here first, else from Tune's checkpoint (sweeper.driver.events.keep_encoder)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.experiment import Trial as RayTrial

from sweeper.driver.trainable import STATE_FILE

FINAL_FOLDER = "final_state"


def store_final_state(state_file: Path, storage: Any = None) -> None:
    """Copy a worker's saved last state to its trial's FINAL_FOLDER on the storage,
    whole or not at all (`storage`: Tune's StorageContext of the trial; by default that
    of the trial this worker runs)."""
    if storage is None:  # the session that tune.report and tune.get_checkpoint use
        from ray.train._internal.session import get_session

        session = get_session()
        assert session is not None, "store_final_state runs inside a Tune trial"
        storage = session.storage
    fs, folder = storage.storage_filesystem, _final_folder(storage.trial_fs_path)
    fs.create_dir(folder)
    partial = f"{folder}/{STATE_FILE}.partial"
    with fs.open_output_stream(partial) as out:
        out.write(state_file.read_bytes())
    fs.move(partial, f"{folder}/{STATE_FILE}")


def final_checkpoint(trial: RayTrial) -> tune.Checkpoint | None:
    """The trial's stored last state as a checkpoint to read; None if its worker stored
    none (it reported its last epoch through Tune, or did not reach it)."""
    from pyarrow.fs import FileType

    storage = trial.storage
    if storage is None:
        return None
    fs, folder = storage.storage_filesystem, _final_folder(storage.trial_fs_path)
    # A storage that cannot be read raises here, as Tune's checkpoint would when read: an
    # encoder is never skipped without a word.
    if fs.get_file_info(f"{folder}/{STATE_FILE}").type != FileType.File:
        return None
    return tune.Checkpoint(path=folder, filesystem=fs)


def _final_folder(trial_fs_path: str) -> str:
    return f"{trial_fs_path.rstrip('/')}/{FINAL_FOLDER}"
