"""The grid: every combination of the listed values, each once per seed, in the declared
order (first axis outermost, seeds innermost). Never built whole to answer one question:
`iter_trials` is lazy and `trial_at` builds one cell from its index."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterator
from typing import Any

from sweeper.record.contract import run_name
from sweeper.search.kind import KIND_KEY, SearchKind, SearchRefused
from sweeper.spec.messages import short
from sweeper.spec.schema import MAX_GRID_VALUES, SearchSpec, SweepSpec
from sweeper.spec.trials import Trial, base_config, with_values
from trainers.config import TrialConfig

# How a grid trial travels through Ray: its index, swept values and resolved config.
ENTRY_KEY = "trial"


class GridKind(SearchKind):
    name = "grid"

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
        # Tune's grid_search is this dict; writing it out keeps Ray out of this module.
        entries = [{"index": t.index, "params": t.params,
                    "config": t.config.model_dump(mode="json")} for t in self.iter_trials(spec)]
        return {KIND_KEY: self.name, ENTRY_KEY: {"grid_search": entries}}

    def decode(self, config: dict[str, Any], number: int | None) -> Trial:
        entry = config[ENTRY_KEY]
        return Trial(int(entry["index"]), dict(entry["params"]),
                     TrialConfig.model_validate(entry["config"]))


def _grids(spec: SweepSpec) -> list[list[Any]]:
    return [values for values in spec.search.params.values() if isinstance(values, list)]


def _trial(base: dict[str, Any], index: int, names: list[str], values: tuple[Any, ...],
           seed: int) -> Trial:
    params = {**dict(zip(names, values, strict=True)), "seed": seed}
    return Trial(index, params, with_values(base, params))
