"""The sweep spec: YAML schema, defaults, `--set` overrides, expansion into
trials and config hashing.

Every user mistake surfaces as a `SpecError` whose message names the field, the
bad value and, when it came from the file, the YAML line.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from trainers.config import (
    DatasetConfig,
    EvalConfig,
    Method,
    ModelConfig,
    ResourcesConfig,
    StrictModel,
    TrainConfig,
    TrialConfig,
)

NAME_PATTERN = re.compile(r"[A-Za-z0-9._-]+")
# Metrics a sweep can optimise (what trainers.loop reports at the end of a trial).
METRICS = (
    "top_1_accuracy", "top_5_accuracy", "regularization_loss", "loss",
    "online_linear_top_1_accuracy", "online_linear_top_5_accuracy",
    "offline_linear_top_1_accuracy", "offline_linear_top_5_accuracy",
    "knn_top_1_accuracy",
)


class SpecError(Exception):
    """A mistake in a spec or an override, with a message a user can act on."""


# --- schema --------------------------------------------------------------------

class OptunaParam(StrictModel):
    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _bounds(self) -> OptunaParam:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical parameter needs a non-empty 'choices' list")
            return self
        if self.low is None or self.high is None:
            raise ValueError(f"a {self.type} parameter needs 'low' and 'high'")
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


class SearchSpec(StrictModel):
    type: Literal["grid", "optuna"] = "grid"
    params: dict[str, SearchParam] = Field(default_factory=dict)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    num_samples: int | None = Field(default=None, gt=0)  # optuna only
    sampler: Literal["tpe", "random", "cmaes"] = "tpe"  # optuna only

    @model_validator(mode="after")
    def _shape_matches_type(self) -> SearchSpec:
        for name, values in self.params.items():
            if self.type == "grid":
                if not isinstance(values, list):
                    raise ValueError(f"grid parameter {name!r} must be a list of values")
                if not values:
                    raise ValueError(f"grid parameter {name!r} has no values")
                if len({json.dumps(v) for v in values}) != len(values):
                    raise ValueError(f"grid parameter {name!r} repeats a value: {values} "
                                     "(repeat trials with search.seeds instead)")
            elif not isinstance(values, OptunaParam):
                raise ValueError(f"optuna parameter {name!r} must be a distribution "
                                 "({type: float|int|categorical, low, high, log, choices})")
        if self.type == "optuna" and self.num_samples is None:
            raise ValueError("an optuna search needs num_samples")
        if self.type == "optuna" and len(self.seeds) != 1:
            raise ValueError("an optuna search takes one seed (Optuna samples every trial "
                             f"afresh), got seeds {self.seeds}")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds repeat a value: {self.seeds}")
        return self


class SchedulerSpec(StrictModel):
    type: Literal["fifo", "asha"] = "fifo"
    grace_period: int = Field(default=1, gt=0)  # asha: epochs before a trial may stop
    reduction_factor: float = Field(default=2, gt=1)


class SweepSpec(StrictModel):
    name: str
    method: Method = "simclr"
    dataset: DatasetConfig = DatasetConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    search: SearchSpec = SearchSpec()
    scheduler: SchedulerSpec = SchedulerSpec()
    resources: ResourcesConfig = ResourcesConfig()
    max_concurrent_trials: int | None = Field(default=None, gt=0)
    max_failures: int = Field(default=2, ge=0)
    metric: str = "top_1_accuracy"
    mode: Literal["max", "min"] = "max"

    @field_validator("name")
    @classmethod
    def _safe_name(cls, name: str) -> str:
        # The name becomes a folder under the results root: nothing that escapes it.
        if not NAME_PATTERN.fullmatch(name) or name in (".", ".."):
            raise ValueError(f"name {name!r} must match [A-Za-z0-9._-]+ (it names a folder)")
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


def expand(spec: SweepSpec) -> list[Trial]:
    """Every trial of a grid, in the declared order (first axis outermost, seeds
    innermost). An Optuna search samples its trials during the sweep; here it
    expands to the spec's base values, once per seed."""
    base = base_config(spec)
    names = list(spec.search.params) if spec.search.type == "grid" else []
    grids = [spec.search.params[n] for n in names]
    trials = []
    for index, (values, seed) in enumerate(
        itertools.product(itertools.product(*grids), spec.search.seeds)
    ):
        params = dict(zip(names, values, strict=True))
        config = _with_values(base, {**params, "seed": seed})
        trials.append(Trial(index, {**params, "seed": seed}, config))
    return trials


def trial_at(spec: SweepSpec, index: int, overrides: list[str] | None = None) -> Trial:
    """Trial `index` of the expansion, with `--set` overrides applied to its
    resolved config (so they win over the swept values)."""
    trials = expand(spec)
    if not 0 <= index < len(trials):
        raise SpecError(f"--index {index} is out of range: the spec expands to {len(trials)} "
                        f"trial{'s' if len(trials) != 1 else ''} (0..{len(trials) - 1})")
    trial = trials[index]
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

class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that rejects duplicate keys instead of keeping the last."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False
                       ) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise SpecError(f"duplicate key {key!r} at line {key_node.start_mark.line + 1} "
                            f"(first at line {seen[key]})")
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                                 _construct_mapping)


def load_spec(path: str | Path, overrides: list[str] | None = None) -> SweepSpec:
    """Read, check and return a spec; `overrides` are `a.b=value` strings applied
    to the spec before validation."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"spec file not found: {path}")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read spec {path}: {exc}") from exc
    return parse_spec(text, source=str(path), overrides=overrides)


def parse_spec(text: str, source: str = "<spec>", overrides: list[str] | None = None
               ) -> SweepSpec:
    try:
        root = yaml.compose(text, Loader=_UniqueKeyLoader)
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        raise SpecError(f"{source}: not valid YAML: {exc}") from exc
    if data is None:
        raise SpecError(f"{source}: the spec is empty; it needs at least a 'name'")
    if not isinstance(data, dict):
        raise SpecError(f"{source}: the spec must be a mapping of keys (name, method, ...), "
                        f"not a {type(data).__name__}")
    for override in overrides or []:
        opath, value = parse_override(override, SweepSpec)
        _set_path(data, opath, value)
    override_paths = [parse_override(o, SweepSpec)[0] for o in overrides or []]
    spec = _validate(SweepSpec, data, source=source, root=root, override_paths=override_paths)
    _check_swept_fields(spec, source, root)
    _check_grid_values(spec, source, root)
    return spec


def _check_grid_values(spec: SweepSpec, source: str, root: yaml.Node | None) -> None:
    """Each grid value must be valid where it lands (a temperature of -2 is an
    error at its own YAML line, not at the first trial that uses it)."""
    if spec.search.type != "grid":
        return
    base = base_config(spec)
    for name, values in spec.search.params.items():
        for position, value in enumerate(values):
            try:
                _with_values(base, {name: value})
            except SpecError as exc:
                line = _line_of(root, ("search", "params", name, str(position)))
                reason = str(exc).split(": ", 2)[-1]
                raise SpecError(f"{source}{line}: search.params.{name}[{position}]: "
                                f"{reason}") from None


def _check_swept_fields(spec: SweepSpec, source: str, root: yaml.Node | None) -> None:
    for name in spec.search.params:
        path = param_path(name)
        if _field_annotation(TrialConfig, path) is _MISSING or path[0] in ("name", "method"):
            options = sorted(TrainConfig.model_fields) + [
                f"{s}.{f}" for s in ("model", "eval", "dataset")
                for f in TrialConfig.model_fields[s].annotation.model_fields  # type: ignore[union-attr]
            ]
            line = _line_of(root, ("search", "params", name))
            raise SpecError(f"{source}{line}: search.params.{name}: cannot sweep unknown field "
                            f"{name!r}{_suggest(name, options)}")


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
    try:
        value = yaml.safe_load(raw) if raw.strip() else raw
    except yaml.YAMLError as exc:
        raise SpecError(f"--set {text!r}: value {raw!r} is not valid YAML: {exc}") from exc
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


def _leaf_types(annotation: Any) -> list[Any]:
    args = get_args(annotation)
    if get_origin(annotation) is Literal:
        return [type(a) for a in args]
    return [t for a in args for t in _leaf_types(a)] if args else [annotation]


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
        field = ".".join(loc) or "(spec)"
        from_override = any(loc[: len(p)] == p for p in override_paths)
        line = " (from --set)" if from_override else _line_of(root, loc)
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            parent = _field_annotation(schema, loc[:-1]) if len(loc) > 1 else schema
            options = list(parent.model_fields) if _is_model(parent) else []
            message = f"unknown key{_suggest(loc[-1], options)}"
            lines.append(f"{source}{line}: {field}: {message}")
            continue
        value = error.get("input")
        shown = "" if isinstance(value, dict) else f" (got {value!r})"
        lines.append(f"{source}{line}: {field}: {message}{shown}")
    return "\n".join(lines)


def _line_of(root: yaml.Node | None, loc: tuple[str, ...]) -> str:
    """', line N' for the deepest YAML node along `loc` that exists."""
    node, found = root, None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if str(k.value) == part), None)
            if match is None:
                key = next((k for k, _ in node.value if str(k.value) == part), None)
                found = key or found
                break
            node = match
        elif isinstance(node, yaml.SequenceNode) and part.isdigit() and int(part) < len(node.value):
            node = node.value[int(part)]
        else:
            break
        found = node
    return f", line {found.start_mark.line + 1}" if found is not None else ""


def _suggest(word: str, options: Any) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
