"""`sweeper bench scale`: how long `sweeper status` and `sweeper report` take on a sweep of
N trials, against the floor: MLflow's own paginated `search_runs` listing those trials;
and how long a resume of that sweep takes to re-attach every trial to its run.

The store is made, not run (sweeper.bench.scale_store, from the synthetic trials of
sweeper.bench.scale_trials). Each measured command runs in a subprocess of its own; its
wall time and peak resident memory (`os.wait4`'s rusage of that child alone) are the
figures (sweeper.bench.measured); the re-attachment's seconds are the resume's own
(sweeper.bench.reattach), without the subprocess's start.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import TextIO

from sweeper.bench.errors import BenchError, BenchFailed
from sweeper.bench.format import Result, say
from sweeper.bench.measured import Measured, timed_command
from sweeper.bench.scale_store import Store, make_store

# The targets (docs/benchmarks.md): each command's time as a multiple of the floor's,
# and each command's peak resident memory.
RATIO_TARGETS = {"status": 1.5, "report": 4.0}
PEAK_MB_TARGET = 1500.0

# The floor: MLflow's own paginated listing of the sweep's trial runs, at its default
# page size, in a process that imports nothing else.
FLOOR_SCRIPT = """\
import sys
from mlflow.tracking import MlflowClient
uri, experiment_id, parent_id = sys.argv[1:4]
client = MlflowClient(uri)
count, token = 0, None
while True:
    page = client.search_runs([experiment_id], page_token=token,
                              filter_string=f"tags.`mlflow.parentRunId` = '{parent_id}'")
    count += len(page)
    token = page.token
    if not token:
        break
print(count)
"""


# --- measuring -----------------------------------------------------------------------------

def _artifacts_beside(uri: str) -> Path | None:
    """An SQLite store's artifacts: a folder beside its file (a server keeps its own)."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return None
    return Path(uri[len(prefix):].split("?", 1)[0]).parent / "artifacts"


def _child_env() -> dict[str, str]:
    """The environment of the measured commands: this checkout's `sweeper` first."""
    root = str(Path(__file__).resolve().parents[2])
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": root + (os.pathsep + path if path else "")}


def reattached(measured: Measured) -> tuple[int, float]:
    """The re-attachment's last line: the trials that found their run, and its seconds."""
    found, seconds = measured.output.split()[-2:]
    return int(found), float(seconds)


def scale_figures(trials: int, epochs: int, store: Store, floor: Measured,
                  status: Measured, report: Measured, reattach: Measured) -> Result:
    """The result from the four measurements: ratios to the floor and the verdicts."""
    found, seconds = reattached(reattach)
    result: Result = {
        "benchmark": "scale", "trials": trials, "epochs": epochs,
        "store": "server" if store.tracking_uri.startswith(("http://", "https://"))
        else store.tracking_uri.split(":", 1)[0],
        "store_created": store.created, "store_seconds": store.seconds,
        "store_writer": store.writer or None, "metric_points": store.metric_points,
        "reattached": found, "reattach_seconds": seconds,
        "reattach_peak_mb": reattach.peak_mb,
        "floor_seconds": floor.seconds, "floor_peak_mb": floor.peak_mb,
        "ratio_targets": dict(RATIO_TARGETS), "peak_mb_target": PEAK_MB_TARGET,
    }
    for name, measured in (("status", status), ("report", report)):
        ratio = measured.seconds / floor.seconds if floor.seconds > 0 else None
        result |= {
            f"{name}_seconds": measured.seconds, f"{name}_ratio": ratio,
            f"{name}_peak_mb": measured.peak_mb,
            f"{name}_meets_target": (ratio is not None and ratio <= RATIO_TARGETS[name]
                                     and measured.peak_mb <= PEAK_MB_TARGET),
        }
    return result


def measure_scale(trials: int, epochs: int = 11, tracking_uri: str | None = None,
                  keep: Path | None = None, threads: int | None = None,
                  progress: TextIO | None = None, writer: str = "mlflow") -> Result:
    """Make (or reuse) the sweep of `trials` trials × `epochs` epochs, then time the floor,
    `sweeper status`, `sweeper report` and a resume's re-attachment on it, each in a
    subprocess of its own. BenchFailed when a command fails, or when the floor lists or
    the resume re-attaches another number of trials than the sweep has.

    The store: `tracking_uri` if given, else an SQLite file in `keep` (kept, and reused by
    a later run with the same figures) or in a temporary folder; written by `writer`
    (sweeper.bench.scale_store)."""
    if trials <= 0 or epochs <= 0:
        raise BenchError(f"--trials and --epochs must be positive, got {trials} and {epochs}")
    if threads is None:  # SQLite takes one writer at a time; a server takes several
        threads = 8 if tracking_uri and tracking_uri.startswith(("http://", "https://")) else 1
    with tempfile.TemporaryDirectory(prefix="sweeper-bench-scale-") as scratch:
        folder = keep if keep is not None else Path(scratch)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BenchError(f"--keep {folder}: {exc}") from None
        folder = folder.resolve()
        uri = tracking_uri or f"sqlite:///{folder / 'mlflow.db'}"
        say(progress, f"scale: {trials} trials x {epochs} epochs in {uri}")
        store = make_store(uri, trials, epochs, _artifacts_beside(uri), threads, progress,
                           writer)
        if store.created:
            say(progress, f"scale: store written in {store.seconds:.0f} s "
                          f"({store.metric_points:,} metric points)")
        env = _child_env()
        commands = {
            "floor": [sys.executable, "-c", FLOOR_SCRIPT, uri, store.experiment_id,
                      store.parent_id],
            "status": [sys.executable, "-m", "sweeper.cli", "status", store.name,
                       "--tracking-uri", uri],
            "report": [sys.executable, "-m", "sweeper.cli", "report", store.name,
                       "--tracking-uri", uri, "--out", str(folder / "report")],
            # last: it re-opens the sweep (RUNNING while it maps), then ends it again
            "reattach": [sys.executable, "-m", "sweeper.bench.reattach", uri, str(trials),
                         str(epochs)],
        }
        measured: dict[str, Measured] = {}
        for name, argv in commands.items():
            say(progress, f"scale: timing {name}")
            measured[name] = timed_command(argv, folder / f"{name}.log", env)
            if measured[name].returncode != 0:
                raise BenchFailed(f"{name} exited {measured[name].returncode}:\n"
                                  f"{measured[name].output.strip()}")
            say(progress, f"scale: {name} {measured[name].seconds:.1f} s, "
                          f"{measured[name].peak_mb:.0f} MB")
    listed = int(measured["floor"].output.split()[-1])
    if listed != trials:
        raise BenchFailed(f"the floor listed {listed} trial runs, the sweep has {trials}")
    result = scale_figures(trials, epochs, store, measured["floor"], measured["status"],
                           measured["report"], measured["reattach"])
    if result["reattached"] != trials:
        raise BenchFailed(f"a resume re-attached {result['reattached']} of the sweep's "
                          f"{trials} trials to their runs")
    return result
