"""A command timed in a subprocess of its own: its wall seconds and peak resident memory
(`os.wait4`'s rusage of that process alone), as `bench scale` measures each command."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

# Starts a measured command and writes its wall seconds and rusage. A separate small
# process, because Linux counts the memory a child had before exec in its peak: a child
# forked by this process (MLflow, pandas and torch imported) would inherit its size.
LAUNCHER = """\
import json, os, subprocess, sys, time
started = time.perf_counter()
child = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL)
_, status, usage = os.wait4(child.pid, 0)
seconds = time.perf_counter() - started
with open(sys.argv[1], "w") as out:
    json.dump({"seconds": seconds, "maxrss_kib": usage.ru_maxrss,
               "returncode": os.waitstatus_to_exitcode(status)}, out)
"""


@dataclass(frozen=True)
class Measured:
    seconds: float
    peak_mb: float  # the command's peak resident set, 10^6 bytes
    returncode: int
    output: str  # the tail of its stdout and stderr


def timed_command(argv: list[str], log: Path, env: dict[str, str]) -> Measured:
    """Run `argv` with its output in `log`: its wall seconds and peak RSS (wait4's rusage
    of that process alone, taken by the launcher that started it)."""
    figures = log.with_suffix(".json")
    with log.open("w") as out:
        launcher = subprocess.run([sys.executable, "-c", LAUNCHER, str(figures), *argv],
                                  stdout=out, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, env=env, check=False)
    tail = log.read_text(errors="replace")[-2000:]
    if launcher.returncode != 0:
        return Measured(0.0, 0.0, launcher.returncode, tail)
    measured = json.loads(figures.read_text())
    # Linux reports ru_maxrss in KiB.
    return Measured(measured["seconds"], measured["maxrss_kib"] * 1024 / 1e6,
                    measured["returncode"], tail)
