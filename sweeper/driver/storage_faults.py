"""A results storage that stops taking writes while a sweep runs (a full disk, a quota,
a remount read-only, permissions taken away): the sweep stops cleanly, once, with one
line naming the storage and the cause, instead of Tune retrying every trial into the
same wall and the driver dying on a half-written error file.

Writes to the storage happen in two places, and both are watched:
- a trial's worker uploads each checkpoint (`tune.report`): the worker reports the
  failure as a result (`STORAGE_FAULT_KEY`) and waits to be stopped, so that Tune
  neither retries it nor marks it failed (`--resume` continues it from its last
  checkpoint);
- the driver syncs the experiment's state and result files, and deletes each trial's
  older checkpoint: Ray logs a failure of either with a traceback (`_WATCHED`); a filter,
  installed while a sweep runs (`watched`), takes those that a storage fault explains.
Either sets the session's `storage_fault`; the tracking callback then stops Tune at the
end of its step (`StorageFault`), and the driver ends every run and prints the summary.
"""

from __future__ import annotations

import errno
import logging
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sweeper.errors import WorkFailed

STORAGE_FAULT_KEY = "sweeper_storage_fault"  # a worker's result: its upload was refused
# Ray's loggers that report a refused write of the driver's, and how each message starts.
_WATCHED = {"ray.train._internal.syncer": "Last sync command failed",
            "ray.train._internal.storage": "Caught exception when deleting path",
            "ray.tune.tune": "Experiment state snapshotting failed"}

# The errors no retry can get past until someone acts on the storage, and how to say so.
_CAUSES = {errno.ENOSPC: "has no space left", errno.EDQUOT: "is over its disk quota",
           errno.EROFS: "became read-only", errno.EACCES: "refused a write (permission denied)",
           errno.EPERM: "refused a write (permission denied)"}
_FIXES = {errno.ENOSPC: "free space there", errno.EDQUOT: "free space there",
          errno.EROFS: "make it writable again", errno.EACCES: "make it writable again",
          errno.EPERM: "make it writable again"}
# pyarrow's text for an OSError: "[Errno 28] Error writing bytes ... [errno 28] No space".
_ERRNO = re.compile(r"\[errno (\d+)\]", re.IGNORECASE)


class StorageFault(WorkFailed):
    """The results storage refused a write mid-sweep: the sweep stopped (exit 1)."""


def storage_errno(error: BaseException | str) -> int | None:
    """The errno of a storage write refused for good (full, read-only, forbidden), from an
    OSError or from its text as Ray logs or records it; None for anything else (a
    network hiccup is Tune's to retry)."""
    if isinstance(error, OSError) and error.errno in _CAUSES:
        return error.errno
    for match in _ERRNO.finditer(str(error)):
        if int(match.group(1)) in _CAUSES:
            return int(match.group(1))
    return None


def describe(code: int, folder: str) -> str:
    """One line: which storage, what happened, what to do (the resume command follows)."""
    return (f"the results storage {folder} {_CAUSES[code]} ([Errno {code}] "
            f"{os.strerror(code)}): the sweep stopped; {_FIXES[code]}, then resume it")


class _WriteFailures(logging.Filter):
    """Takes the messages of one of Ray's loggers (`prefix`: how they start) that a storage
    fault explains."""

    def __init__(self, prefix: str, report: Callable[[int], None]) -> None:
        super().__init__()
        self._prefix, self._report = prefix, report

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if not message.startswith(self._prefix):
            return True
        error = record.exc_info[1] if record.exc_info else None
        code = storage_errno(message) or (storage_errno(error) if error else None)
        if code is None:
            return True
        self._report(code)
        return False


@contextmanager
def watched(report: Callable[[int], None]) -> Iterator[None]:
    """While the block runs, a refused write of the driver's that a storage fault explains
    is passed to `report` (its errno) instead of logged."""
    filters = [(logging.getLogger(name), _WriteFailures(prefix, report))
               for name, prefix in _WATCHED.items()]
    for logger, write_filter in filters:
        logger.addFilter(write_filter)
    try:
        yield
    finally:
        for logger, write_filter in filters:
            logger.removeFilter(write_filter)
