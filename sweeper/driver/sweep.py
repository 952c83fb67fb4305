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
from sweeper.driver.admission import should_restore
from sweeper.driver.events import SweepSession, bound, error_text
from sweeper.driver.ray_instance import check_resources, init_ray
from sweeper.driver.tuner import new_tuner, restored_tuner
from sweeper.driver.warm_start import WarmStart, collect, finished_in_sources
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
    restoring = should_restore(spec, folder, tune.Tuner.can_restore(folder), tracker,
                                     options.resume, progress)
    warm = (finished_in_sources(spec, options.tracking_uri) if restoring
            else collect(spec, options.tracking_uri))
    _say_warm_start(warm, progress)
    init_ray(options.address)
    check_resources(spec)
    # Restoring only reads the stored state (and may refuse it); a new Tuner writes its
    # own, so it is built once the sweep is opened.
    restored = restored_tuner(spec, folder, options.retry_failed) if restoring else None
    tracker.open_sweep(spec_text, summary(spec), num_trials(spec), storage=folder,
                       params={"warm_start_trials": str(len(warm.points))},
                       overrides=overrides)
    warm_trials = (int(tracker.parent_param("warm_start_trials") or 0) if restoring
                   else len(warm.points))
    session = SweepSession(spec, tracker, progress, warm_trials, known=warm.finished)
    try:
        if restored is not None:
            print(f"resuming sweep {spec.name!r} from {folder}", file=progress, flush=True)
        tuner = restored or new_tuner(spec, storage.resolve(options.storage), warm)
        with _sigterm_as_interrupt(), bound(session):
            tuner.fit()
        outcome = _outcome(spec, session, tracker, time.perf_counter() - started)
    except BaseException as exc:
        interrupted = isinstance(exc, KeyboardInterrupt)
        reason = None if interrupted else f"the driver failed: {type(exc).__name__}: {exc}"
        tracker.end_open_trials("KILLED" if interrupted else "FAILED", reason)
        tracker.end_sweep("KILLED" if interrupted else "FAILED", reason, patience_s=30.0)
        raise
    records = tracker.trial_runs()  # read once for the summary: the trials of every session
    best = best_trial(records, spec.metric, spec.mode)
    outcome.best = (best.name, best.metrics[spec.metric]) if best is not None else None
    outcome.stopped_early = sum(r.status == "FINISHED" and r.stopped_at is not None
                                for r in records)
    if spec.save_encoders == "best" and best is not None:
        session.keep_encoder_of(best.trial_id)
    tracker.log_summary(records, spec.metric, spec.mode)
    tracker.end_open_trials("KILLED")  # trials an interrupt stopped continue on --resume
    tracker.end_sweep("KILLED" if outcome.interrupted
                      else "FAILED" if outcome.failed else "FINISHED")
    return outcome


def _say_warm_start(warm: WarmStart, progress: TextIO) -> None:
    for note in warm.notes:
        print(f"warm start: {note}", file=progress, flush=True)
    if warm.points:
        print(f"warm start: {len(warm.points)} finished trial(s) of "
              + ", ".join(f"{n} ({k})" for n, k in warm.used.items()) + " seed the sampler",
              file=progress, flush=True)


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
