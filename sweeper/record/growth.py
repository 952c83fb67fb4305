"""A sweep's growths (`sweeper run SPEC --extend`) as its parent run records them: the
tag sweeper.growth, a JSON list with one entry per growth (when, how many trials it
added, the sweep's total after it); the metric num_trials, one point per growth (step =
growth number; step 0: the total the sweep was opened with); and each growth's spec
file as the artifact growth/<k>/spec.yaml (growth/0/spec.yaml: the spec the sweep first
ran). The spec a grown sweep runs is its latest growth's spec file with the tag
sweeper.overrides, committed with the growth's entry in one write; spec.yaml is a copy
of it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from mlflow.utils.validation import MAX_TAG_VAL_LENGTH

from sweeper.record.contract import GROWTH_ARTIFACTS, GROWTH_TAG, SPEC_ARTIFACT


@dataclass(frozen=True)
class GrowthEntry:
    growth: int  # 1 for the first growth
    at: str  # when it was recorded: ISO 8601, UTC, to the second
    trials: int  # how many trials it added
    num_trials: int  # the sweep's trials after it


def growth_entries(tags: Mapping[str, str]) -> list[GrowthEntry]:
    """The growths a parent run's tags record, oldest first (none: a sweep as first run).
    A tag that is not such a list reads as none."""
    try:
        entries = json.loads(tags.get(GROWTH_TAG, "[]"))
        return [GrowthEntry(**entry) for entry in entries]
    except (ValueError, TypeError):
        return []


def growth_tag(entries: list[GrowthEntry]) -> str | None:
    """The tag's value for `entries`; None when it exceeds MLflow's tag length."""
    text = json.dumps([asdict(entry) for entry in entries], separators=(",", ":"))
    return text if len(text) <= MAX_TAG_VAL_LENGTH else None


def has_room(entries: list[GrowthEntry], added: int, num_trials: int) -> bool:
    """Whether the tag can record one more growth (a timestamp is always this long)."""
    return growth_tag([*entries, GrowthEntry(len(entries) + 1, "2026-01-01T00:00:00Z",
                                             added, num_trials)]) is not None


def spec_artifact(growth: int) -> str:
    """Where the spec file of growth `growth` is kept on the parent run."""
    return f"{GROWTH_ARTIFACTS}/{growth}/{SPEC_ARTIFACT}"


def current_spec_artifact(tags: Mapping[str, str]) -> str:
    """The artifact holding the spec file the sweep runs now: its latest growth's, or
    spec.yaml for a sweep that never grew."""
    entries = growth_entries(tags)
    return spec_artifact(entries[-1].growth) if entries else SPEC_ARTIFACT
