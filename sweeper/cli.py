"""The `sweeper` command line: argument parsing only; every subcommand returns
an exit code (0 ok, 1 a trial failed, 2 a user mistake, 130 interrupted)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence

from sweeper.spec import SpecError, load_spec, summary, trial_at

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"sweeper: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="sweeper", description=__doc__.splitlines()[0] if __doc__ else None)
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    handler = {"validate": _validate, "trial": _trial}[args.command]
    try:
        return handler(args)
    except SpecError as exc:
        print(f"sweeper: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("sweeper: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _validate(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec, args.overrides)
    print(summary(spec))
    return EXIT_OK


def _trial(args: argparse.Namespace) -> int:
    # Imported here so that `validate` stays fast and light.
    from sweeper.run_trial import TrialFailed, run_trial

    spec = load_spec(args.spec)
    trial = trial_at(spec, args.index, args.overrides)
    started = time.perf_counter()
    try:
        metrics = run_trial(trial, progress=sys.stderr)
    except TrialFailed as exc:
        print(f"sweeper: {exc}", file=sys.stderr)
        return exc.exit_code
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


def _format_final(result: dict[str, object]) -> str:
    keys = ("top_1_accuracy", "top_5_accuracy", "regularization_loss", "steps", "wall_seconds")
    return "final: " + "  ".join(f"{k}={result[k]}" for k in keys if k in result)


if __name__ == "__main__":
    sys.exit(main())
