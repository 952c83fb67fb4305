"""Search kinds: what `search.type` means. Each kind (kind.py's `SearchKind`) owns its
counting, expansion, summary, Ray's param space and searcher, and the decoding of a
Ray trial; the rest of sweeper asks the spec's kind through the functions below.

Adding a kind: a module with a `SearchKind` subclass, and a line in `KINDS`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import Any

from sweeper.errors import SpecError
from sweeper.search.grid import GridKind
from sweeper.search.kind import KIND_KEY, Growth, SearchKind
from sweeper.search.optuna import OptunaKind
from sweeper.spec.schema import MAX_RUN_TRIALS, SweepSpec
from sweeper.spec.trials import Trial, with_overrides

KINDS: dict[str, SearchKind] = {kind.name: kind for kind in (GridKind(), OptunaKind())}


def kind_of(spec: SweepSpec) -> SearchKind:
    """The spec's search kind (sweeper.spec.load has refused an unknown one)."""
    return KINDS[spec.search.type]


def kind_of_ray_config(config: dict[str, Any]) -> SearchKind:
    """The kind a Ray trial's config was made by: named in it, or, for sweeps stored
    before configs named their kind, told by its shape (part of the storage format)."""
    name = config.get(KIND_KEY)
    if not isinstance(name, str):
        name = "grid" if "trial" in config else "optuna"
    return KINDS[name]


def num_trials(spec: SweepSpec) -> int:
    return kind_of(spec).num_trials(spec)


def growth(before: SweepSpec, after: SweepSpec, may_change: Collection[str] = ()) -> Growth:
    """What `after` adds to a sweep that ran `before` (SearchKind.growth); another search
    type is no growth."""
    if before.search.type != after.search.type:
        return Growth(refused=(f"search.type: {before.search.type!r} then, "
                               f"{after.search.type!r} now",))
    return kind_of(after).growth(before, after, may_change)


def summary(spec: SweepSpec) -> str:
    """One line, e.g. '32 trials: grid over batch_size × temperature × color_jitter_strength'."""
    n = num_trials(spec)
    axes = " × ".join(spec.search.params) or "no parameters"
    seeds = f" × {len(spec.search.seeds)} seeds" if len(spec.search.seeds) > 1 else ""
    return f"{n} trial{'s' if n != 1 else ''}: {kind_of(spec).label(spec)} over {axes}{seeds}"


def expansion_size(spec: SweepSpec) -> int:
    """How many trials `iter_trials` yields (a grid's cells times its seeds; a sampler's
    search: its base values, once per seed)."""
    return kind_of(spec).expansion_size(spec)


def iter_trials(spec: SweepSpec) -> Iterator[Trial]:
    """The trials known before the sweep runs, lazily, in order."""
    return kind_of(spec).iter_trials(spec)


def expand(spec: SweepSpec) -> list[Trial]:
    """`iter_trials` as a list, for running a sweep: refused beyond `MAX_RUN_TRIALS`."""
    check_runnable(spec)
    return list(iter_trials(spec))


def check_runnable(spec: SweepSpec) -> None:
    """A search `sweeper run` can schedule: Ray Tune holds every trial in memory."""
    size = expansion_size(spec)
    if size > MAX_RUN_TRIALS:
        raise SpecError(f"search: the grid has {size} trials, more than the {MAX_RUN_TRIALS} "
                        "one sweep can run (Ray Tune holds every trial in memory): sweep "
                        "fewer values or split the grid into several specs; `validate`, "
                        "`run --dry-run` and `trial --index` still work on it")


def trial_at(spec: SweepSpec, index: int, overrides: list[str] | None = None) -> Trial:
    """Trial `index` of the expansion, built alone, with `--set` overrides applied to its
    resolved config (so they win over the swept values)."""
    size = expansion_size(spec)
    if not 0 <= index < size:
        raise SpecError(f"--index {index} is out of range: the spec expands to {size} "
                        f"trial{'s' if size != 1 else ''} (0..{size - 1})")
    return with_overrides(kind_of(spec).trial_at(spec, index), overrides or [])


def max_epochs(spec: SweepSpec) -> int:
    """The most epochs any trial of the spec trains (ASHA's horizon)."""
    return max(trial.config.train.epochs for trial in expand(spec))
