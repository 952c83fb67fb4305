"""The `sweeper` command line: argument parsing and dispatch. Each subcommand returns
its exit status; `main` turns every reported error into its own (sweeper.errors)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from sweeper.errors import (
    EXIT_BROKEN_PIPE,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    SweeperError,
)
from sweeper.spec import SpecError, load_spec, parse_spec, read_spec_text, summary, trial_at

DESCRIPTION = ("Hyperparameter sweeps of SimCLR and BYOL: run a search space with Ray Tune, "
               "track every trial in MLflow, report the thesis's tables.")
EPILOG = """examples:
  sweeper validate search_spaces/simclr_grid.yaml
  sweeper run search_spaces/demo.yaml              # then: sweeper status demo
  sweeper ui demo                                  # MLflow, opened on the sweep's trials
  sweeper report demo --reference thesis          # compared with the thesis's Table 3

exit status: 0 done, 1 some trial or work failed, 2 a mistake in the input
(spec, option, data, location), 130 interrupted (the output says how to resume),
141 the reader of the output closed it (as `| head` does)"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"sweeper: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="sweeper", description=DESCRIPTION, epilog=EPILOG,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    overrides = {"action": "append", "default": [], "metavar": "KEY=VALUE",
                 "help": "override a config value by its dotted YAML path (repeatable)"}

    validate = commands.add_parser("validate", help="check a spec and summarise its trials")
    validate.add_argument("spec", help="path to a sweep spec (YAML)")
    validate.add_argument("--set", dest="overrides", **overrides)  # type: ignore[arg-type]

    trial = commands.add_parser("trial", help="run one trial of a spec in the foreground, no Ray")
    trial.add_argument("spec", help="path to a sweep spec (YAML)")
    trial.add_argument("--index", type=int, default=0, help="which trial of the expansion (0)")
    trial.add_argument("--set", dest="overrides", **overrides)  # type: ignore[arg-type]
    trial.add_argument("--json", action="store_true",
                       help="print the final metrics as one JSON object on the last line")

    run = commands.add_parser("run", help="run a sweep with Ray Tune, tracked in MLflow")
    run.add_argument("spec", help="path to a sweep spec (YAML)")
    run.add_argument("--set", dest="overrides", **overrides)  # type: ignore[arg-type]
    run.add_argument("--name", help="sweep name (MLflow experiment, results folder)")
    run.add_argument("--dry-run", action="store_true", help="list the trials and exit")
    run.add_argument("--resume", action="store_true",
                     help="continue an interrupted sweep: finished trials are kept")
    run.add_argument("--retry-failed", action="store_true",
                     help="with --resume, also re-run trials that failed")
    _add_location_options(run)
    run.add_argument("--address", help="an existing Ray cluster (default: a local instance)")

    submit = commands.add_parser(
        "submit", help="run `sweeper run SPEC` as a Ray job on a cluster's job server")
    submit.add_argument("spec", help="path to a sweep spec, inside this folder (it is uploaded)")
    submit.add_argument("--address", help="the job server, e.g. http://HEAD:8265")
    submit.add_argument("--dry-run", action="store_true",
                        help="list every file that would be uploaded, and their total size, "
                        "then exit without contacting the cluster")
    submit.add_argument("--wait", action="store_true",
                        help="stream the job's logs; exit 0 iff the job succeeded")
    submit.add_argument("--set", dest="overrides", **overrides)  # type: ignore[arg-type]
    submit.add_argument("--name")
    submit.add_argument("--resume", action="store_true")
    submit.add_argument("--retry-failed", action="store_true")
    _add_location_options(submit)

    status = commands.add_parser("status", help="the trials of a sweep and their metrics")
    status.add_argument("name", nargs="?", help="the sweep's name")
    status.add_argument("--job", help="instead: the state of a job from `sweeper submit`")
    status.add_argument("--address", help="with --job: the job server, http://HEAD:8265")
    _add_location_options(status)

    ui = commands.add_parser(
        "ui", help="serve the MLflow UI on 127.0.0.1; print links to a sweep's trials")
    ui.add_argument("name", nargs="?", help="the sweep to open (default: the store's home)")
    ui.add_argument("--port", type=int, default=5000, help="port (default 5000)")
    ui.add_argument("--host", default="127.0.0.1",
                    help="address to listen on (default 127.0.0.1: this machine only)")
    ui.add_argument("--tracking-uri", help="MLflow tracking URI (default: "
                    "$MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in this folder)")
    ui.add_argument("--no-browser", dest="browser", action="store_false",
                    help="only print the links (default: also open the comparison in "
                    "a browser, where there is a graphical one)")

    # Subcommands owned by other modules: each adds its arguments and runs itself.
    from sweeper.bench_cli import add_bench_arguments
    from sweeper.reports.command import add_report_arguments

    add_report_arguments(commands.add_parser(
        "report", help="tables (CSV, LaTeX) and plots of a sweep from MLflow"))
    add_bench_arguments(commands.add_parser(
        "bench", help="measure augmentation, training-step and sweep throughput"))
    return parser


def _add_location_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: "
                        "$MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in this folder)")
    parser.add_argument("--storage", default="results",
                        help="results root, a folder or a URI every node reaches "
                        "(s3://BUCKET/PATH); a sweep's folder is STORAGE/NAME "
                        "(default: results)")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    _prepare_process(args)
    handler = {"validate": _validate, "trial": _trial, "run": _run, "status": _status,
               "report": _report, "bench": _bench, "ui": _ui, "submit": _submit}[args.command]
    from trainers.data import DatasetError

    try:
        return handler(args)
    except SweeperError as exc:  # every error a command reports: its exit status with it
        print(f"sweeper: {exc}", file=sys.stderr)
        return exc.exit_code
    except DatasetError as exc:  # the trainers' own (they import nothing of sweeper)
        print(f"sweeper: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("sweeper: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of stdout went away (`sweeper run SPEC --dry-run | head`): it has
        # what it wanted. Later writes, Python's own flush at exit included, go nowhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def _prepare_process(args: argparse.Namespace) -> None:
    """The settings every command shares, once, before MLflow is imported (a sweep's
    own, for Ray, are applied by `_run`: sweeper.driver_process)."""
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    # MLflow logs its schema creation and migrations at INFO, not a user's concern; it
    # sets its loggers' level from this variable when it is first imported.
    if not args.verbose:
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    # MLflow draws a progress bar on stderr for every download, even of one small file.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if args.command in ("status", "ui", "report"):  # they read a store that may not answer
        from sweeper.reachable import bound_http_retries

        bound_http_retries()


def _validate(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec, args.overrides)
    print(summary(spec))
    return EXIT_OK


def _trial(args: argparse.Namespace) -> int:
    # Imported here so that `validate` stays fast and light.
    from sweeper.run_trial import run_trial

    spec = load_spec(args.spec)
    trial = trial_at(spec, args.index, args.overrides)
    started = time.perf_counter()
    metrics = run_trial(trial, progress=sys.stderr)
    result = {
        "trial": trial.index,
        "config_hash": trial.config_hash,
        "params": trial.params,
        **metrics,
        "wall_seconds": round(time.perf_counter() - started, 3),
    }
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        print(_format_final(result))
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    from sweeper import driver_process
    from sweeper.dry_run import dry_run

    overrides = list(args.overrides) + ([f"name={args.name}"] if args.name else [])
    spec_text = read_spec_text(args.spec)  # read once: MLflow records the text that was parsed
    spec = parse_spec(spec_text, source=args.spec, overrides=overrides)
    if args.dry_run:
        print("\n".join(dry_run(spec)))
        return EXIT_OK
    if args.retry_failed and not args.resume:
        raise SpecError("--retry-failed only applies with --resume")
    # Before Ray is imported: it reads some of these settings once, at import.
    driver_process.prepare(send_token=bool(args.address or os.environ.get("RAY_ADDRESS")))
    from sweeper.driver import SweepOptions, run_sweep
    from sweeper.mlflow_store import resolve_tracking_uri
    from sweeper.storage import sweep_location

    options = SweepOptions(storage=args.storage,
                           tracking_uri=resolve_tracking_uri(args.tracking_uri),
                           address=args.address, resume=args.resume,
                           retry_failed=args.retry_failed)
    print(f"sweep {spec.name!r}: {summary(spec)}", file=sys.stderr)
    outcome = run_sweep(spec, spec_text, options, overrides=overrides)
    print(_format_outcome(outcome, spec.metric), file=sys.stderr)
    folder = sweep_location(args.storage, spec.name)
    browse = ["sweeper", "ui", spec.name] + (["--tracking-uri", args.tracking_uri]
                                             if args.tracking_uri else [])
    print(f"results: {folder}\nMLflow:  {options.tracking_uri} (experiment {spec.name!r}); "
          f"browse with: {shlex.join(browse)}", file=sys.stderr)
    if outcome.interrupted:
        print(f"interrupted: {outcome.unfinished} trial(s) unfinished. Resume with:\n"
              f"  {resume_command(args.argv)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_FAILED if outcome.failed else EXIT_OK


def resume_command(argv: Sequence[str]) -> str:
    """The command that resumes this run: every option as given, quoted for the shell."""
    words = [word for word in argv if word != "--dry-run"]
    if "--resume" not in words:
        words.append("--resume")
    program = sys.argv[0]
    prefix = ([program] if Path(program).name == "sweeper"
              else [sys.executable, "-m", "sweeper.cli"])
    return shlex.join([*prefix, *words])


def _format_outcome(outcome: object, metric: str) -> str:
    from sweeper.driver import SweepOutcome

    assert isinstance(outcome, SweepOutcome)
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


def _submit(args: argparse.Namespace) -> int:
    from sweeper.cluster_access import use_token_if_available
    from sweeper.spec import expand
    from sweeper.submit import plan, submit

    overrides = list(args.overrides) + ([f"name={args.name}"] if args.name else [])
    spec = load_spec(args.spec, overrides)  # a bad spec fails here, not on the cluster
    datasets = {trial.config.dataset for trial in expand(spec)}
    if args.dry_run:
        upload = plan(args.spec, datasets)
        print("\n".join(upload.listing()))
        for note in upload.notes:
            print(f"sweeper: note: {note}", file=sys.stderr)
        return EXIT_OK
    if not args.address:
        raise SpecError("sweeper submit needs --address (the job server, http://HEAD:8265), "
                        "or --dry-run to list what would be uploaded")
    run_args = [arg for override in args.overrides for arg in ("--set", override)]
    for flag, value in (("--name", args.name), ("--tracking-uri", args.tracking_uri)):
        if value:
            run_args += [flag, value]
    run_args += ["--storage", args.storage]
    run_args += [flag for flag, on in (("--resume", args.resume),
                                       ("--retry-failed", args.retry_failed)) if on]
    if not args.tracking_uri:
        print("sweeper: note: no --tracking-uri: the job's runs go to $MLFLOW_TRACKING_URI on "
              "the cluster, else to a SQLite file in the job's temporary folder",
              file=sys.stderr)
    use_token_if_available()  # before Ray's job client is imported
    return submit(args.address, args.spec, run_args, args.wait, datasets)


def _status(args: argparse.Namespace) -> int:
    from sweeper.mlflow_store import resolve_tracking_uri
    from sweeper.reachable import check_readable
    from sweeper.tracking import ERROR_TAG, REPEAT_TAG, STOPPED_TAG, find_sweep

    if args.job:
        from sweeper.cluster_access import use_token_if_available
        from sweeper.submit import job_status

        if not args.address:
            raise SpecError("--job needs --address (the job server, http://HEAD:8265)")
        use_token_if_available()  # before Ray's job client is imported
        print(job_status(args.address, args.job))
        return EXIT_OK
    if not args.name:
        raise SpecError("sweeper status needs a sweep NAME (or --job ID --address URL)")

    uri = resolve_tracking_uri(args.tracking_uri)
    check_readable(uri)
    tracker = find_sweep(uri, args.name)
    if tracker is None:
        raise SpecError(f"no sweep named {args.name!r} in {uri}")
    runs = sorted(tracker.trial_runs(), key=lambda r: int(r.data.tags.get(
        "sweeper.trial_index", "-1")))
    print(f"{'trial':<32} {'status':<9} {'epoch':>5} {'top_1':>7} {'top_5':>7}  note")
    for run in runs:
        m, tags = run.data.metrics, run.data.tags
        note = (f"stopped early at epoch {tags[STOPPED_TAG]} by the scheduler"
                if STOPPED_TAG in tags else tags.get(ERROR_TAG, ""))
        if REPEAT_TAG in tags:
            note = f"repeats the configuration of run {tags[REPEAT_TAG]}; {note}".rstrip("; ")
        print(f"{run.info.run_name:<32} {run.info.status:<9} {int(m.get('epoch', 0)):>5} "
              f"{m.get('top_1_accuracy', float('nan')):>7.4f} "
              f"{m.get('top_5_accuracy', float('nan')):>7.4f}  {note}".rstrip())
    states = [r.info.status for r in runs]
    stopped = sum(STOPPED_TAG in r.data.tags for r in runs)
    print(f"{states.count('FINISHED')} finished"
          + (f" ({stopped} stopped early)" if stopped else "")
          + f", {states.count('RUNNING')} running, "
          f"{states.count('FAILED')} failed, {states.count('KILLED')} interrupted")
    for line in _tie_group(uri, args.name):
        print(line)
    return EXIT_OK


def _tie_group(uri: str, name: str) -> list[str]:
    """With several seeds per cell: the cells not significantly worse than the best."""
    from sweeper.reports.collect import load_sweep
    from sweeper.reports.tables import TIED, indistinguishable_from_best

    sweep = load_sweep(uri, name)
    trials = sweep.trials[sweep.trials["state"] == "FINISHED"]
    if not sweep.axes or trials.empty or trials.groupby(sweep.axes).size().max() < 2:
        return []
    cells = indistinguishable_from_best(trials, sweep.axes, sweep.metric, sweep.mode)
    worse = "below" if sweep.mode == "max" else "above"
    lines = [f"indistinguishable from the best by mean {sweep.metric} (not significantly "
             f"{worse} it: Welch's one-sided t-test over seeds, 5%):"]
    for _, cell in cells[cells[TIED].fillna(False).astype(bool)].iterrows():
        where = " ".join(f"{axis}={cell[axis]}" for axis in sweep.axes)
        lines.append(f"  {where}  mean {cell['mean']:.4f} ± {cell['ci95']:.4f} "
                     f"(95% CI, {int(cell['n'])} seeds)")
    return lines


def _ui(args: argparse.Namespace) -> int:
    from sweeper.mlflow_store import resolve_tracking_uri
    from sweeper.ui import serve

    return serve(resolve_tracking_uri(args.tracking_uri), args.name, args.host, args.port,
                 browser=args.browser)


def _report(args: argparse.Namespace) -> int:
    from sweeper.reports.command import run_report

    return run_report(args)


def _bench(args: argparse.Namespace) -> int:
    from sweeper import driver_process
    from sweeper.bench_cli import run_bench

    driver_process.prepare()  # `bench sweep` drives sweeps

    return run_bench(args)


def _format_final(result: dict[str, object]) -> str:
    keys = ("top_1_accuracy", "top_5_accuracy", "regularization_loss", "steps", "wall_seconds")
    return "final: " + "  ".join(f"{k}={result[k]}" for k in keys if k in result)


if __name__ == "__main__":
    sys.exit(main())
