"""Whether a sweep exists, and whether running it now would merge two sweeps' records
or re-run finished trials. MLflow is the authority on whether a sweep of a name
exists (whatever --storage says); the storage says whether it can be restored."""

from __future__ import annotations

import os
import shlex
import socket
from typing import TextIO

from sweeper.cluster import storage
from sweeper.errors import SweeperError
from sweeper.record.contract import DRIVER_TAG, OVERRIDES_TAG, STORAGE_TAG, flatten
from sweeper.record.read_model import ExperimentDeleted, ParentRecord
from sweeper.record.recorded_spec import RecordedSpecUnusable, recorded_spec
from sweeper.record.writer import SweepTracker
from sweeper.spec.schema import SweepSpec

# What a resumed sweep may change: how its trials are run, not which trials it has or
# what they compute.
RESUMABLE_CHANGES = {"resources", "max_concurrent_trials", "max_failures", "save_encoders"}


class SweepExists(SweeperError):
    """Running would merge with, or re-run, an existing sweep: resuming must be explicit."""


def should_restore(spec: SweepSpec, folder: str, restorable: bool,
                         tracker: SweepTracker, resume: bool, progress: TextIO) -> bool:
    """MLflow decides whether the sweep exists; the storage whether it can be restored.
    Returns whether to restore; raises SweepExists where running would merge two
    sweeps' records, re-run trials that finished, or resume with another spec."""
    name = spec.name
    try:
        parent = tracker.existing_sweep()
    except ExperimentDeleted as exc:
        raise SweepExists(str(exc)) from None
    recorded = parent.tags.get(STORAGE_TAG, "an unrecorded location") if parent else ""
    where = f"MLflow {tracker.tracking_uri} (experiment {name!r})"
    if not resume:
        if parent is not None:
            raise SweepExists(
                f"sweep {name!r} already exists in {where}, with its results in "
                f"{recorded}: pass --resume to continue it (with --storage "
                f"{_storage_root(recorded, name)}), or --name to start a new sweep")
        if storage.holds_files(folder):
            raise SweepExists(
                f"sweep {name!r} already has results in {folder}: pass --resume to "
                "continue it (--retry-failed to re-run failed trials), or --name to start a "
                "new sweep")
        return False
    if parent is not None:
        _refuse_a_second_driver(parent, name)
        if restorable:
            _refuse_another_spec(parent, spec, tracker)
            return True
        raise SweepExists(
            f"--resume: {folder} holds no state of sweep {name!r} to restore, but {where} "
            f"has it, with its results in {recorded}. Pass the --storage it ran with; if those "
            "results are gone, the sweep cannot be resumed (finished trials are never re-run): "
            "start a new sweep with --name")
    if restorable:
        raise SweepExists(
            f"--resume: {folder} holds sweep {name!r}, but {where} has no record of it: "
            "pass the --tracking-uri it ran with (resuming into another store would lose the "
            "record of its finished trials)")
    if storage.holds_files(folder):
        raise SweepExists(f"{folder} holds no sweep state to resume; remove it or pass "
                          "--name to start a new sweep")
    print(f"nothing to resume for sweep {name!r}: starting it", file=progress, flush=True)
    return False


def _refuse_another_spec(parent: ParentRecord, spec: SweepSpec, tracker: SweepTracker) -> None:
    """The spec (file and --set) a sweep is resumed with must define the trials it ran
    with: Tune continues the stored trials whatever the spec says now, so a changed
    value would be silently ignored, and the record would describe a sweep that never
    ran. Only a parent that recorded its overrides can be compared."""
    if OVERRIDES_TAG not in parent.tags:
        return
    try:
        recorded = recorded_spec(tracker.client, parent)
    except RecordedSpecUnusable:
        return
    then = flatten(recorded.model_dump(mode="json", exclude=RESUMABLE_CHANGES))
    now = flatten(spec.model_dump(mode="json", exclude=RESUMABLE_CHANGES))
    changed = sorted(key for key in then.keys() | now.keys() if then.get(key) != now.get(key))
    if not changed:
        return
    shown = "; ".join(f"{key}: {then.get(key)!r} then, {now.get(key)!r} now"
                      for key in changed[:3]) + ("; ..." if len(changed) > 3 else "")
    raise SweepExists(
        f"--resume: sweep {spec.name!r} ran with another spec ({shown}); resume it with "
        "the spec file and --set it ran with (its spec.yaml and tag sweeper.overrides in "
        "MLflow), or pass --name to start a new sweep. A resume may change only "
        + ", ".join(sorted(RESUMABLE_CHANGES)))


def _storage_root(location: str, name: str) -> str:
    suffix = f"/{name}"
    return shlex.quote(location[: -len(suffix)] if location.endswith(suffix) else location)


def _refuse_a_second_driver(parent: ParentRecord, name: str) -> None:
    """Two drivers writing one sweep would interleave its record: refuse while the one
    that holds it is alive (checked on this machine; a driver elsewhere cannot be seen)."""
    if parent.status != "RUNNING":
        return
    host, _, pid = parent.tags.get(DRIVER_TAG, "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return  # that driver is gone (killed): resuming is what is wanted
    except PermissionError:
        pass
    raise SweepExists(f"sweep {name!r} is being run by process {pid} on this machine; "
                      "wait for it, or stop it (Ctrl-C) and resume")
