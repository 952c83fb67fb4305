"""`sweeper rerun RUN_ID`: retrain one trial from its MLflow run alone, in this process
without Ray (as `sweeper trial` runs one), log it as a rerun of that run (never a trial
of the sweep: sweeper.record.reruns), and print the recorded and the new final metrics
side by side with whatever differs in what computed them."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from sweeper.commands.trial import TrialFailed, run_trial
from sweeper.errors import EXIT_OK
from sweeper.record.contract import CODE_VERSION_TAG, flatten
from sweeper.record.provenance import (
    code_version,
    differences,
    provenance_of,
    trial_provenance,
)
from sweeper.record.reruns import RecordedTrial, RerunRecorder, read_trial_run
from sweeper.record.store import check_readable, resolve_tracking_uri
from sweeper.spec.trials import Trial, computation_hash, with_overrides
from trainers.config import TrialConfig
from trainers.data import check_dataset
from trainers.loop import TIMING_METRICS, DeviceUnavailable, Metrics, select_device
from trainers.metrics import METRICS


@dataclass(frozen=True)
class Comparison:
    """The recorded and the rerun's final metrics, and what may explain a difference."""

    recorded: dict[str, float]
    rerun: dict[str, float]
    deterministic: bool
    config_changes: list[str] = field(default_factory=list)  # "train.epochs 2 then, 1 now"
    provenance: list[str] = field(default_factory=list)  # sweeper.record.provenance
    notes: list[str] = field(default_factory=list)

    @property
    def compared(self) -> list[str]:
        """The metrics shown: the catalogue's order, the timings last."""
        names = self.recorded.keys() | self.rerun.keys()
        order = {name: i for i, name in enumerate(METRICS)}
        return sorted(names, key=lambda n: (n in TIMING_METRICS, order.get(n, len(order)), n))

    @property
    def differing(self) -> list[str]:
        """The metrics (timings aside) whose values are not the same bits."""
        return [name for name in self.compared if name not in TIMING_METRICS
                and not _same(self.recorded.get(name), self.rerun.get(name))]

    @property
    def verdict(self) -> str:
        if not self.deterministic:
            return ("train.deterministic is false: the numbers are not expected to match "
                    "exactly (with train.deterministic: true a rerun on the same machine "
                    "reproduces every metric but the timings)")
        if not self.differing:
            return "every metric but the timings reproduced exactly"
        count = len(self.differing)
        why = ("see above" if self.config_changes or self.provenance or self.notes else
               "although nothing recorded of the config, code, data or device differs")
        return f"{count} metric{'s' * (count != 1)} differ{'s' * (count == 1)}: {why}"


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return a == b or (math.isnan(a) and math.isnan(b))


def rerun_command(args: argparse.Namespace) -> int:
    tracking_uri = resolve_tracking_uri(args.tracking_uri)
    client = check_readable(tracking_uri)
    recorded = read_trial_run(client, tracking_uri, args.run_id)
    trial = with_overrides(recorded.trial, args.overrides, command="sweeper rerun",
                           elsewhere="")
    # What would stop the trial at once is refused before its rerun run is created.
    try:
        select_device(trial.config.resources.gpu)
    except DeviceUnavailable as exc:
        raise TrialFailed(str(exc), exit_code=2) from None
    check_dataset(trial.config.dataset, trial.config.train.batch_size)
    print(f"rerun of run {recorded.record.run_id} ({recorded.record.name}) of sweep "
          f"{recorded.experiment!r}", file=sys.stderr, flush=True)  # then run_trial's lines
    provenance = {CODE_VERSION_TAG: code_version()}
    recorder = RerunRecorder(client, recorded, trial, provenance)
    # The latest value of each metric, as a run shows them (one of epoch 0 only included):
    # what the recorded run's metrics are too.
    latest: Metrics = {}

    def on_epoch(metrics: Metrics) -> None:
        if len(provenance) == 1:  # measured inside the trial: its threads are set
            provenance.update(trial_provenance(trial.config))
            recorder.tag(provenance)
        recorder.log(metrics, step=int(metrics.get("epoch", 0)))
        latest.update(metrics)

    started = time.perf_counter()
    try:
        run_trial(trial, progress=sys.stderr, on_epoch=on_epoch)
    except TrialFailed as exc:
        recorder.end("FAILED", str(exc))
        raise
    except KeyboardInterrupt:
        recorder.end("KILLED")
        raise
    except BaseException as exc:
        recorder.end("FAILED", f"{type(exc).__name__}: {exc}")
        raise
    recorder.end("FINISHED")
    comparison = compare(recorded, trial, latest, provenance)
    if args.json:
        print(json.dumps({"run_id": recorder.run_id, "rerun_of": recorded.record.run_id,
                          "deterministic": comparison.deterministic,
                          "reproduced": not comparison.differing,
                          "differing": comparison.differing,
                          "recorded": comparison.recorded, "rerun": comparison.rerun,
                          "config_changes": comparison.config_changes,
                          "provenance_differences": comparison.provenance,
                          "notes": comparison.notes,
                          "wall_seconds": round(time.perf_counter() - started, 3)},
                         sort_keys=True))
    else:
        print("\n".join([f"rerun of run {recorded.record.run_id} ({recorded.record.name}), "
                         f"logged as run {recorder.run_id}:", *format_comparison(comparison)]))
    return EXIT_OK


def compare(recorded: RecordedTrial, trial: Trial, final: Metrics,
            provenance: Mapping[str, str]) -> Comparison:
    """The rerun of `recorded` (as `trial`, which --set may have changed, with the latest
    value of each metric `final` and its `provenance`) against it."""
    record = recorded.record
    notes = []
    if not provenance_of(record.tags):
        notes.append("the recorded run has no provenance (sweeper did not keep it then): "
                     "what it ran on cannot be compared")
    if record.repeat_of:
        notes.append(f"run {record.run_id} repeats run {record.repeat_of} (it was not "
                     "trained): its metrics are that run's")
    if record.stopped_at is not None:
        notes.append(f"the recorded run was stopped early by the scheduler at epoch "
                     f"{record.stopped_at}: its metrics are that epoch's, the rerun's the "
                     f"last epoch's ({trial.config.train.epochs})")
    elif record.status != "FINISHED":
        notes.append(f"the recorded run is {record.status}: its metrics are its last "
                     "epoch's")
    changes = config_changes(recorded.config, trial.config)
    if changes and computation_hash(recorded.config) != computation_hash(trial.config):
        notes.append("--set changed what the trial computes: the rerun is another trial, "
                     "its numbers are not expected to match")
    elif changes:
        notes.append("--set changed only the resources: a deterministic CPU trial sums in "
                     "the order of its threads (resources.cpu), so its numbers may still "
                     "differ")
    return Comparison(recorded=dict(record.metrics), rerun=dict(final),
                      deterministic=trial.config.train.deterministic,
                      config_changes=changes, provenance=differences(record.tags, provenance),
                      notes=notes)


def config_changes(then: TrialConfig, now: TrialConfig) -> list[str]:
    """Each setting of the two configs that differs, e.g. "train.epochs 2 then, 1 now"."""
    before, after = (flatten(c.model_dump(mode="json")) for c in (then, now))
    return [f"{key} {before.get(key)} then, {after.get(key)} now"
            for key in sorted(before.keys() | after.keys()) if before.get(key) != after.get(key)]


def format_comparison(comparison: Comparison) -> list[str]:
    """The final metrics side by side, aligned, then what differs and the verdict."""
    rows = [("metric", "recorded", "rerun", "")]
    for name in comparison.compared:
        then, now = comparison.recorded.get(name), comparison.rerun.get(name)
        timing = name in TIMING_METRICS  # never the same: a few digits say enough
        if timing:
            note = "timing"
        elif _same(then, now):
            note = "same"
        elif then is None or now is None:
            note = "only one"
        else:
            note = f"{now - then:+.3g}"
        rows.append((name, _number(then, timing), _number(now, timing), note))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [f"{row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]:>{widths[2]}}  {row[3]}"
             .rstrip() for row in rows]
    for title, items in (("config changed by --set", comparison.config_changes),
                         ("provenance differs", comparison.provenance)):
        if items:
            lines.append(f"{title}:")
            lines += [f"  {item}" for item in items]
    lines += comparison.notes
    lines.append(comparison.verdict)
    return lines


def _number(value: float | None, timing: bool = False) -> str:
    """Every digit that tells the value apart (Python's shortest round-trip form)."""
    if value is None:
        return "-"
    return f"{value:.4g}" if timing else repr(value).removesuffix(".0")
