"""The searcher Tune asks for each trial: the kind's (an OptunaSearch), with each proposal
of a configuration already finished marked a repeat (sweeper.driver.repeats).

Tune pickles the searcher with the sweep (tuner.pkl, and the wrappers' states beside
it) and a resumed sweep asks the unpickled copy. So, as the callback does, the wrapper
holds nothing of the sweep: it asks the `SweepSession` bound to the thread that runs
`Tuner.fit` (sweeper.driver.events.active_session), which knows what has finished.
Part of the storage format: its path, sweeper.driver.repeat_search.RepeatSearch.
"""

from __future__ import annotations

from typing import Any

from ray.tune.search import Searcher

from sweeper.driver.events import active_session
from sweeper.driver.repeats import REPEAT_KEY


class RepeatSearch(Searcher):
    """Forwards everything to `searcher`; a proposal the bound session knows as a repeat
    gets REPEAT_KEY in its config."""

    def __init__(self, searcher: Searcher) -> None:
        self.searcher = searcher  # Tune's wrappers are told apart by this attribute's name
        super().__init__(metric=searcher.metric, mode=searcher.mode)

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        proposal = self.searcher.suggest(trial_id)
        session = active_session()
        if not isinstance(proposal, dict) or session is None:
            return proposal  # None (wait), Searcher.FINISHED, or no sweep to ask
        repeat = session.repeat_for(proposal)
        return proposal if repeat is None else {**proposal, REPEAT_KEY: repeat.marker()}

    def set_search_properties(self, metric: str | None, mode: str | None,
                              config: dict[str, Any], **spec: Any) -> bool:
        return bool(self.searcher.set_search_properties(metric, mode, config, **spec))

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        return bool(self.searcher.set_max_concurrency(max_concurrent))

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        self.searcher.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None,
                          error: bool = False) -> None:
        self.searcher.on_trial_complete(trial_id, result=result, error=error)

    def add_evaluated_point(self, parameters: dict[str, Any], value: float,
                            error: bool = False, pruned: bool = False,
                            intermediate_values: list[float] | None = None) -> None:
        self.searcher.add_evaluated_point(parameters, value, error, pruned,
                                          intermediate_values)

    def get_state(self) -> dict[str, Any]:
        return {}  # nothing of its own: the wrapped searcher saves itself

    def set_state(self, state: dict[str, Any]) -> None:
        pass

    def save(self, checkpoint_path: str) -> None:
        self.searcher.save(checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        self.searcher.restore(checkpoint_path)
