"""An Optuna search: `num_samples` trials, each proposed by a sampler (TPE, random or
CMA-ES, seeded with the spec's one seed) over the declared distributions, on top of
the spec's base values. Before the sweep runs it expands to those base values."""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterator
from typing import Any

from sweeper.search.kind import (
    KIND_KEY,
    Growth,
    OptunaPlan,
    SearchKind,
    SearchRefused,
    fixed_changes,
)
from sweeper.spec.schema import MAX_OPTUNA_SEED, OptunaParam, SearchSpec, SweepSpec
from sweeper.spec.trials import Trial, base_config, resolve_values

# How a sampled trial travels through Ray: the spec's base values, its seed, and the
# sampled values under this key (Tune flattens them to "sampled/<name>").
BASE_KEY, SEED_KEY, SAMPLED_KEY = "base", "seed", "sampled"


class OptunaKind(SearchKind):
    name = "optuna"
    enumerated = False

    def check(self, search: SearchSpec) -> None:
        for name, param in search.params.items():
            if not isinstance(param, OptunaParam):
                raise SearchRefused(f"optuna parameter {name!r} must be a distribution "
                                    "({type: float|int|categorical, low, high, log, choices})",
                                    "params", name)
        if search.num_samples is None:
            raise SearchRefused("an optuna search needs num_samples")
        if len(search.seeds) != 1:
            raise SearchRefused("an optuna search takes one seed (Optuna samples every trial "
                                f"afresh), got seeds {search.seeds}", "seeds")
        if search.seeds[0] > MAX_OPTUNA_SEED:
            raise SearchRefused(f"an optuna seed must be between 0 and 2**32 - 1 (Optuna's "
                                "samplers seed numpy's 32-bit RandomState), got "
                                f"{search.seeds[0]}", "seeds")

    def num_trials(self, spec: SweepSpec) -> int:
        return spec.search.num_samples or 0

    def label(self, spec: SweepSpec) -> str:
        return f"optuna ({spec.search.sampler})"

    def expansion_size(self, spec: SweepSpec) -> int:
        return len(spec.search.seeds)

    def iter_trials(self, spec: SweepSpec) -> Iterator[Trial]:
        for index in range(self.expansion_size(spec)):
            yield self.trial_at(spec, index)

    def trial_at(self, spec: SweepSpec, index: int) -> Trial:
        return resolve_values(base_config(spec), {"seed": spec.search.seeds[index]}, index)

    def describe_space(self, spec: SweepSpec, limit: int) -> list[str]:
        return [f"  {name}: {dist}" for name, dist in spec.search.params.items()]

    def param_space(self, spec: SweepSpec) -> dict[str, Any]:
        # The sampled values come from the searcher (`searcher`), not from Tune's space.
        return {KIND_KEY: self.name, BASE_KEY: base_config(spec), SEED_KEY: spec.search.seeds[0]}

    def searcher(self, spec: SweepSpec, points: list[dict[str, Any]],
                 rewards: list[float], stage: int = 0) -> OptunaPlan:
        import optuna

        samplers = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler,
                    "cmaes": optuna.samplers.CmaEsSampler}
        space = {f"{SAMPLED_KEY}/{name}": distribution(param)
                 for name, param in spec.search.params.items() if isinstance(param, OptunaParam)}
        return OptunaPlan(
            sampler=samplers[spec.search.sampler](seed=stage_seed(spec.search.seeds[0], stage)),
            space=space,
            points=[{f"{SAMPLED_KEY}/{name}": value for name, value in point.items()}
                    for point in points],
            rewards=list(rewards))

    def growth(self, before: SweepSpec, after: SweepSpec, may_change: Collection[str] = ()
               ) -> Growth:
        """An Optuna search grows by samples only: a larger num_samples, the same
        distributions, sampler, seed and warm start. Its new trials are sampled as they
        run (by a sampler that knows the sweep's finished trials)."""
        refused = fixed_changes(before, after, may_change, ("num_samples",))
        old, new = self.num_trials(before), self.num_trials(after)
        if new < old:
            refused.append(f"search.num_samples: {old} then, {new} now (a growth may only "
                           "raise it)")
        return Growth(refused=tuple(refused)) if refused else Growth(added=new - old)

    def decode(self, config: dict[str, Any], number: int | None) -> Trial:
        values = {**config[SAMPLED_KEY], "seed": config[SEED_KEY]}
        return resolve_values(config[BASE_KEY], values, -1 if number is None else number)


def stage_seed(seed: int, stage: int) -> int:
    """The sampler's seed for a stage of the sweep: the spec's for the sweep as first run;
    for a growth, one derived from it, since a sampler seeded alike would draw the
    earlier stage's first proposals again (its random start-up ignores the points)."""
    if stage == 0:
        return seed
    digest = hashlib.sha256(f"{seed}/growth-{stage}".encode()).digest()
    return int.from_bytes(digest[:4], "big")  # numpy's RandomState takes 32 bits


def distribution(param: OptunaParam) -> Any:
    """The optuna distribution of a spec's parameter."""
    import optuna

    if param.type == "categorical":
        return optuna.distributions.CategoricalDistribution(list(param.choices or []))
    assert param.low is not None and param.high is not None  # checked by the schema
    if param.type == "int":
        return optuna.distributions.IntDistribution(int(param.low), int(param.high),
                                                    log=param.log)
    return optuna.distributions.FloatDistribution(float(param.low), float(param.high),
                                                  log=param.log)
