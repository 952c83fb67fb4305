"""A resume's re-attachment, timed: the driver's tracker opening a recorded sweep of
`bench scale` (`SweepTracker.open_sweep`, which reads every trial run) and mapping each of
its trials, by the Ray trial id it ran as, to its run. Run by `bench scale` as

    python -m sweeper.bench.reattach TRACKING_URI TRIALS EPOCHS

in a process of its own (for its peak memory); its last line is `REATTACHED SECONDS`:
the trials that found their run, and the seconds from opening the sweep to the last
trial mapped. The sweep is left FINISHED, as it was.
"""

from __future__ import annotations

import sys
import time

from sweeper.bench.scale_trials import SCALE_SPEC, scale_overrides, scale_spec, trial_key


def reattach(tracking_uri: str, trials: int, epochs: int) -> tuple[int, float]:
    """How many of the sweep's `trials` the resumed tracker maps to a run, and how long
    opening the sweep and mapping them took."""
    from sweeper.record.writer import SweepTracker
    from sweeper.search import num_trials, summary

    spec = scale_spec(trials, epochs)
    tracker = SweepTracker(tracking_uri, spec.name)
    started = time.perf_counter()
    tracker.open_sweep(SCALE_SPEC, summary(spec), num_trials(spec),
                       params={"warm_start_trials": "0"},
                       overrides=scale_overrides(trials, epochs))
    # run_status: the status of the run re-attached for a trial (None: none was), read
    # without writing; what `trial_run` returns for a FINISHED one.
    found = sum(tracker.run_status(trial_key(index)) is not None for index in range(trials))
    seconds = time.perf_counter() - started
    tracker.end_sweep("FINISHED")
    return found, seconds


def main(argv: list[str]) -> int:
    uri, trials, epochs = argv[0], int(argv[1]), int(argv[2])
    found, seconds = reattach(uri, trials, epochs)
    print(found, seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
