"""No configuration is trained twice: a sampler's proposal whose config computes what a
finished run computed (the same `computation_hash`: the config without its sweep's name
and resources) is a repeat of that run. It is not trained: its own run holds the
repeated run's final metrics (one point, at the final epoch), with `device_seconds` 0,
tagged sweeper.repeat_of, and the sampler is told the same value.

"Finished" means FINISHED and every epoch run (`TrialRecord.finished_in_full`), with
the sweep's metric: a proposal repeating a trial still running, failed or stopped early
is trained. The runs a proposal may repeat are this sweep's and its warm start's
sources' (sweeper.driver.warm_start). How a repeat travels: the searcher
(sweeper.driver.repeat_search) puts `Repeat.marker()` under REPEAT_KEY into the
proposal's Ray config; the worker reports its metrics at once (sweeper.driver.worker);
the driver's events write its run (sweeper.driver.events).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from sweeper.record.provenance import provenance_of
from sweeper.record.read_model import TrialRecord
from sweeper.spec.trials import computation_hash
from trainers.config import TrialConfig
from trainers.loop import TIMING_METRICS
from trainers.metrics import METRICS

log = logging.getLogger(__name__)

# The key of a Ray trial's config that marks it a repeat (part of the storage format: a
# stored sweep's pending repeats carry it).
REPEAT_KEY = "repeat_of"


@dataclass(frozen=True)
class Repeat:
    """The finished run a repeat copies: its final metrics (the timings left out: the
    repeat timed nothing; `device_seconds` 0: it cost nothing) and its provenance tags
    (what computed those metrics)."""

    run_id: str
    metrics: dict[str, float]
    tags: dict[str, str] = field(default_factory=dict)

    def marker(self) -> dict[str, Any]:
        """The repeat as plain data, for a Ray config."""
        return {"run_id": self.run_id, "metrics": dict(self.metrics), "tags": dict(self.tags)}


def repeat_in(config: Mapping[str, Any]) -> Repeat | None:
    """The repeat a Ray trial's config is marked with, if any."""
    marker = config.get(REPEAT_KEY)
    if not isinstance(marker, Mapping):
        return None
    return Repeat(str(marker["run_id"]), {k: float(v) for k, v in marker["metrics"].items()},
                  {k: str(v) for k, v in marker.get("tags", {}).items()})


def final_metrics(values: Mapping[str, Any]) -> dict[str, float]:
    """What a repeat copies of a run's final values: every metric of the catalogue
    (trainers.metrics) but the timings, and `device_seconds` 0."""
    metrics = {name: float(value) for name, value in values.items()
               if name in METRICS and name not in TIMING_METRICS
               and isinstance(value, int | float) and not isinstance(value, bool)}
    return {**metrics, "device_seconds": 0.0}


def recorded_hash(record: TrialRecord) -> str | None:
    """The computation hash of a recorded run, from its description (its full config as
    JSON): the config read back as a TrialConfig hashes as it did when it ran, and a run
    recorded before some setting existed hashes as that setting's default does. None
    when the description is not a trial's config."""
    try:
        return computation_hash(TrialConfig.model_validate_json(record.description))
    except (ValidationError, ValueError) as exc:
        log.debug("run %s: no config in its description (%s)", record.run_id, exc)
        return None


def finished_configs(records: Iterable[TrialRecord], metric: str) -> dict[str, Repeat]:
    """Computation hash -> the first of `records` that finished it in full with a value of
    `metric`. A repeat among them stands for the run it copies (which may be in another
    sweep), when no run of `records` trained that configuration."""
    trained: dict[str, Repeat] = {}
    copied: dict[str, Repeat] = {}
    for record in records:
        if not record.finished_in_full or record.value(metric) is None:
            continue
        key = recorded_hash(record)
        if key is not None:
            (copied if record.repeat_of else trained).setdefault(key, Repeat(
                record.repeat_of or record.run_id, final_metrics(record.metrics),
                provenance_of(record.tags)))
    return {**copied, **trained}
