"""What a search kind (`search.type`) owns: which search sections it accepts, how many
trials it makes and how they are built, how Ray Tune runs it (in Ray-neutral terms:
the driver turns them into Tune objects), and how a Ray trial's config decodes back
into the sweep's `Trial`. A new kind is a module with a `SearchKind` subclass and a
line in sweeper.search.KINDS."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sweeper.spec.schema import SearchSpec, SweepSpec
from sweeper.spec.trials import Trial

# The key of a Ray trial's config that names its kind (configs of sweeps stored before
# it existed are recognised by their shape: see sweeper.search.kind_of_ray_config).
KIND_KEY = "search"


@dataclass(frozen=True)
class OptunaPlan:
    """An Optuna sampler over `space` (flattened names -> optuna distributions), with
    points other sweeps evaluated (same names) and their metric: what the driver's
    OptunaSearch is built from."""

    sampler: Any  # optuna.samplers.BaseSampler
    space: dict[str, Any]
    points: list[dict[str, Any]] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)


class SearchRefused(ValueError):
    """A kind's refusal of its search section (one line); `loc` is where, below
    `search`: ("params", NAME) for one axis, () for the section."""

    def __init__(self, message: str, *loc: str) -> None:
        super().__init__(message)
        self.loc = loc


class SearchKind(ABC):
    name: str

    @abstractmethod
    def check(self, search: SearchSpec) -> None:
        """Refuse (SearchRefused, one line) a search section this kind cannot run."""

    @abstractmethod
    def num_trials(self, spec: SweepSpec) -> int:
        """The trials a sweep of `spec` runs."""

    @abstractmethod
    def label(self, spec: SweepSpec) -> str:
        """The kind as a summary says it, e.g. 'grid' or 'optuna (tpe)'."""

    @abstractmethod
    def iter_trials(self, spec: SweepSpec) -> Iterator[Trial]:
        """The trials known before the sweep runs, lazily and in order (a sampler's
        trials are drawn during the sweep: then the spec's base values)."""

    @abstractmethod
    def expansion_size(self, spec: SweepSpec) -> int:
        """How many trials `iter_trials` yields."""

    @abstractmethod
    def trial_at(self, spec: SweepSpec, index: int) -> Trial:
        """Trial `index` of `iter_trials`, built alone (0 <= index < expansion_size)."""

    @abstractmethod
    def describe_space(self, spec: SweepSpec, limit: int) -> list[str]:
        """What `run --dry-run` lists under the summary (at most about `limit` lines)."""

    @abstractmethod
    def param_space(self, spec: SweepSpec) -> dict[str, Any]:
        """Ray Tune's param_space, in plain data (a grid: {"grid_search": [...]})."""

    def searcher(self, spec: SweepSpec, points: list[dict[str, Any]],
                 rewards: list[float]) -> OptunaPlan | None:
        """The sampler that proposes trials during the sweep, seeded with evaluated
        `points` (swept name -> value) and their `rewards`; None: Tune runs the
        param_space as it is."""
        return None

    @abstractmethod
    def decode(self, config: dict[str, Any], number: int | None) -> Trial:
        """The sweep's Trial behind a Ray trial's config. `number`: the trial's number in
        the order its sampler proposed it (warm-start points first), when the driver
        knows it; a kind whose configs carry their index ignores it."""
