"""Whether a sweep exists, and whether running it now would merge two sweeps' records
or re-run finished trials. MLflow is the authority on whether a sweep of a name
exists (whatever --storage says); the storage says whether it can be restored."""

from __future__ import annotations

import json
import os
import shlex
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

from mlflow.utils.validation import MAX_TAG_VAL_LENGTH

from sweeper.cluster import storage
from sweeper.errors import SweeperError
from sweeper.record.contract import DRIVER_TAG, OVERRIDES_TAG, STORAGE_TAG
from sweeper.record.growth import GrowthEntry, growth_entries, has_room
from sweeper.record.read_model import ExperimentDeleted, ParentRecord
from sweeper.record.recorded_spec import RecordedSpecUnusable, recorded_spec
from sweeper.record.writer import SweepTracker
from sweeper.search import Growth, growth, num_trials
from sweeper.search.kind import changes
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
    changed = changes(recorded.model_dump(mode="json", exclude=RESUMABLE_CHANGES),
                      spec.model_dump(mode="json", exclude=RESUMABLE_CHANGES))
    if not changed:
        return
    grown = growth(recorded, spec, RESUMABLE_CHANGES)
    if not grown.refused:
        raise SweepExists(
            f"--resume: the spec adds {_trials(grown.added)} to sweep {spec.name!r} (it has "
            f"{num_trials(recorded)}): pass --extend to run them with the sweep's, or resume "
            "it with the spec file and --set it ran with")
    raise SweepExists(
        f"--resume: sweep {spec.name!r} ran with another spec ({_shown(changed)}); resume it with "
        "the spec file and --set it ran with (its spec.yaml and tag sweeper.overrides in "
        "MLflow), or pass --name to start a new sweep. A resume may change only "
        + ", ".join(sorted(RESUMABLE_CHANGES)))


@dataclass(frozen=True)
class Extension:
    """What `run --extend` found: the sweep's parent, the spec it ran and its growths so
    far, and what the grown spec adds."""

    parent: ParentRecord
    recorded: SweepSpec
    growths: list[GrowthEntry]
    growth: Growth


def check_extension(spec: SweepSpec, folder: str, restorable: bool, tracker: SweepTracker,
                    overrides: Sequence[str]) -> Extension:
    """Whether `spec` may extend the recorded sweep of its name (`run --extend`): the
    sweep is in MLflow, its stored state in `folder`, its recorded spec readable, and
    `spec` differs from it only by a growth (its kind's: new grid values or seeds, more
    Optuna samples) and in how trials run, and the record can take the growth (with the
    `overrides` `spec` was loaded with). SweepExists, naming the fields, otherwise."""
    name = spec.name
    try:
        parent = tracker.existing_sweep()
    except ExperimentDeleted as exc:
        raise SweepExists(str(exc)) from None
    where = f"MLflow {tracker.tracking_uri} (experiment {name!r})"
    if parent is None:
        raise SweepExists(f"--extend: {where} has no sweep {name!r} to extend: run it "
                          "without --extend")
    _refuse_a_second_driver(parent, name)
    if not restorable:
        raise SweepExists(
            f"--extend: {folder} holds no state of sweep {name!r}, but {where} has it, with "
            f"its results in {parent.tags.get(STORAGE_TAG, 'an unrecorded location')}: pass "
            "the --storage it ran with")
    if OVERRIDES_TAG not in parent.tags:
        raise SweepExists(f"--extend: sweep {name!r} has no record of its --set overrides "
                          f"(tag {OVERRIDES_TAG}), so what it ran is unknown: start a new "
                          "sweep with --name")
    try:
        recorded = recorded_spec(tracker.client, parent)
    except RecordedSpecUnusable as exc:
        raise SweepExists(f"--extend: the spec sweep {name!r} ran cannot be compared with "
                          f"this one ({exc}): start a new sweep with --name") from None
    grown = growth(recorded, spec, RESUMABLE_CHANGES)
    if grown.refused:
        raise SweepExists(
            f"--extend: sweep {name!r} ran with another spec ({_shown(list(grown.refused))}); "
            "an extension may only add grid values, seeds or Optuna samples, and change "
            + ", ".join(sorted(RESUMABLE_CHANGES)) + "; pass --name to start a new sweep")
    if not grown.added:
        ended = f"its last driver ended it {parent.status}"
        raise SweepExists(
            f"--extend: the spec adds no trial to sweep {name!r} ({_trials(num_trials(spec))}"
            f", {ended}): add grid values, seeds or Optuna samples to extend it"
            + ("" if parent.status == "FINISHED" else "; --resume continues it"))
    growths = growth_entries(parent.tags)
    if not has_room(growths, grown.added, num_trials(spec)):
        raise SweepExists(f"--extend: sweep {name!r} has grown {len(growths)} times, as "
                          "many as its parent run's tag sweeper.growth can record: start a "
                          "new sweep with --name")
    if len(json.dumps(list(overrides))) > MAX_TAG_VAL_LENGTH:
        raise SweepExists("--extend: the --set overrides do not fit in MLflow's tag "
                          f"{OVERRIDES_TAG}, so the grown sweep's record could not say what "
                          "it runs: put them in the spec file")
    return Extension(parent, recorded, growths, grown)


def _trials(count: int) -> str:
    return f"{count} trial{'s' * (count != 1)}"


def _shown(changed: list[str]) -> str:
    return "; ".join(changed[:3]) + ("; ..." if len(changed) > 3 else "")


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
