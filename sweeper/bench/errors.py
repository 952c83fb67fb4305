"""The two ways a benchmark refuses or fails, which `sweeper bench` turns into exit codes."""

from __future__ import annotations

from sweeper.errors import SweeperError, WorkFailed


class BenchError(SweeperError):
    """A bad argument or an unusable device/dataset: the CLI prints it and exits 2."""


class BenchFailed(WorkFailed):
    """The measured work itself failed (a NaN loss, a failed sweep trial): exit 1."""
