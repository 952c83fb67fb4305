"""The stored Tune snapshot's check before a restore: cut-short files found without
loading them, mended from a killed driver's staging copy, or the restore refused."""

import json
import os
import pickle
from pathlib import Path

import pytest

from sweeper.driver.snapshot_check import SnapshotCutShort, is_whole, mend_snapshot

STATE = json.dumps({"trial_data": [["{}", "{}"]] * 50, "runner_data": {"_iteration": 7}})
SEARCHER = pickle.dumps({"study": list(range(500)), "name": "x" * 300})
MARK = "callback-states-2026-12-04_10-00-00.pkl"  # sweeper's callback state: the settle done


class Detonator:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("touch detonated",))


def test_whole_files_pass_and_any_cut_leaves_one_that_does_not() -> None:
    assert is_whole(STATE.encode())
    assert is_whole(SEARCHER)
    for cut in (0, 1, len(STATE) // 2, len(STATE) - 1):
        assert not is_whole(STATE.encode()[:cut])
    for cut in (0, 1, 2, len(SEARCHER) // 2, len(SEARCHER) - 1):
        assert not is_whole(SEARCHER[:cut])
    assert not is_whole(b"\xff\xfe{")


def test_a_pickle_is_walked_not_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert is_whole(pickle.dumps(Detonator()))
    assert not (tmp_path / "detonated").exists()


def stored_sweep(root: Path, name: str = "sweep") -> Path:
    folder = root / "results" / name
    folder.mkdir(parents=True)
    (folder / "experiment_state-2026-12-04_10-00-00.json").write_text(STATE)
    (folder / "searcher-state-2026-12-04_10-00-00.pkl").write_bytes(SEARCHER)
    # Tune's grid generator pickles its state under a .json name
    (folder / "basic-variant-state-2026-12-04_10-00-00.json").write_bytes(SEARCHER)
    (folder / "tuner.pkl").write_bytes(pickle.dumps({"tuner": 1}))
    (folder / "trial-1").mkdir()
    (folder / "trial-1" / "result.json").write_text("{")  # not the snapshot's: not read
    return folder


def staging_copy(temp_root: Path, session: str, experiment: str, name: str,
                 data: bytes, mtime: float) -> Path:
    where = (temp_root / f"session_{session}" / "artifacts" / "2026-12-04_10-00-00"
             / experiment / "driver_artifacts")
    where.mkdir(parents=True, exist_ok=True)
    (where / name).write_bytes(data)
    os.utime(where / name, (mtime, mtime))
    return where / name


def test_a_whole_snapshot_is_left_as_it_is(tmp_path: Path) -> None:
    folder = stored_sweep(tmp_path)
    before = {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()}
    assert mend_snapshot(str(folder), [tmp_path / "ray"]) == []
    assert {path.name: path.read_bytes() for path in folder.iterdir()
            if path.is_file()} == before


def staged_snapshot(temp_root: Path, session: str, experiment: str, files: dict[str, bytes],
                    mtime: float, settled: bool = True) -> None:
    """A staged snapshot; `settled`: with sweeper's mark, written after the state."""
    for name, data in files.items():
        staging_copy(temp_root, session, experiment, name, data, mtime)
    mark = MARK, pickle.dumps({0: {"settled": True}})
    staging_copy(temp_root, session, experiment, *mark, mtime + (1 if settled else -1))


def test_a_cut_short_file_puts_back_the_newest_whole_staged_snapshot(tmp_path: Path) -> None:
    folder = stored_sweep(tmp_path)
    state = "experiment_state-2026-12-04_10-00-00.json"
    searcher = "searcher-state-2026-12-04_10-00-00.pkl"
    grid = "basic-variant-state-2026-12-04_10-00-00.json"
    (folder / state).write_text(STATE[:40])  # the copy the kill stopped: ahead of the others
    later = {state: json.dumps({"trial_data": [], "runner_data": {"_iteration": 9}}).encode(),
             searcher: pickle.dumps({"study": [1, 2]}), grid: pickle.dumps({"live": set()})}
    temp_root = tmp_path / "ray"
    staged_snapshot(temp_root, "a", "sweep", {state: STATE.encode()}, 1_000)
    staged_snapshot(temp_root, "b", "sweep", later, 2_000)
    staged_snapshot(temp_root, "c", "sweep", {**later, searcher: later[searcher][:9]}, 3_000)
    staged_snapshot(temp_root, "d", "sweep", later, 3_200, settled=False)  # MLflow behind
    staged_snapshot(temp_root, "e", "sweep", {searcher: later[searcher]}, 3_500)  # no state
    staged_snapshot(temp_root, "f", "other", {state: b"{}"}, 4_000)  # another sweep's
    (temp_root / "session_latest").symlink_to(temp_root / "session_c")

    assert mend_snapshot(str(folder), [temp_root]) == [grid, MARK, state, searcher]
    assert {name: (folder / name).read_bytes() for name in later} == later
    assert (folder / "tuner.pkl").read_bytes() == pickle.dumps({"tuner": 1})
    assert sorted(path.name for path in folder.iterdir()) == [
        grid, MARK, state, searcher, "trial-1", "tuner.pkl"]


def test_a_snapshot_staged_by_a_save_that_never_settled_is_not_put_back(
        tmp_path: Path) -> None:
    folder = stored_sweep(tmp_path)
    state = "experiment_state-2026-12-04_10-00-00.json"
    (folder / state).write_text("")
    staged_snapshot(tmp_path / "ray", "a", "sweep", {state: STATE.encode()}, 1_000,
                    settled=False)
    with pytest.raises(SnapshotCutShort, match=f"\\({state}: its driver was killed"):
        mend_snapshot(str(folder), [tmp_path / "ray"])
    assert (folder / state).read_text() == ""


@pytest.mark.parametrize("name", ["searcher-state-2026-12-04_10-00-00.pkl",
                                  "basic-variant-state-2026-12-04_10-00-00.json"])
def test_a_cut_short_file_without_a_whole_copy_refuses_and_changes_nothing(
        tmp_path: Path, name: str) -> None:
    folder = stored_sweep(tmp_path)
    (folder / name).write_bytes(SEARCHER[:100])
    before = {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()}
    staging_copy(tmp_path / "ray", "a", "sweep", name, SEARCHER[:200], 1_000)

    with pytest.raises(SnapshotCutShort, match=f"snapshot there is cut short \\({name}: "):
        mend_snapshot(str(folder), [tmp_path / "ray"])
    assert {path.name: path.read_bytes() for path in folder.iterdir()
            if path.is_file()} == before


def test_an_empty_or_missing_folder_has_nothing_to_mend(tmp_path: Path) -> None:
    assert mend_snapshot(str(tmp_path / "absent"), [tmp_path]) == []
    (tmp_path / "empty").mkdir()
    assert mend_snapshot(str(tmp_path / "empty"), [tmp_path]) == []
