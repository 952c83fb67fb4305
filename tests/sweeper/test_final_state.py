"""A one-epoch trial's last state, stored by its worker beside Tune's checkpoints and
read back by the driver (sweeper.driver.final_state)."""

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from pyarrow.fs import LocalFileSystem

from sweeper.driver.final_state import FINAL_FOLDER, final_checkpoint, store_final_state
from sweeper.driver.trainable import STATE_FILE


def storage_of(trial_folder: Path) -> Any:
    return SimpleNamespace(storage_filesystem=LocalFileSystem(), trial_fs_path=str(trial_folder))


def test_a_stored_last_state_is_read_back_whole(tmp_path: Path) -> None:
    saved = tmp_path / "scratch" / STATE_FILE
    saved.parent.mkdir()
    saved.write_bytes(b"weights" * 1000)
    trial_folder = tmp_path / "results" / "sweep" / "t0.2-abc_00000"
    trial_folder.mkdir(parents=True)

    store_final_state(saved, storage_of(trial_folder))
    assert sorted(p.name for p in (trial_folder / FINAL_FOLDER).iterdir()) == [STATE_FILE]
    checkpoint = final_checkpoint(SimpleNamespace(storage=storage_of(trial_folder)))  # type: ignore[arg-type]
    assert checkpoint is not None
    with checkpoint.as_directory() as folder:
        assert (Path(folder) / STATE_FILE).read_bytes() == b"weights" * 1000


def test_a_trial_whose_worker_stored_none_has_no_final_state(tmp_path: Path) -> None:
    assert final_checkpoint(SimpleNamespace(storage=storage_of(tmp_path))) is None  # type: ignore[arg-type]
    (tmp_path / FINAL_FOLDER).mkdir()
    (tmp_path / FINAL_FOLDER / f"{STATE_FILE}.partial").write_bytes(b"half")  # a killed copy
    assert final_checkpoint(SimpleNamespace(storage=storage_of(tmp_path))) is None  # type: ignore[arg-type]
    assert final_checkpoint(SimpleNamespace(storage=None)) is None  # type: ignore[arg-type]
