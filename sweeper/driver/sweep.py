"""One sweep, from its pre-flight checks to its summary in MLflow: the order in which
things are checked, opened, run and closed, so that a refused sweep writes nothing
and a failed or interrupted one leaves nothing RUNNING."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from ray import tune
from ray.tune.experiment import Trial as RayTrial

from sweeper.cluster import storage
from sweeper.cluster.access import probe_address
from sweeper.driver.admission import Extension, check_extension, should_restore
from sweeper.driver.events import SweepSession, bound, error_text
from sweeper.driver.handover import quick_handovers
from sweeper.driver.ray_instance import check_resources, init_ray
from sweeper.driver.stages import Stage, next_stage, recorded_stages
from sweeper.driver.storage_faults import StorageFault, describe, storage_errno, watched
from sweeper.driver.tuner import growth_tuner, new_tuner, restored_tuner
from sweeper.driver.warm_start import WarmStart, collect, finished_in_sources, of_this_sweep
from sweeper.record.growth import growth_entries
from sweeper.record.ranking import best_trial
from sweeper.record.writer import SweepTracker
from sweeper.search import check_runnable, expand, num_trials, summary
from sweeper.spec.schema import SweepSpec
from trainers.config import DatasetConfig
from trainers.data import check_dataset


@dataclass(frozen=True)
class SweepOptions:
    storage: Path | str  # results root, a folder or a URI; the sweep's is storage/name
    tracking_uri: str
    address: str | None = None
    resume: bool = False
    retry_failed: bool = False
    extend: bool = False  # grow the recorded sweep to the spec (sweeper.driver.stages)


@dataclass
class SweepOutcome:
    total: int
    finished: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (run name, error)
    unfinished: int = 0  # trials not finished or failed: running, pending, or never started
    best: tuple[str, float] | None = None  # among trials that ran every epoch
    stopped_early: int = 0  # finished trials a scheduler stopped before their last epoch
    wall_seconds: float = 0.0
    trial_seconds: float = 0.0  # the trials' own time, summed over the epochs they reported
    # Why the sweep stopped before its end, other than an interrupt: the storage refused
    # a write (sweeper.driver.storage_faults); its unfinished trials continue on --resume.
    stopped: str | None = None

    @property
    def interrupted(self) -> bool:
        return bool(self.unfinished)


def run_sweep(spec: SweepSpec, spec_text: str, options: SweepOptions,
              progress: TextIO = sys.stderr, overrides: Sequence[str] = ()) -> SweepOutcome:
    """Run (or resume) the sweep to its end, or until interrupted. `spec_text` and the
    `overrides` it was loaded with are what MLflow records of the spec.

    Everything that can refuse the sweep (storage, data, MLflow, the sweep's identity,
    its stored state, Ray, resources) is checked before the sweep is opened in MLflow;
    whatever fails after that ends the parent run and every trial run still open, so
    nothing is left RUNNING."""
    started = time.perf_counter()
    check_runnable(spec)
    address = options.address or os.environ.get("RAY_ADDRESS")
    if address and "://" not in address and address != "auto":
        probe_address(address)  # first: a dead address must not wait on anything else
    storage.check_bucket(options.storage)
    folder = storage.sweep_location(options.storage, spec.name)
    if options.address is None:  # on a cluster the workers' filesystems are what matter
        largest: dict[DatasetConfig, int] = {}  # the largest batch each dataset must fill
        for trial in expand(spec):
            dataset, batch = trial.config.dataset, trial.config.train.batch_size
            largest[dataset] = max(largest.get(dataset, 0), batch)
        for dataset, batch in largest.items():
            check_dataset(dataset, batch)
    tracker = SweepTracker(options.tracking_uri, spec.name)
    tracker.check_available()
    restorable = tune.Tuner.can_restore(folder)
    extension = (check_extension(spec, folder, restorable, tracker, overrides)
                 if options.extend else None)
    restoring = extension is not None or should_restore(spec, folder, restorable, tracker,
                                                        options.resume, progress)
    stages = _recorded_stages(folder, tracker, extension) if restoring else []
    warm = (finished_in_sources(spec, options.tracking_uri) if restoring
            else collect(spec, options.tracking_uri))
    _say_warm_start(warm, progress)
    init_ray(options.address)
    check_resources(spec)
    # Restoring only reads the stored state (and may refuse it); a new Tuner writes its
    # own, so it is built once the sweep is opened.
    restored = [(stage, restored_tuner(spec, stage.folder, options.retry_failed, progress))
                for stage in stages]
    tracker.open_sweep(spec_text, summary(spec), num_trials(spec), storage=folder,
                       params={"warm_start_trials": str(len(warm.points))},
                       overrides=overrides)
    warm_trials = (int(tracker.parent_param("warm_start_trials") or 0) if restoring
                   else len(warm.points))
    session = SweepSession(spec, tracker, progress, warm_trials, known=warm.finished)
    session.storage_folder = folder
    stopped: str | None = None
    try:
        try:
            # Each stage: its Tuner, the number of its first Optuna trial, what to say
            # first. A growth's trials run first, so that an interrupt at any point after
            # its record leaves every stage stored (a Tuner never fitted holds nothing to
            # restore).
            runs: list[tuple[tune.Tuner, int, str]] = []
            if extension is not None:
                runs.append(_growth(spec, spec_text, overrides, extension, folder, stages,
                                    tracker, options.tracking_uri, progress))
            runs += [(tuner, stage.first_number,
                      f"resuming {_stage_label(stage.number, spec.name)} from {stage.folder}")
                     for stage, tuner in restored]
            if not restoring:
                runs.append((new_tuner(spec, storage.resolve(options.storage), warm),
                             warm_trials, ""))
            with (_sigterm_as_interrupt(), bound(session), watched(session.storage_failed),
                  quick_handovers()):
                _fit_stages(runs, session, progress)
        except OSError as exc:  # a write of Tune's own, refused for good
            if (code := storage_errno(exc)) is None:
                raise
            stopped = describe(code, folder)
        except StorageFault as fault:
            stopped = str(fault)
        outcome = _outcome(spec, session, tracker, time.perf_counter() - started)
        outcome.stopped = stopped
    except BaseException as exc:
        interrupted = isinstance(exc, KeyboardInterrupt)
        reason = None if interrupted else f"the driver failed: {type(exc).__name__}: {exc}"
        with _shielded():
            tracker.end_open_trials("KILLED" if interrupted else "FAILED", reason)
            tracker.end_sweep("KILLED" if interrupted else "FAILED", reason, patience_s=30.0)
        raise
    with _shielded():
        return _finish(spec, session, tracker, outcome, stopped)


def _finish(spec: SweepSpec, session: SweepSession, tracker: SweepTracker,
            outcome: SweepOutcome, stopped: str | None) -> SweepOutcome:
    """The summary in MLflow, the best trial's encoder, every run ended."""
    records = tracker.trial_runs()  # read once for the summary: the trials of every session
    best = best_trial(records, spec.metric, spec.mode)
    outcome.best = (best.name, best.metrics[spec.metric]) if best is not None else None
    outcome.stopped_early = sum(r.status == "FINISHED" and r.stopped_at is not None
                                for r in records)
    if spec.save_encoders == "best" and best is not None:
        session.keep_encoder_of(best.trial_id)
    tracker.log_summary(records, spec.metric, spec.mode)
    tracker.end_open_trials("KILLED")  # trials an interrupt stopped continue on --resume
    if stopped is not None:
        tracker.end_sweep("FAILED", stopped)
    else:
        tracker.end_sweep("KILLED" if outcome.interrupted
                          else "FAILED" if outcome.failed else "FINISHED")
    return outcome


def _recorded_stages(folder: str, tracker: SweepTracker,
                     extension: Extension | None) -> list[Stage]:
    if extension is not None:
        return recorded_stages(folder, extension.parent, extension.growths)
    parent = tracker.existing_sweep()
    return recorded_stages(folder, parent, growth_entries(parent.tags)) if parent else []


def _growth(spec: SweepSpec, spec_text: str, overrides: Sequence[str], extension: Extension,
            folder: str, stages: list[Stage], tracker: SweepTracker, tracking_uri: str,
            progress: TextIO) -> tuple[tune.Tuner, int, str]:
    """The growth's stage: its Tuner (stored before the growth is recorded, so that a
    recorded growth can always be restored), then its record in MLflow."""
    added, total = extension.growth.added, num_trials(spec)
    stage = next_stage(folder, stages, total - added)
    warm = collect(spec, tracking_uri)
    _say_warm_start(warm, progress)
    own = of_this_sweep(spec, tracker.recorded_trials())
    if own.points:
        print(f"extension: {len(own.points)} finished trial(s) of {spec.name!r} seed the "
              "sampler", file=progress, flush=True)
    warm = WarmStart(warm.points + own.points, warm.rewards + own.rewards)
    tuner = growth_tuner(spec, folder, stage.number, extension.growth, warm)
    tracker.record_growth(spec_text, overrides, summary(spec), added, total)
    return (tuner, stage.first_number,
            f"extending sweep {spec.name!r} by {added} trial{'s' * (added != 1)} to {total} "
            f"({_stage_label(stage.number, spec.name)}, in {stage.folder})")


# A run's MLflow status as the Ray trial status it stands for in the progress line.
_SETTLED = {"FINISHED": RayTrial.TERMINATED, "FAILED": RayTrial.ERROR}


def _stage_label(number: int, name: str) -> str:
    return f"sweep {name!r}" if number == 0 else f"growth {number} of sweep {name!r}"


def _fit_stages(runs: list[tuple[tune.Tuner, int, str]], session: SweepSession,
                progress: TextIO) -> None:
    """Run each stage to its end, one after the other; the session then holds the Ray
    trials of them all."""
    done: list[RayTrial] = []
    if len(runs) > 1:
        session.recorded_status = {r.trial_id: _SETTLED.get(r.status, RayTrial.PENDING)
                                   for r in session.tracker.recorded_trials()}
    for tuner, first_number, line in runs:
        if line:
            print(line, file=progress, flush=True)
        session.warm_trials, session.trials, session.earlier = first_number, [], list(done)
        try:
            tuner.fit()
            session.tracker.settle()  # its last progress lines before the next stage's
        except BaseException:
            session.trials = done + session.trials  # what the summary can still say
            raise
        done += session.trials
    session.trials = done


def _say_warm_start(warm: WarmStart, progress: TextIO) -> None:
    for note in warm.notes:
        print(f"warm start: {note}", file=progress, flush=True)
    if warm.points:
        print(f"warm start: {len(warm.points)} finished trial(s) of "
              + ", ".join(f"{n} ({k})" for n, k in warm.used.items()) + " seed the sampler",
              file=progress, flush=True)


@contextmanager
def _shielded() -> Iterator[None]:
    """Once Tune has stopped, the sweep's runs are ended in MLflow: a further Ctrl-C (a
    double press, or one meant for Tune's own graceful stop) must not leave them RUNNING
    half-way through, so SIGINT is ignored until the block ends."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """While the sweep runs, SIGTERM (a batch scheduler, `kill`) stops it as gracefully
    as Ctrl-C. Installed after ray.init, which sets a SIGTERM handler of its own that
    aborts the driver; the handler before is back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers belong to the main thread
        return
    before = signal.signal(signal.SIGTERM, lambda *_: os.kill(os.getpid(), signal.SIGINT))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def _outcome(spec: SweepSpec, session: SweepSession, tracker: SweepTracker,
             wall: float) -> SweepOutcome:
    outcome = SweepOutcome(total=num_trials(spec), wall_seconds=wall,
                           trial_seconds=session.trial_seconds)
    for trial in session.trials:
        name = session.name_of(trial)
        if trial.status == RayTrial.ERROR:
            outcome.failed.append((name, session.errors.get(trial.trial_id)
                                   or tracker.recorded_error(trial.trial_id)
                                   or error_text(trial)))
        # Tune also marks TERMINATED the trials an interrupt stopped mid-run; those have
        # no FINISHED run (None: a store outage kept it from being written).
        elif trial.status == RayTrial.TERMINATED and tracker.run_status(trial.trial_id) in (
                None, "FINISHED"):
            outcome.finished.append(name)
    # Tune creates trials lazily, so some may not exist yet when a sweep is interrupted.
    outcome.unfinished = outcome.total - len(outcome.finished) - len(outcome.failed)
    return outcome
