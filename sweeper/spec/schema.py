"""The sweep spec's schema: its sections, their defaults and the checks each value
makes on its own. A trial's own sections (dataset, model, train, eval, resources)
are trainers.config's; the search space, scheduler and sweep settings are here.
What a search type demands of the search section is its kind's (sweeper.search);
what the file and --set become is sweeper.spec.load's."""

from __future__ import annotations

import json
import math
import re
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

from sweeper.spec.messages import short, suggest, text_fix
from trainers.config import (
    MAX_EPOCHS,
    MAX_SEED,
    DatasetConfig,
    EvalConfig,
    Method,
    ModelConfig,
    ResourcesConfig,
    StrictModel,
    TrainConfig,
    between,
)
from trainers.metrics import METRICS, OPTIMISABLE

NAME_PATTERN = re.compile(r"[A-Za-z0-9._-]+")
# A swept text value becomes part of run names and trial folders: nothing that could
# climb out of a folder or split a path.
SAFE_VALUE = re.compile(r"[A-Za-z0-9_+-][A-Za-z0-9._+-]{0,63}")
MAX_GRID_VALUES = 10_000  # per grid axis
MAX_RUN_TRIALS = 100_000  # what `expand` (and so `sweeper run`) builds; Ray keeps every trial
MAX_OPTUNA_SEED = 2**32 - 1  # Optuna's samplers seed numpy's 32-bit RandomState


class _SpecModel(StrictModel):
    """The sweep-level sections: strict as a whole (nobody constructs them in code)."""

    model_config = ConfigDict(strict=True)


class OptunaParam(_SpecModel):
    type: Literal["float", "int", "categorical"]
    # int | float keeps an integer an integer (an int distribution needs whole bounds).
    low: int | float | None = None
    high: int | float | None = None
    log: bool = False
    choices: list[Any] | None = None

    @field_validator("low", "high", mode="before")
    @classmethod
    def _finite_number(cls, value: Any) -> Any:
        # One message for int | float (pydantic would report each member of the union).
        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        if isinstance(value, float) and math.isfinite(value):
            return value
        if isinstance(value, str):
            fix = text_fix(value, "a number, e.g. 0.5", "float_type")
            raise ValueError(f"must be a finite number{fix}")
        raise ValueError("must be a finite number, e.g. 0.5 (not .inf or .nan)")

    @model_validator(mode="after")
    def _bounds(self) -> OptunaParam:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical parameter needs a non-empty 'choices' list")
            stray = [k for k in ("low", "high") if getattr(self, k) is not None]
            if stray or self.log:
                raise ValueError(f"{', '.join(stray) or 'log'} does not apply to a categorical "
                                 "parameter: list its values under 'choices'")
            if len({json.dumps(c) for c in self.choices}) != len(self.choices):
                raise ValueError(f"choices repeat a value: {short(self.choices)}")
            return self
        if self.choices is not None:
            raise ValueError(f"'choices' only applies to type: categorical, not {self.type}; "
                             "a range is low..high")
        if self.low is None or self.high is None:
            raise ValueError(f"a {self.type} parameter needs 'low' and 'high'")
        if self.type == "int" and not (isinstance(self.low, int)
                                       and isinstance(self.high, int)):
            empty = math.ceil(self.low) > math.floor(self.high)
            raise ValueError(f"an int parameter needs whole-number bounds, got low {self.low} "
                             f"and high {self.high}"
                             + ("; no integer lies between them" if empty else ""))
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log-scaled range needs low > 0, got {self.low}")
        return self


def _param_kind(value: Any) -> str | None:
    if isinstance(value, list):
        return "grid"
    return "distribution" if isinstance(value, dict | OptunaParam) else None


# A grid axis is a list of values; an Optuna axis is a distribution mapping.
SearchParam = Annotated[
    Annotated[list[Any], Tag("grid")] | Annotated[OptunaParam, Tag("distribution")],
    Discriminator(_param_kind, custom_error_type="search_param",
                  custom_error_message="a grid parameter is a list of values; an optuna "
                  "parameter is a mapping {type, low, high, log, choices}"),
]


class SearchSpec(_SpecModel):
    type: str = "grid"  # a search kind: sweeper.search.KINDS
    params: dict[str, SearchParam] = Field(default_factory=dict)
    seeds: list[Annotated[int, between(0, MAX_SEED, "torch seeds are 64-bit")]] = Field(
        default_factory=lambda: [0], min_length=1, max_length=MAX_GRID_VALUES)
    num_samples: Annotated[int, between(  # optuna only
        1, MAX_RUN_TRIALS, "trials Ray Tune can hold in one sweep")] | None = None
    sampler: Literal["tpe", "random", "cmaes"] = "tpe"  # optuna only
    # optuna only: earlier sweeps (in the same MLflow store) whose finished trials seed the
    # sampler, so it starts from what they measured.
    warm_start: list[str] = Field(default_factory=list, max_length=100)

    @model_validator(mode="after")
    def _common_checks(self) -> SearchSpec:
        # What each search type demands of the rest is its kind's check (sweeper.search).
        for name in self.warm_start:
            if not NAME_PATTERN.fullmatch(name):
                raise ValueError(f"search.warm_start: {name!r} is not a sweep name "
                                 "([A-Za-z0-9._-]+)")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds repeat a value: {short(self.seeds)}")
        return self


class SchedulerSpec(_SpecModel):
    type: Literal["fifo", "asha"] = "fifo"
    grace_period: Annotated[int, between(  # asha: epochs before a trial may stop
        1, MAX_EPOCHS, "epochs, like train.epochs")] = 1
    reduction_factor: Annotated[float, between(
        1, 1000, "ASHA keeps 1 / factor of the trials at each rung", low_open=True)] = 2


class SweepSpec(_SpecModel):
    name: str
    method: Method = "simclr"
    dataset: DatasetConfig = DatasetConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    search: SearchSpec = SearchSpec()
    scheduler: SchedulerSpec = SchedulerSpec()
    resources: ResourcesConfig = ResourcesConfig()
    max_concurrent_trials: Annotated[int, between(
        1, MAX_RUN_TRIALS, "trials running at once")] | None = None
    max_failures: Annotated[int, between(0, 1000, "retries of a trial whose worker died")] = 2
    metric: str = "top_1_accuracy"
    mode: Literal["max", "min"] = "max"  # left out: the metric's direction (_mode_of_metric)
    # Which finished trials keep their final encoder in MLflow (artifact encoder/).
    save_encoders: Literal["best", "all", "none"] = "best"

    @field_validator("name")
    @classmethod
    def _safe_name(cls, name: str) -> str:
        # The name becomes a folder under the results root: nothing that escapes it.
        if not NAME_PATTERN.fullmatch(name) or name in (".", "..") or len(name) > 128:
            raise ValueError(f"name {short(name)} must match [A-Za-z0-9._-]+ and have at "
                             "most 128 characters (it names a folder and an experiment)")
        return name

    @model_validator(mode="before")
    @classmethod
    def _mode_of_metric(cls, data: Any) -> Any:
        """A spec that leaves `mode` out optimises its metric in the metric's direction
        (trainers.metrics): `metric: loss` alone minimises the loss."""
        if isinstance(data, dict) and "mode" not in data:
            metric = data.get("metric", cls.model_fields["metric"].default)
            info = METRICS.get(metric) if isinstance(metric, str) else None
            if info is not None and info.direction is not None:
                return {**data, "mode": info.direction}
        return data

    @model_validator(mode="after")
    def _asha_needs_per_epoch_metric(self) -> SweepSpec:
        if self.scheduler.type == "asha" and self.eval.every_epochs != 1:
            raise ValueError("scheduler asha compares trials every epoch: it needs "
                             f"eval.every_epochs: 1 (got {self.eval.every_epochs})")
        return self

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, metric: str) -> str:
        if metric not in OPTIMISABLE:
            raise ValueError(f"unknown metric {metric!r}{suggest(metric, OPTIMISABLE)}; "
                             f"choose one of {', '.join(OPTIMISABLE)}")
        return metric
