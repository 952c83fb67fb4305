"""One error model. An error a command reports is a `SweeperError` carrying its exit
status: 2 for a mistake the user can fix (a spec, a location, an unreachable server),
1 for work that failed. `sweeper.cli.main` catches them once and prints one line;
anything else is a bug and keeps its traceback."""

from __future__ import annotations

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports a reader that stopped reading


class SweeperError(Exception):
    """An error reported as `sweeper: <message>` with exit status `exit_code`."""

    exit_code = EXIT_USAGE


class SpecError(SweeperError):
    """A mistake in a spec or an override, with a message a user can act on (sweeper.spec)."""


class WorkFailed(SweeperError):
    """The work itself failed (a trial, a benchmark, attaching a report): exit 1."""

    exit_code = EXIT_FAILED
