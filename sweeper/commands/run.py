"""`sweeper run SPEC`: a sweep from its spec to its outcome: the dry run, the sweep
itself (sweeper.driver), what it prints at the end and the command that resumes it."""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sweeper.commands import read_user_spec
from sweeper.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, SpecError
from sweeper.search import summary

if TYPE_CHECKING:
    from sweeper.driver import SweepOutcome


def run(args: argparse.Namespace) -> int:
    from sweeper.cluster import driver_process
    from sweeper.commands.dry_run import dry_run

    overrides = list(args.overrides) + ([f"name={args.name}"] if args.name else [])
    # Read once: MLflow records the text that was parsed.
    spec, spec_text = read_user_spec(args.spec, overrides)
    if args.dry_run:
        print("\n".join(dry_run(spec)))
        return EXIT_OK
    if args.retry_failed and not (args.resume or args.extend):
        raise SpecError("--retry-failed only applies with --resume or --extend")
    # Before Ray is imported: it reads some of these settings once, at import.
    driver_process.prepare(send_token=bool(args.address or os.environ.get("RAY_ADDRESS")))
    from sweeper.cluster.storage import sweep_location
    from sweeper.driver import SweepOptions, run_sweep
    from sweeper.record.store import resolve_tracking_uri
    from trainers.memory import freeze_startup_objects

    options = SweepOptions(storage=args.storage,
                           tracking_uri=resolve_tracking_uri(args.tracking_uri),
                           address=args.address, resume=args.resume,
                           retry_failed=args.retry_failed, extend=args.extend)
    print(f"sweep {spec.name!r}: {summary(spec)}", file=sys.stderr)
    freeze_startup_objects()  # this process drives the sweep: its imports are never garbage
    try:
        outcome = run_sweep(spec, spec_text, options, overrides=overrides)
    except KeyboardInterrupt:  # a second Ctrl-C cut Tune's graceful stop short
        _ignore_interrupts()
        print(f"interrupted. Resume with:\n  {resume_command(args.argv)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    _ignore_interrupts()
    print(format_outcome(outcome, spec.metric), file=sys.stderr)
    folder = sweep_location(args.storage, spec.name)
    browse = ["sweeper", "ui", spec.name] + (["--tracking-uri", args.tracking_uri]
                                             if args.tracking_uri else [])
    print(f"results: {folder}\nMLflow:  {options.tracking_uri} (experiment {spec.name!r}); "
          f"browse with: {shlex.join(browse)}", file=sys.stderr)
    if outcome.stopped:  # the storage refused a write: fixed there, the sweep resumes
        print(f"sweeper: {outcome.stopped} with:\n  {resume_command(args.argv)}",
              file=sys.stderr)
        return EXIT_FAILED
    if outcome.interrupted:
        print(f"interrupted: {outcome.unfinished} trial(s) unfinished. Resume with:\n"
              f"  {resume_command(args.argv)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_FAILED if outcome.failed else EXIT_OK


def _ignore_interrupts() -> None:
    """What is left (the summary, and Ray's shutdown, which runs at exit) is short and must
    not end in a KeyboardInterrupt traceback ("Exception ignored in atexit callback")
    when Ctrl-C is pressed again: SIGINT is ignored from here to the exit."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def resume_command(argv: Sequence[str]) -> str:
    """The command that resumes this run: every option as given, quoted for the shell
    (an interrupted --extend has recorded its growth: it resumes like any sweep)."""
    words = [word for word in argv if word not in ("--dry-run", "--extend")]
    if "--resume" not in words:
        words.append("--resume")
    program = sys.argv[0]
    prefix = ([program] if Path(program).name == "sweeper"
              else [sys.executable, "-m", "sweeper.cli"])
    return shlex.join([*prefix, *words])


def format_outcome(outcome: SweepOutcome, metric: str) -> str:
    lines = [f"{len(outcome.finished)}/{outcome.total} trials finished, "
             f"{len(outcome.failed)} failed, {outcome.unfinished} unfinished "
             f"in {outcome.wall_seconds:.1f} s (the trials' own time: "
             f"{outcome.trial_seconds:.1f} s)"]
    if outcome.best:
        lines.append(f"best {metric}: {outcome.best[1]:.4f} ({outcome.best[0]})"
                     + (f", among the trials that ran every epoch ({outcome.stopped_early} "
                        "stopped early by the scheduler are not compared)"
                        if outcome.stopped_early else ""))
    lines += [f"  FAILED {name}: {error}" for name, error in outcome.failed]
    return "\n".join(lines)
