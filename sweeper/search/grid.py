"""The grid: every combination of the listed values, each once per seed, in the declared
order (first axis outermost, seeds innermost). Never built whole to answer one question:
`iter_trials` is lazy and `trial_at` builds one cell from its index."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Collection, Iterable, Iterator
from typing import Any

from sweeper.record.contract import run_name
from sweeper.search.kind import KIND_KEY, Growth, SearchKind, SearchRefused, fixed_changes
from sweeper.spec.messages import short
from sweeper.spec.schema import MAX_GRID_VALUES, SearchSpec, SweepSpec
from sweeper.spec.trials import Trial, base_config, with_values
from trainers.config import TrialConfig

# How a grid trial travels through Ray: its index, swept values and resolved config.
ENTRY_KEY = "trial"


class GridKind(SearchKind):
    name = "grid"
    enumerated = True

    def check(self, search: SearchSpec) -> None:
        for name, values in search.params.items():
            if not isinstance(values, list):
                raise SearchRefused(f"grid parameter {name!r} must be a list of values (a "
                                    "distribution needs search.type: optuna)", "params", name)
            if not values:
                raise SearchRefused(f"grid parameter {name!r} has no values", "params", name)
            if len(values) > MAX_GRID_VALUES:
                raise SearchRefused(f"grid parameter {name!r} has {len(values)} values, more "
                                    f"than {MAX_GRID_VALUES}: sweep fewer, or use optuna",
                                    "params", name)
            if len({json.dumps(v) for v in values}) != len(values):
                raise SearchRefused(f"grid parameter {name!r} repeats a value: "
                                    f"{short(values)} (repeat trials with search.seeds "
                                    "instead)", "params", name)
        if search.warm_start:
            raise SearchRefused("search.warm_start seeds an Optuna sampler: it needs type: "
                                "optuna", "warm_start")

    def num_trials(self, spec: SweepSpec) -> int:
        return math.prod(len(v) for v in _grids(spec)) * len(spec.search.seeds)

    def label(self, spec: SweepSpec) -> str:
        return "grid"

    def expansion_size(self, spec: SweepSpec) -> int:
        return self.num_trials(spec)

    def iter_trials(self, spec: SweepSpec) -> Iterator[Trial]:
        base, names = base_config(spec), list(spec.search.params)
        cells = itertools.product(itertools.product(*_grids(spec)), spec.search.seeds)
        for index, (values, seed) in enumerate(cells):
            yield _trial(base, index, names, values, seed)

    def trial_at(self, spec: SweepSpec, index: int) -> Trial:
        # The cell follows from the index in mixed radix (seeds the fastest digit).
        rest, digit = divmod(index, len(spec.search.seeds))
        seed = spec.search.seeds[digit]
        picked: list[Any] = []
        for grid in reversed(_grids(spec)):
            rest, digit = divmod(rest, len(grid))
            picked.append(grid[digit])
        return _trial(base_config(spec), index, list(spec.search.params),
                      tuple(reversed(picked)), seed)

    def describe_space(self, spec: SweepSpec, limit: int) -> list[str]:
        with_seed = len(spec.search.seeds) > 1
        lines = [f"  {trial.index:>3}  {run_name(trial.params, with_seed):<32} "
                 f"{trial.config_hash}"
                 for trial in itertools.islice(self.iter_trials(spec), limit)]
        more = self.expansion_size(spec) - limit
        if more > 0:
            lines.append(f"  ... and {more} more (sweeper trial SPEC --index I shows any one)")
        return lines

    def param_space(self, spec: SweepSpec) -> dict[str, Any]:
        return self._space(self.iter_trials(spec))

    def growth_space(self, spec: SweepSpec, growth: Growth) -> dict[str, Any]:
        return self._space(growth.trials)

    def _space(self, trials: Iterable[Trial]) -> dict[str, Any]:
        # Tune's grid_search is this dict; writing it out keeps Ray out of this module.
        entries = [{"index": t.index, "params": t.params,
                    "config": t.config.model_dump(mode="json")} for t in trials]
        return {KIND_KEY: self.name, ENTRY_KEY: {"grid_search": entries}}

    def growth(self, before: SweepSpec, after: SweepSpec, may_change: Collection[str] = ()
               ) -> Growth:
        """A grid grows by values on its axes and by seeds: each axis (and the seeds)
        keeps every value it had, in their order, and may take new ones anywhere. The
        new cells are the grown grid's cells holding a new value, in the grown grid's
        order, indexed after the sweep's trials (which keep theirs)."""
        refused = fixed_changes(before, after, may_change, ("params", "seeds"))
        old, new = before.search.params, after.search.params
        if list(old) != list(new):
            refused.append(f"search.params: axes {list(old)} then, {list(new)} now (a "
                           "growth keeps the axes, in their order)")
        else:
            refused += [reason for name in new if (reason := _kept(
                f"search.params.{name}", _listed(old[name]), _listed(new[name])))]
        if reason := _kept("search.seeds", before.search.seeds, after.search.seeds):
            refused.append(reason)
        if refused:
            return Growth(refused=tuple(refused))
        axes = [*_grids(after), after.search.seeds]  # the seeds: the innermost axis
        fresh = [[value not in then for value in now]
                 for now, then in zip(axes, [*_grids(before), before.search.seeds],
                                      strict=True)]
        cells = (picks for picks in itertools.product(*(range(len(v)) for v in axes))
                 if any(new[i] for new, i in zip(fresh, picks, strict=True)))
        base, names = base_config(after), list(after.search.params)
        first = self.num_trials(before)
        trials = tuple(_trial(base, first + number, names,
                              tuple(v[i] for v, i in zip(axes[:-1], picks[:-1], strict=True)),
                              axes[-1][picks[-1]])
                       for number, picks in enumerate(cells))
        return Growth(added=len(trials), trials=trials)

    def decode(self, config: dict[str, Any], number: int | None) -> Trial:
        entry = config[ENTRY_KEY]
        return Trial(int(entry["index"]), dict(entry["params"]),
                     TrialConfig.model_validate(entry["config"]))


def _listed(values: Any) -> list[Any]:
    return values if isinstance(values, list) else [values]


def _kept(field: str, then: list[Any], now: list[Any]) -> str:
    """Why `now` does not grow `then` ("" when it keeps every value, in their order)."""
    kept = [value for value in now if value in then]
    if kept == then:
        return ""
    return (f"{field}: {then!r} then, {now!r} now (a growth keeps every value, in their "
            "order, and may add new ones)")


def _grids(spec: SweepSpec) -> list[list[Any]]:
    return [values for values in spec.search.params.values() if isinstance(values, list)]


def _trial(base: dict[str, Any], index: int, names: list[str], values: tuple[Any, ...],
           seed: int) -> Trial:
    params = {**dict(zip(names, values, strict=True)), "seed": seed}
    return Trial(index, params, with_values(base, params))
