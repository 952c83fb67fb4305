"""The sweep spec: YAML schema, defaults, `--set` overrides, expansion into
trials and config hashing.

Every user mistake surfaces as a `SpecError` whose message names the field, the
bad value and, when it came from the file, the YAML line (or "from --set"), and
says how to fix it. Any input costs bounded time and memory: the YAML is read by
sweeper.spec_yaml (capped, parsed once, aliases bounded), and a grid is never
built whole to answer one question (`iter_trials`, `trial_at` and `num_trials`
work cell by cell).
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import math
import re
import reprlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from sweeper.errors import SpecError
from sweeper.spec_yaml import MAX_SPEC_BYTES, line_of, one_line, parse_yaml, plain_type
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
    TrialConfig,
    between,
)

NAME_PATTERN = re.compile(r"[A-Za-z0-9._-]+")
# A swept text value becomes part of run names and trial folders: nothing that could
# climb out of a folder or split a path.
SAFE_VALUE = re.compile(r"[A-Za-z0-9_+-][A-Za-z0-9._+-]{0,63}")
MAX_GRID_VALUES = 10_000  # per grid axis
MAX_RUN_TRIALS = 100_000  # what `expand` (and so `sweeper run`) builds; Ray keeps every trial
MAX_OPTUNA_SEED = 2**32 - 1  # Optuna's samplers seed numpy's 32-bit RandomState
# Metrics a sweep can optimise (what trainers.loop reports at the end of a trial).
METRICS = (
    "top_1_accuracy", "top_5_accuracy", "regularization_loss", "loss",
    "online_linear_top_1_accuracy", "online_linear_top_5_accuracy",
    "offline_linear_top_1_accuracy", "offline_linear_top_5_accuracy",
    "knn_top_1_accuracy",
)


# --- schema --------------------------------------------------------------------

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
            fix = _text_fix(value, "a number, e.g. 0.5", "float_type")
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
                raise ValueError(f"choices repeat a value: {_short(self.choices)}")
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
_LOC_NOISE = {"grid", "distribution"}


class SearchSpec(_SpecModel):
    type: Literal["grid", "optuna"] = "grid"
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
    def _shape_matches_type(self) -> SearchSpec:
        for name, values in self.params.items():
            if self.type == "grid":
                if not isinstance(values, list):
                    raise ValueError(f"grid parameter {name!r} must be a list of values")
                if not values:
                    raise ValueError(f"grid parameter {name!r} has no values")
                if len(values) > MAX_GRID_VALUES:
                    raise ValueError(f"grid parameter {name!r} has {len(values)} values, more "
                                     f"than {MAX_GRID_VALUES}: sweep fewer, or use optuna")
                if len({json.dumps(v) for v in values}) != len(values):
                    raise ValueError(f"grid parameter {name!r} repeats a value: {_short(values)} "
                                     "(repeat trials with search.seeds instead)")
            elif not isinstance(values, OptunaParam):
                raise ValueError(f"optuna parameter {name!r} must be a distribution "
                                 "({type: float|int|categorical, low, high, log, choices})")
        if self.type == "optuna" and self.num_samples is None:
            raise ValueError("an optuna search needs num_samples")
        if self.warm_start and self.type != "optuna":
            raise ValueError("search.warm_start seeds an Optuna sampler: it needs type: optuna")
        for name in self.warm_start:
            if not NAME_PATTERN.fullmatch(name):
                raise ValueError(f"search.warm_start: {name!r} is not a sweep name "
                                 "([A-Za-z0-9._-]+)")
        if self.type == "optuna" and len(self.seeds) != 1:
            raise ValueError("an optuna search takes one seed (Optuna samples every trial "
                             f"afresh), got seeds {self.seeds}")
        if self.type == "optuna" and self.seeds[0] > MAX_OPTUNA_SEED:
            raise ValueError(f"an optuna seed must be between 0 and 2**32 - 1 (Optuna's "
                             f"samplers seed numpy's 32-bit RandomState), got {self.seeds[0]}")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds repeat a value: {_short(self.seeds)}")
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
    mode: Literal["max", "min"] = "max"
    # Which finished trials keep their final encoder in MLflow (artifact encoder/).
    save_encoders: Literal["best", "all", "none"] = "best"

    @field_validator("name")
    @classmethod
    def _safe_name(cls, name: str) -> str:
        # The name becomes a folder under the results root: nothing that escapes it.
        if not NAME_PATTERN.fullmatch(name) or name in (".", "..") or len(name) > 128:
            raise ValueError(f"name {_short(name)} must match [A-Za-z0-9._-]+ and have at "
                             "most 128 characters (it names a folder and an experiment)")
        return name

    @model_validator(mode="after")
    def _asha_needs_per_epoch_metric(self) -> SweepSpec:
        if self.scheduler.type == "asha" and self.eval.every_epochs != 1:
            raise ValueError("scheduler asha compares trials every epoch: it needs "
                             f"eval.every_epochs: 1 (got {self.eval.every_epochs})")
        return self

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, metric: str) -> str:
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}{_suggest(metric, METRICS)}; "
                             f"choose one of {', '.join(METRICS)}")
        return metric


# --- trials ----------------------------------------------------------------------

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
    """A stable hash of the whole resolved config: the identity of a trial."""
    canonical = json.dumps(config.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def param_path(name: str) -> tuple[str, ...]:
    """Where a swept parameter lives: bare names are `train` fields."""
    return tuple(name.split(".")) if "." in name else ("train", name)


def num_trials(spec: SweepSpec) -> int:
    if spec.search.type == "optuna":
        return spec.search.num_samples or 0
    cells = math.prod(len(v) for v in spec.search.params.values() if isinstance(v, list))
    return cells * len(spec.search.seeds)


def summary(spec: SweepSpec) -> str:
    """One line, e.g. '32 trials: grid over batch_size × temperature × color_jitter_strength'."""
    n = num_trials(spec)
    axes = " × ".join(spec.search.params) or "no parameters"
    seeds = f" × {len(spec.search.seeds)} seeds" if len(spec.search.seeds) > 1 else ""
    kind = "grid" if spec.search.type == "grid" else f"optuna ({spec.search.sampler})"
    return f"{n} trial{'s' if n != 1 else ''}: {kind} over {axes}{seeds}"


def expansion_size(spec: SweepSpec) -> int:
    """How many trials `expand` yields: the grid's cells times its seeds (an Optuna
    search expands to its base values, once per seed)."""
    return num_trials(spec) if spec.search.type == "grid" else len(spec.search.seeds)


def _axes(spec: SweepSpec) -> tuple[list[str], list[list[Any]]]:
    names = list(spec.search.params) if spec.search.type == "grid" else []
    return names, [spec.search.params[n] for n in names]  # type: ignore[misc]


def iter_trials(spec: SweepSpec) -> Iterator[Trial]:
    """Every trial of a grid, lazily, in the declared order (first axis outermost, seeds
    innermost). An Optuna search samples its trials during the sweep; here it
    expands to the spec's base values, once per seed."""
    base = base_config(spec)
    names, grids = _axes(spec)
    for index, (values, seed) in enumerate(
        itertools.product(itertools.product(*grids), spec.search.seeds)
    ):
        yield _trial(base, index, names, values, seed)


def expand(spec: SweepSpec) -> list[Trial]:
    """`iter_trials` as a list, for running a sweep: refused beyond `MAX_RUN_TRIALS`."""
    check_runnable(spec)
    return list(iter_trials(spec))


def check_runnable(spec: SweepSpec) -> None:
    """A grid `sweeper run` can schedule: Ray Tune holds every trial in memory."""
    size = expansion_size(spec)
    if size > MAX_RUN_TRIALS:
        raise SpecError(f"search: the grid has {size} trials, more than the {MAX_RUN_TRIALS} "
                        "one sweep can run (Ray Tune holds every trial in memory): sweep "
                        "fewer values or split the grid into several specs; `validate`, "
                        "`run --dry-run` and `trial --index` still work on it")


def trial_at(spec: SweepSpec, index: int, overrides: list[str] | None = None) -> Trial:
    """Trial `index` of the expansion, with `--set` overrides applied to its
    resolved config (so they win over the swept values). Only that trial is built:
    its cell follows from the index in mixed radix (seeds the fastest digit)."""
    size = expansion_size(spec)
    if not 0 <= index < size:
        raise SpecError(f"--index {index} is out of range: the spec expands to {size} "
                        f"trial{'s' if size != 1 else ''} (0..{size - 1})")
    names, grids = _axes(spec)
    rest, digit = divmod(index, len(spec.search.seeds))
    seed = spec.search.seeds[digit]
    picked: list[Any] = []
    for grid in reversed(grids):
        rest, digit = divmod(rest, len(grid))
        picked.append(grid[digit])
    trial = _trial(base_config(spec), index, names, tuple(reversed(picked)), seed)
    if not overrides:
        return trial
    data = trial.config.model_dump()
    for override in overrides:
        path, value = parse_override(override, TrialConfig)
        _set_path(data, path, value)
    config = _validate(TrialConfig, data, source="--set")
    params = {name: _get_path(config.model_dump(), param_path(name)) for name in trial.params
              if name != "seed"}
    return Trial(index, {**params, "seed": config.train.seed}, config)


def _trial(base: dict[str, Any], index: int, names: list[str], values: tuple[Any, ...],
           seed: int) -> Trial:
    params = {**dict(zip(names, values, strict=True)), "seed": seed}
    return Trial(index, params, _with_values(base, params))


def base_config(spec: SweepSpec) -> dict[str, Any]:
    """The spec's trial-level sections as plain data: what every trial starts from."""
    return spec.model_dump(mode="json", include=set(TrialConfig.model_fields))


def resolve_values(base: dict[str, Any], values: dict[str, Any], index: int = -1) -> Trial:
    """A trial from base settings and swept values (`seed` included), e.g. an Optuna sample."""
    return Trial(index, dict(values), _with_values(base, values))


def _with_values(base: dict[str, Any], values: dict[str, Any]) -> TrialConfig:
    data = json.loads(json.dumps(base))  # a deep copy of plain data
    for name, value in values.items():
        _set_path(data, param_path(name), value)
    return _validate(TrialConfig, data, source="search.params")


# --- loading -------------------------------------------------------------------

def load_spec(path: str | Path, overrides: list[str] | None = None) -> SweepSpec:
    """Read, check and return a spec; `overrides` are `a.b=value` strings applied
    to the spec before validation."""
    return parse_spec(read_spec_text(path), source=str(path), overrides=overrides)


def read_spec_text(path: str | Path) -> str:
    """A spec file's text, refused when missing, unreadable or larger than a spec."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"spec file not found: {path}")
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_SPEC_BYTES + 1)
        if len(raw) > MAX_SPEC_BYTES:
            raise SpecError(f"{path}: the spec is larger than {MAX_SPEC_BYTES // 1024} KiB; "
                            "a spec is a page of YAML (is this the right file?)")
        return raw.decode()
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read spec {path}: {one_line(exc)}") from None


def parse_spec(text: str, source: str = "<spec>", overrides: list[str] | None = None
               ) -> SweepSpec:
    if len(text) > MAX_SPEC_BYTES:
        raise SpecError(f"{source}: the spec is larger than {MAX_SPEC_BYTES // 1024} KiB; a "
                        "spec is a page of YAML")
    data, root = parse_yaml(text, source)
    if data is None:
        raise SpecError(f"{source}: the spec is empty; it needs at least a 'name'")
    if not isinstance(data, dict):
        raise SpecError(f"{source}: the spec must be a mapping of keys (name, method, ...), "
                        f"not a {type(data).__name__}")
    parsed = [parse_override(o, SweepSpec) for o in overrides or []]
    for opath, value in parsed:
        _set_path(data, opath, value)
    override_paths = [opath for opath, _ in parsed]
    spec = _validate(SweepSpec, data, source=source, root=root, override_paths=override_paths)
    located = _Locator(source, root, override_paths)
    _check_swept_fields(spec, located)
    _check_search_values(spec, located)
    return spec


@dataclass(frozen=True)
class _Locator:
    """Where a spec's value came from: its YAML line, or --set."""

    source: str
    root: yaml.Node | None
    override_paths: list[tuple[str, ...]]

    def at(self, *loc: str) -> str:
        if any(loc[: len(p)] == p for p in self.override_paths):
            return f"{self.source} (from --set)"
        return f"{self.source}{line_of(self.root, loc)}"


def _check_search_values(spec: SweepSpec, where: _Locator) -> None:
    """Each grid value and each Optuna bound or choice must be valid where it lands (a
    temperature of -2 is an error at its own YAML line, not at the first trial that uses
    it), and each distribution must suit its field's type."""
    base = base_config(spec)
    for name, param in spec.search.params.items():
        path = param_path(name)
        loc = ("search", "params", name)
        if isinstance(param, list):
            _check_values(base, name, path, param, where, loc, "")
            continue
        if param.type == "categorical":
            _check_values(base, name, path, param.choices or [], where, (*loc, "choices"),
                          ".choices")
            continue
        kinds = _kinds(_field_annotation(TrialConfig, path))
        if param.type == "float" and kinds != {"float"}:
            fix = ("it takes integers: use {type: int, low, high}" if kinds == {"int"}
                   else "it takes a fixed set of values: use {type: categorical, choices}")
            raise SpecError(f"{where.at(*loc, 'type')}: search.params.{name}: a float "
                            f"distribution cannot sweep {'.'.join(path)}; {fix}")
        if param.type == "int" and not kinds <= {"int", "float"}:
            raise SpecError(f"{where.at(*loc, 'type')}: search.params.{name}: an int "
                            f"distribution cannot sweep {'.'.join(path)}; it takes a fixed set "
                            "of values: use {type: categorical, choices}")
        for bound in ("low", "high"):
            _check_values(base, name, path, [getattr(param, bound)], where, (*loc, bound),
                          f".{bound}", indexed=False)


def _check_values(base: dict[str, Any], name: str, path: tuple[str, ...], values: list[Any],
                  where: _Locator, loc: tuple[str, ...], label: str,
                  indexed: bool = True) -> None:
    seen: dict[str, int] = {}
    for position, value in enumerate(values):
        at = (*loc, str(position)) if indexed else loc
        field = f"search.params.{name}{label}" + (f"[{position}]" if indexed else "")
        try:
            config = _with_values(base, {name: value})
        except SpecError as exc:
            reason = str(exc).split(": ", 2)[-1]
            raise SpecError(f"{where.at(*at)}: {field}: {reason}") from None
        if isinstance(value, str) and not SAFE_VALUE.fullmatch(value):
            raise SpecError(f"{where.at(*at)}: {field}: {_short(value)} cannot name a run or "
                            "its folder; use letters, digits and . _ + - (not first '.')")
        resolved = json.dumps(_get_path(config.model_dump(mode="json"), path))
        if resolved in seen:
            raise SpecError(f"{where.at(*at)}: {field}: {value!r} repeats {field.split('[')[0]}"
                            f"[{seen[resolved]}] once resolved (repeat trials with "
                            "search.seeds instead)")
        seen[resolved] = position


def _kinds(annotation: Any) -> set[str]:
    """'int', 'float', 'bool', 'text' or 'choice' (a Literal) for each type a field takes."""
    names = {int: "int", float: "float", bool: "bool", str: "text"}
    return {names.get(leaf, "choice") for leaf in _leaf_types(annotation, literal_as="choice")
            if leaf is not type(None)}


# Fields a sweep may not vary: what names the sweep, and paths (a swept value names
# run folders and MLflow runs).
_UNSWEEPABLE: dict[tuple[str, ...], str] = {
    ("dataset", "root"): "it is a path, and swept values name run folders; run one sweep per "
                         "root (--set dataset.root=PATH)",
    # Each trial's seed comes from search.seeds, which would overwrite a swept one.
    ("train", "seed"): "list the seeds under search.seeds (every cell runs once per seed)",
}


def _check_swept_fields(spec: SweepSpec, where: _Locator) -> None:
    fields: dict[tuple[str, ...], str] = {}
    for name in spec.search.params:
        path = param_path(name)
        at = where.at("search", "params", name)
        annotation = _field_annotation(TrialConfig, path)
        if annotation is _MISSING or path[0] in ("name", "method") or _is_model(annotation):
            options = sorted(TrainConfig.model_fields) + [
                f"{s}.{f}" for s in ("model", "eval", "dataset")
                for f in TrialConfig.model_fields[s].annotation.model_fields  # type: ignore[union-attr]
            ]
            raise SpecError(f"{at}: search.params.{name}: cannot sweep unknown field "
                            f"{name!r}{_suggest(name, options)}")
        param = spec.search.params[name]
        if path == ("train", "seed") and param == spec.search.seeds and len(param) == 1:
            continue  # `seed: [0]` with seeds [0]: a no-op, the seed the trial gets anyway
        why = _UNSWEEPABLE.get(path) or (
            "it is free text, and swept values name run folders" if "text" in
            _kinds(annotation) else None)
        if why:
            raise SpecError(f"{at}: search.params.{name}: cannot sweep {'.'.join(path)}: {why}")
        if path in fields:
            raise SpecError(f"{at}: search.params.{name}: sweeps the same field as "
                            f"search.params.{fields[path]}; keep one")
        fields[path] = name


# --- overrides -----------------------------------------------------------------

def parse_override(text: str, schema: type[BaseModel]) -> tuple[tuple[str, ...], Any]:
    """'train.epochs=8' -> (('train', 'epochs'), 8), checked against `schema`."""
    if "=" not in text:
        raise SpecError(f"--set {text!r}: expected key=value, e.g. train.epochs=8")
    key, raw = text.split("=", 1)
    path = tuple(part.strip() for part in key.split("."))
    if not all(path):
        raise SpecError(f"--set {text!r}: empty key segment in {key!r}")
    annotation = _field_annotation(schema, path)
    if annotation is _MISSING:
        parent = _field_annotation(schema, path[:-1]) if len(path) > 1 else schema
        options = list(parent.model_fields) if _is_model(parent) else []
        raise SpecError(f"--set {text!r}: unknown key {key!r}{_suggest(path[-1], options)}")
    if _accepts_str(annotation) and not _accepts_non_str(annotation):
        return path, raw  # a path or name stays the text the user typed
    value = parse_yaml(raw, source=f"--set {_short(text)}")[0] if raw.strip() else raw
    return path, value


_MISSING = object()


def _field_annotation(schema: Any, path: tuple[str, ...]) -> Any:
    current = schema
    for part in path:
        if not _is_model(current) or part not in current.model_fields:
            return _MISSING
        current = current.model_fields[part].annotation
    return current


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _leaf_types(annotation: Any, literal_as: Any = None) -> list[Any]:
    """The types a field takes; a Literal's are its values' types (or `literal_as`)."""
    args = get_args(annotation)
    if get_origin(annotation) is Annotated:  # range checks ride on Annotated[int, ...]
        return _leaf_types(args[0], literal_as)
    if get_origin(annotation) is Literal:
        return [literal_as] if literal_as is not None else [type(a) for a in args]
    return [t for a in args for t in _leaf_types(a, literal_as)] if args else [annotation]


def _accepts_str(annotation: Any) -> bool:
    return str in _leaf_types(annotation)


def _accepts_non_str(annotation: Any) -> bool:
    return any(t not in (str, type(None)) for t in _leaf_types(annotation))


def _set_path(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = data
    for part in path[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise SpecError(f"cannot set {'.'.join(path)}: {part!r} is not a mapping")
        node = child
    node[path[-1]] = value


def _get_path(data: dict[str, Any], path: tuple[str, ...]) -> Any:
    for part in path:
        data = data[part]
    return data


# --- errors ----------------------------------------------------------------------

def _validate(schema: type[Any], data: Any, source: str, root: yaml.Node | None = None,
              override_paths: list[tuple[str, ...]] | None = None) -> Any:
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_describe(exc, schema, source, root, override_paths or [])) from None


def _describe(exc: ValidationError, schema: type[BaseModel], source: str,
              root: yaml.Node | None, override_paths: list[tuple[str, ...]]) -> str:
    lines = []
    for error in exc.errors():
        # Drop pydantic's own loc entries (union tags, "function-after[...]").
        loc = tuple(str(p) for p in error["loc"] if str(p) not in _LOC_NOISE
                    and "[" not in str(p))
        field = _cut(".".join(loc), 120) or "(spec)"
        from_override = any(loc[: len(p)] == p for p in override_paths)
        line = " (from --set)" if from_override else line_of(root, loc)
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden" and loc:
            parent = _field_annotation(schema, loc[:-1]) if len(loc) > 1 else schema
            options = list(parent.model_fields) if _is_model(parent) else []
            message = f"unknown key{_suggest(loc[-1], options)}"
            lines.append(f"{source}{line}: {field}: {message}")
            continue
        value = error.get("input")
        shown = "" if isinstance(value, dict) else f" (got {_short(value)})"
        lines.append(f"{source}{line}: {field}: {message}{shown}{_fix(error['type'], value)}")
    return "\n".join(lines)


def _fix(error_type: str, value: Any) -> str:
    """How to correct a wrongly typed value: types are never coerced."""
    if error_type == "finite_number":
        return "; write a finite number (.inf and .nan mean nothing here)"
    what = {"int_type": "a whole number, e.g. 512", "float_type": "a number, e.g. 0.5",
            "bool_type": "true or false"}.get(error_type)
    if what is None:
        return ""
    if isinstance(value, str):
        return _text_fix(value, what, error_type)
    if isinstance(value, bool):
        return f"; write {what}: true and false are not numbers"
    if isinstance(value, float) and value.is_integer() and error_type == "int_type":
        return f"; write {int(value)}, not {value}"
    return f"; write {what}"


_WANTED = {"int_type": (int,), "float_type": (int, float), "bool_type": (bool,)}


def _text_fix(value: str, what: str, error_type: str) -> str:
    """A quoted value that would be right unquoted; else what YAML reads as text."""
    if plain_type(value) in _WANTED[error_type]:
        return f"; write {what}, without quotes"
    digits = value.replace("_", "")
    if "_" in value and plain_type(digits) in _WANTED[error_type]:
        return f"; write {digits}: YAML reads a number with _ as text"
    return f"; write {what}"


def _short(value: Any, limit: int = 60) -> str:
    """repr of a value, cut to fit one line of an error message."""
    return _cut(reprlib.repr(value) if isinstance(value, list | dict | tuple) else repr(value),
                limit)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _suggest(word: str, options: Any) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
