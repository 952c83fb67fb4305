"""Warm start: an Optuna sweep begins from what earlier sweeps in the same MLflow
store measured (`search.warm_start: [names]`). Each finished trial of those sweeps
(same method, the spec's metric logged, not stopped early) whose swept values fit
this spec's distributions becomes an evaluated point for the sampler. Values that
do not fit are reported, never guessed; fixed settings that differ are reported too,
since they make the earlier metric a different experiment. The sources' finished
configurations are also what a proposal may repeat without training
(sweeper.driver.repeats), on --resume too."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sweeper.driver.repeats import Repeat, finished_configs
from sweeper.errors import SpecError
from sweeper.record.contract import trial_params
from sweeper.record.read_model import TrialRecord
from sweeper.record.store import open_client
from sweeper.record.sweeps import SweepNotFound, read_sweep
from sweeper.search import expand
from sweeper.spec.schema import OptunaParam, SweepSpec
from sweeper.spec.trials import param_path


@dataclass
class WarmStart:
    points: list[dict[str, Any]] = field(default_factory=list)  # swept name -> value
    rewards: list[float] = field(default_factory=list)  # the spec's metric at each point
    used: dict[str, int] = field(default_factory=dict)  # sweep name -> trials taken from it
    notes: list[str] = field(default_factory=list)  # what was skipped or differs, and why
    # computation hash -> the sources' finished run of that configuration
    finished: dict[str, Repeat] = field(default_factory=dict)


def collect(spec: SweepSpec, tracking_uri: str) -> WarmStart:
    """The finished trials of `spec.search.warm_start`'s sweeps, as Optuna points."""
    warm = WarmStart()
    if not spec.search.warm_start:
        return warm
    ours, swept = trial_params(expand(spec)[0]), _swept(spec)
    client = open_client(tracking_uri)
    for name in spec.search.warm_start:
        if name == spec.name:
            raise SpecError(f"search.warm_start: {name!r} is this sweep itself")
        try:
            source = read_sweep(tracking_uri, name, client, with_spec=False)
        except SweepNotFound:
            raise SpecError(f"search.warm_start: no sweep named {name!r} in "
                            f"{tracking_uri}") from None
        for key, repeat in finished_configs(source.trials, spec.metric).items():
            warm.finished.setdefault(key, repeat)
        _take(warm, name, source.trials, spec, swept, ours)
    return warm


def finished_in_sources(spec: SweepSpec, tracking_uri: str) -> WarmStart:
    """For a resumed sweep, whose sampler already holds its warm start: only the sources'
    finished configurations (a source deleted since is left out)."""
    warm = WarmStart()
    if not spec.search.warm_start:
        return warm
    client = open_client(tracking_uri)
    for name in spec.search.warm_start:
        try:
            source = read_sweep(tracking_uri, name, client, with_spec=False)
        except SweepNotFound:
            continue
        for key, repeat in finished_configs(source.trials, spec.metric).items():
            warm.finished.setdefault(key, repeat)
    return warm


def of_this_sweep(spec: SweepSpec, records: list[TrialRecord]) -> WarmStart:
    """This sweep's own finished trials as Optuna points: what the sampler of a growth
    (`run --extend`) starts from."""
    warm, swept = WarmStart(), _swept(spec)
    if swept:  # a grid has no sampler to seed
        _take(warm, spec.name, records, spec, swept, trial_params(expand(spec)[0]))
    return warm


def _swept(spec: SweepSpec) -> dict[str, OptunaParam]:
    return {name: param for name, param in spec.search.params.items()
            if isinstance(param, OptunaParam)}


def _take(warm: WarmStart, name: str, runs: list[TrialRecord], spec: SweepSpec,
          swept: dict[str, OptunaParam], ours: dict[str, str]) -> None:
    """Add the usable trials among `runs` of sweep `name` to `warm`, and notes on the rest."""
    skipped: dict[str, int] = {}
    differs: dict[str, set[str]] = {}  # fixed setting -> their values, where not ours
    for run in runs:
        params, metrics = run.params, run.metrics
        reason = _unusable(run, spec)
        point: dict[str, Any] = {}
        for param_name, param in swept.items():
            if reason:
                break
            value, reason = _fit(_recorded(params, param_name), param, param_name)
            point[param_name] = value
        if reason:
            skipped[reason] = skipped.get(reason, 0) + 1
            continue
        warm.points.append(point)
        warm.rewards.append(float(metrics[spec.metric]))
        warm.used[name] = warm.used.get(name, 0) + 1
        for key, value in ours.items():
            if key not in swept and key != "train.seed" and params.get(key, value) != value:
                differs.setdefault(key, set()).add(params[key])
    warm.notes += [f"{name}: {count} trial(s) skipped: {reason}"
                   for reason, count in sorted(skipped.items())]
    if differs:
        warm.notes.append(f"{name}: its trials differ from this sweep in "
                          + ", ".join(f"{key} ({_short(theirs)} there, {ours[key]} here)"
                                      for key, theirs in sorted(differs.items())))


def _short(values: set[str]) -> str:
    return "/".join(sorted(values)[:3]) + ("/..." if len(values) > 3 else "")


def _unusable(run: TrialRecord, spec: SweepSpec) -> str:
    if run.status != "FINISHED":
        return f"{run.status.lower()}, not finished"
    if run.stopped_at is not None:
        return "stopped early by a scheduler"
    if run.params.get("method", spec.method) != spec.method:
        return f"method {run.params.get('method')}, not {spec.method}"
    if run.value(spec.metric) is None:
        return f"no {spec.metric}"
    return ""


def _recorded(params: Mapping[str, str], name: str) -> str | None:
    """A trial's value of a swept field: under its spec name when it was swept there,
    else among the fixed settings (flattened with dots)."""
    return params.get(name, params.get(".".join(param_path(name))))


def _fit(raw: str | None, param: OptunaParam, name: str) -> tuple[Any, str]:
    """(value, "") when `raw` is a value of `param`'s distribution, else (None, why)."""
    if raw is None:
        return None, f"no value of {name}"
    if param.type == "categorical":
        for choice in param.choices or []:
            if str(choice) == raw:
                return choice, ""
        return None, f"{name}={raw} is not among the choices"
    try:
        value: float = int(raw) if param.type == "int" else float(raw)
    except ValueError:
        return None, f"{name}={raw} is not a{'n int' if param.type == 'int' else ' float'}"
    assert param.low is not None and param.high is not None  # checked by the spec
    if not param.low <= value <= param.high:
        return None, f"{name}={raw} is outside [{param.low}, {param.high}]"
    return value, ""
