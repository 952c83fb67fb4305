"""A trial: one point of a sweep's search space, its swept values and its fully
resolved config, and the hash that names that config. How a search space becomes
trials is its kind's (sweeper.search); this is what every kind builds them from."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sweeper.errors import SpecError
from sweeper.spec.fields import get_path, set_path
from sweeper.spec.messages import Locator, validate_model
from sweeper.spec.overrides import apply_override, parse_override
from sweeper.spec.schema import SweepSpec
from trainers.config import TrialConfig

# The parts of a trial's config that do not change what it computes: its sweep's name
# and the resources it runs on.
NOT_COMPUTED = frozenset({"name", "resources"})


@dataclass(frozen=True)
class Trial:
    """One point of the search space: its swept values and resolved config."""

    index: int
    params: dict[str, Any]  # swept values under their spec names, plus "seed"
    config: TrialConfig

    @property
    def config_hash(self) -> str:
        return config_hash(self.config)


def config_hash(config: TrialConfig) -> str:
    """A stable hash of the whole resolved config: the identity of a trial. Values left
    at their defaults are not hashed, so that a setting added later with a default that
    keeps the old behaviour does not change the hash of any config."""
    return _hash(config.model_dump(mode="json", exclude_defaults=True))


def computation_hash(config: TrialConfig) -> str:
    """A hash of what a trial computes (its config without its sweep's name and its
    resources): two trials with the same one, in any sweep, train the same thing."""
    return _hash(config.model_dump(mode="json", exclude=set(NOT_COMPUTED),
                                   exclude_defaults=True))


def _hash(data: dict[str, Any]) -> str:
    canonical = json.dumps(data, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def param_path(name: str) -> tuple[str, ...]:
    """Where a swept parameter lives: bare names are `train` fields."""
    return tuple(name.split(".")) if "." in name else ("train", name)


def base_config(spec: SweepSpec) -> dict[str, Any]:
    """The spec's trial-level sections as plain data: what every trial starts from."""
    return spec.model_dump(mode="json", include=set(TrialConfig.model_fields))


def resolve_values(base: dict[str, Any], values: dict[str, Any], index: int = -1) -> Trial:
    """A trial from base settings and swept values (`seed` included), e.g. an Optuna sample."""
    return Trial(index, dict(values), with_values(base, values))


def with_values(base: dict[str, Any], values: dict[str, Any]) -> TrialConfig:
    """`base` with each swept value set at its field, validated."""
    data = json.loads(json.dumps(base))  # a deep copy of plain data
    for name, value in values.items():
        set_path(data, param_path(name), value)
    return validate_model(TrialConfig, data, Locator("search.params"))


def with_overrides(trial: Trial, overrides: list[str], command: str = "sweeper trial",
                   elsewhere: str = ", or pick another trial with --index") -> Trial:
    """`trial` with `--set` overrides applied to its resolved config, so they win over the
    swept values (`sweeper trial`, `sweeper rerun`: one trial, changed at will); a refusal
    names `command` and ends with `elsewhere`, what else the user may do."""
    if not overrides:
        return trial
    data = trial.config.model_dump()
    for text in overrides:
        if text.split("=", 1)[0].split(".", 1)[0].strip() in SweepSpec.model_fields.keys() - (
                TrialConfig.model_fields.keys()):
            raise SpecError(f"--set {text!r}: {command} --set changes one trial's config, "
                            "which has no search, scheduler or sweep settings; set the field "
                            f"itself (e.g. train.temperature=0.3){elsewhere}")
        apply_override(data, parse_override(text, TrialConfig), TrialConfig)
    config = validate_model(TrialConfig, data, Locator("--set"))
    params = {name: get_path(config.model_dump(), param_path(name)) for name in trial.params
              if name != "seed"}
    return Trial(trial.index, {**params, "seed": config.train.seed}, config)
