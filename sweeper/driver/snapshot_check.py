"""A stored sweep's Tune snapshot, checked before it is restored. Tune writes each
snapshot (experiment_state-*.json, the searcher's state, ...) into a staging folder on
the driver's machine, then copies it into the sweep's folder in place, from a
background thread: a driver killed mid-copy leaves a stored file cut short. Tune, unable
to read it, would start the sweep afresh over its record. So the snapshot a cut-short
file belonged to is put back from the killed driver's staging copy when that survives
on this machine (Ray keeps each session's folder under its temp root), and otherwise
the restore is refused."""

from __future__ import annotations

import json
import pickletools
from collections.abc import Iterable
from pathlib import Path

from ray.tune.callback import CallbackList
from ray.tune.execution.tune_controller import TuneController

from sweeper.cluster.storage import opened
from sweeper.errors import SweeperError

# What Tune's restore reads from the top of the sweep's folder (it downloads every such
# file: ray.tune.execution.experiment_state.sync_down_experiment_state).
SNAPSHOT_SUFFIXES = (".json", ".pkl")


class SnapshotCutShort(SweeperError):
    """A file of the stored snapshot is incomplete and no whole copy of it survives."""


def is_whole(data: bytes) -> bool:
    """Whether a snapshot file's bytes are complete: a pickle (Tune's are protocol 2 or
    later, which open with PROTO; some carry a .json name) whose opcodes run up to its
    STOP, walked, never loaded, so nothing in it runs; else JSON that parses."""
    try:
        if data[:1] == b"\x80":
            for _ in pickletools.genops(data):
                pass
        else:
            json.loads(data)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError are ValueErrors too
        return False
    return True


def mend_snapshot(folder: str, temp_roots: Iterable[Path]) -> list[str]:
    """Check every snapshot file at the top of `folder` (a path or a URI). When one is
    cut short, put back the whole snapshot it belonged to: every snapshot file of the
    newest staging folder under `temp_roots` (Ray temp folders:
    session_*/artifacts/<start>/<experiment>/driver_artifacts, the files named after the
    same start) that holds a whole copy of each cut-short file, no cut-short file of its
    own, and the mark that its save settled the sweep's MLflow writes. The set, not the
    one file: its other files may already be a later snapshot's, or still an earlier
    one's, and Tune's state and its searcher's must be the same snapshot's. The names
    written; SnapshotCutShort if no such folder is found."""
    from pyarrow.fs import FileSelector, FileType

    experiment = folder.rstrip("/").rsplit("/", 1)[-1]
    with opened(folder) as (fs, path):
        cut = []
        for info in fs.get_file_info(FileSelector(path, allow_not_found=True)):
            if info.type == FileType.File and info.base_name.endswith(SNAPSHOT_SUFFIXES):
                with fs.open_input_stream(info.path) as stream:
                    if not is_whole(stream.readall()):
                        cut.append(info.base_name)
        if not cut:
            return []
        staged = _whole_staged_snapshot(cut, experiment, temp_roots)
        if staged is None:
            raise SnapshotCutShort(
                f"Tune's snapshot there is cut short ({', '.join(sorted(cut))}: its driver "
                "was killed while writing it) and no whole copy of it survives in Ray's "
                "temp folders on this machine")
        for name, data in sorted(staged.items()):
            partial = f"{path}/{name}.mending"
            with fs.open_output_stream(partial) as out:
                out.write(data)
            fs.move(partial, f"{path}/{name}")  # a rename: no stored file is half-written
    return sorted(staged)


def _whole_staged_snapshot(cut: list[str], experiment: str,
                           temp_roots: Iterable[Path]) -> dict[str, bytes] | None:
    found = {folder.resolve() for root in temp_roots  # session_latest links to one of them
             for folder in root.glob(f"session_*/artifacts/*/{experiment}/driver_artifacts")}
    holding = [folder for folder in found if all((folder / name).is_file() for name in cut)]
    for staging in sorted(holding, key=lambda folder: (folder / cut[0]).stat().st_mtime,
                          reverse=True):
        files = [file for file in staging.iterdir()
                 if file.is_file() and file.name.endswith(SNAPSHOT_SUFFIXES)]
        if not all(_settled(file) for file in files):
            continue
        contents = {file.name: file.read_bytes() for file in files}
        if all(is_whole(data) for data in contents.values()):
            return contents
    return None


def _settled(file: Path) -> bool:
    """Unless `file` is Tune's experiment state: true. If it is, whether its save went on
    to settle the sweep's MLflow writes: sweeper's callback state, which Tune writes
    after that settle, is there and no older (sweeper.driver.events.TrackingCallback)."""
    prefix, suffix = TuneController.CKPT_FILE_TMPL.split("{}")
    if not (file.name.startswith(prefix) and file.name.endswith(suffix)):
        return True
    session = file.name[len(prefix):-len(suffix)]
    mark = file.with_name(CallbackList.CKPT_FILE_TMPL.format(session))
    return mark.is_file() and mark.stat().st_mtime_ns >= file.stat().st_mtime_ns
