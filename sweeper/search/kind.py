"""What a search kind (`search.type`) owns: which search sections it accepts, how many
trials it makes and how they are built, how Ray Tune runs it (in Ray-neutral terms:
the driver turns them into Tune objects), and how a Ray trial's config decodes back
into the sweep's `Trial`. A new kind is a module with a `SearchKind` subclass and a
line in sweeper.search.KINDS."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from typing import Any

from sweeper.record.contract import flatten
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


@dataclass(frozen=True)
class Growth:
    """What a grown spec adds to a sweep: `added` trials, those known before they run
    (a grid's new cells, each indexed after the sweep's existing trials), or, when the
    spec changed in a way a growth cannot take, one "field: X then, Y now" per change."""

    added: int = 0
    trials: tuple[Trial, ...] = ()
    refused: tuple[str, ...] = ()


class SearchKind(ABC):
    name: str
    # Whether its trials are all known before the sweep runs (a grid's cells): reports then
    # map them by their values and list the cells that never started; a sampler's trials
    # are ranked by the metric instead.
    enumerated: bool

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
                 rewards: list[float], stage: int = 0) -> OptunaPlan | None:
        """The sampler that proposes trials during the sweep, seeded with evaluated
        `points` (swept name -> value) and their `rewards`; None: Tune runs the
        param_space as it is. `stage`: the growth it proposes for (0: the sweep as first
        run), which draws from a random stream of its own."""
        return None

    @abstractmethod
    def decode(self, config: dict[str, Any], number: int | None) -> Trial:
        """The sweep's Trial behind a Ray trial's config. `number`: the trial's number in
        the order its sampler proposed it (warm-start points first), when the driver
        knows it; a kind whose configs carry their index ignores it."""

    @abstractmethod
    def growth(self, before: SweepSpec, after: SweepSpec, may_change: Collection[str] = ()
               ) -> Growth:
        """What `after` adds to a sweep that ran `before` (a spec of this kind): only the
        kind's own growths are taken; any other change is refused, except in the top-level
        sections `may_change` (how trials run, not what they compute)."""

    def growth_space(self, spec: SweepSpec, growth: Growth) -> dict[str, Any]:
        """Ray Tune's param_space of the trials a growth adds (a sampler's: the spec's)."""
        return self.param_space(spec)


def changes(before: dict[str, Any], after: dict[str, Any], prefix: str = "") -> list[str]:
    """Each differing setting of two specs' plain data, flattened with dots, as
    "key: X then, Y now", in key order."""
    then, now = flatten(before, prefix), flatten(after, prefix)
    return [f"{key}: {then.get(key)!r} then, {now.get(key)!r} now"
            for key in sorted(then.keys() | now.keys()) if then.get(key) != now.get(key)]


def fixed_changes(before: SweepSpec, after: SweepSpec, may_change: Collection[str],
                  search_fields: Collection[str]) -> list[str]:
    """The changes of everything but `search_fields` of the search section (which the
    kind compares itself) and the top-level sections `may_change`."""
    exclude = set(may_change) | {"search"}
    keep = set(SearchSpec.model_fields) - set(search_fields)
    return (changes(before.model_dump(mode="json", exclude=exclude),
                    after.model_dump(mode="json", exclude=exclude))
            + changes(before.search.model_dump(mode="json", include=keep),
                      after.search.model_dump(mode="json", include=keep), "search."))
