"""The `sweeper` command line: argument parsing and dispatch. Each subcommand returns
its exit status; `main` turns every reported error into its own (sweeper.errors)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from sweeper.errors import (
    EXIT_BROKEN_PIPE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    SpecError,
    SweeperError,
)
from sweeper.search import summary

DESCRIPTION = ("Hyperparameter sweeps of SimCLR and BYOL: run a search space with Ray Tune, "
               "track every trial in MLflow, report the thesis's tables.")
EPILOG = """examples:
  sweeper validate search_spaces/simclr_grid.yaml
  sweeper run search_spaces/demo.yaml              # then: sweeper status demo
  sweeper ui demo                                  # MLflow, opened on the sweep's trials
  sweeper report demo --reference thesis          # compared with the thesis's Table 3
  sweeper rerun RUN_ID                             # retrain one trial, compare its metrics

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

    rerun = commands.add_parser(
        "rerun", help="retrain one trial from its MLflow run, in the foreground, no Ray; "
        "compare its final metrics and provenance with the recorded ones")
    rerun.add_argument("run_id", metavar="RUN_ID", help="the trial's MLflow run id")
    rerun.add_argument("--tracking-uri", help="MLflow tracking URI (default: "
                       "$MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in this folder)")
    rerun.add_argument("--set", dest="overrides", **overrides)  # type: ignore[arg-type]
    rerun.add_argument("--json", action="store_true",
                       help="print the comparison as one JSON object on the last line")

    run = commands.add_parser("run", help="run a sweep with Ray Tune, tracked in MLflow")
    run.add_argument("spec", help="path to a sweep spec (YAML)")
    run.add_argument("--set", dest="overrides", **overrides)  # type: ignore[arg-type]
    run.add_argument("--name", help="sweep name (MLflow experiment, results folder)")
    run.add_argument("--dry-run", action="store_true", help="list the trials and exit")
    run.add_argument("--resume", action="store_true",
                     help="continue an interrupted sweep: finished trials are kept")
    run.add_argument("--retry-failed", action="store_true",
                     help="with --resume or --extend, also re-run trials that failed")
    run.add_argument("--extend", action="store_true",
                     help="grow the sweep of this name to the spec: new grid values or seeds, "
                     "a larger num_samples; only the new trials run, under the same parent")
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
    submit.add_argument("--extend", action="store_true")
    _add_location_options(submit)

    status = commands.add_parser("status", help="the trials of a sweep and their metrics")
    status.add_argument("name", nargs="?", help="the sweep's name")
    status.add_argument("--job", help="instead: the state of a job from `sweeper submit`")
    status.add_argument("--address", help="with --job: the job server, http://HEAD:8265")
    status.add_argument("--best", type=int, default=20, metavar="N",
                        help="how many of the best trials to list (default 20)")
    status.add_argument("--all", action="store_true",
                        help="list every trial, by trial index")
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
    from sweeper.bench.command import add_bench_arguments
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
    handler = {"validate": _validate, "trial": _trial, "rerun": _rerun, "run": _run,
               "status": _status, "report": _report, "bench": _bench, "ui": _ui,
               "submit": _submit}[args.command]
    from trainers.dataset_error import DatasetError

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
    own, for Ray, are applied by `_run`: sweeper.cluster.driver_process)."""
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    # MLflow logs its schema creation and migrations at INFO, not a user's concern; it
    # sets its loggers' level from this variable when it is first imported.
    if not args.verbose:
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    # MLflow draws a progress bar on stderr for every download, even of one small file.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # MLflow's usage telemetry costs every command seconds where the network is closed (it
    # waits on its upload at exit): 3.5 s of a `status` here. The user may turn it on.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    if args.command in ("status", "ui", "report", "rerun"):  # a store that may not answer
        from sweeper.record.store import bound_http_retries

        bound_http_retries()


def _validate(args: argparse.Namespace) -> int:
    from sweeper.commands import read_user_spec

    spec, _ = read_user_spec(args.spec, args.overrides)
    print(summary(spec))
    return EXIT_OK


def _trial(args: argparse.Namespace) -> int:
    from sweeper.commands.trial import trial_command  # torch: only when a trial runs

    return trial_command(args)


def _rerun(args: argparse.Namespace) -> int:
    from sweeper.commands.rerun import rerun_command  # torch: only when a trial runs

    return rerun_command(args)


def _run(args: argparse.Namespace) -> int:
    from sweeper.commands.run import run

    return run(args)


def _submit(args: argparse.Namespace) -> int:
    from sweeper.commands.submit import submit_command

    return submit_command(args)


def _status(args: argparse.Namespace) -> int:
    if args.job:
        from sweeper.cluster.access import use_token_if_available
        from sweeper.cluster.submit import job_status

        if not args.address:
            raise SpecError("--job needs --address (the job server, http://HEAD:8265)")
        use_token_if_available()  # before Ray's job client is imported
        print(job_status(args.address, args.job))
        return EXIT_OK
    if not args.name:
        raise SpecError("sweeper status needs a sweep NAME (or --job ID --address URL)")
    from sweeper.commands.status import status_lines
    from sweeper.record.store import resolve_tracking_uri

    lines = status_lines(resolve_tracking_uri(args.tracking_uri), args.name, best=args.best,
                         every=args.all)
    print("\n".join(lines))
    return EXIT_OK


def _ui(args: argparse.Namespace) -> int:
    from sweeper.commands.ui import serve
    from sweeper.record.store import resolve_tracking_uri

    return serve(resolve_tracking_uri(args.tracking_uri), args.name, args.host, args.port,
                 browser=args.browser)


def _report(args: argparse.Namespace) -> int:
    from sweeper.reports.command import run_report

    return run_report(args)


def _bench(args: argparse.Namespace) -> int:
    from sweeper.bench.command import run_bench
    from sweeper.cluster import driver_process

    driver_process.prepare()  # `bench sweep` drives sweeps

    return run_bench(args)


if __name__ == "__main__":
    sys.exit(main())
