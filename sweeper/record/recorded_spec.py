"""The spec a sweep ran, as its parent run records it: the spec file's text (artifact
spec.yaml) and the `--set` overrides applied to it (tag sweeper.overrides)."""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.validation import MAX_TAG_VAL_LENGTH

from sweeper.errors import SpecError
from sweeper.record.contract import OVERRIDES_TAG
from sweeper.record.growth import current_spec_artifact
from sweeper.record.read_model import ParentRecord
from sweeper.spec.load import parse_spec
from sweeper.spec.schema import SweepSpec

log = logging.getLogger(__name__)


class RecordedSpecUnusable(Exception):
    """A sweep's recorded spec cannot be read back: readers fall back to what the runs
    show (the message says why)."""


def overrides_tag(overrides: Sequence[str]) -> dict[str, str]:
    """The overrides as a tag; none when they do not fit in one, so that the sweep still
    runs (readers then treat it as a sweep recorded without them)."""
    text = json.dumps(list(overrides))
    if len(text) > MAX_TAG_VAL_LENGTH:
        log.warning("the --set overrides (%d characters) exceed MLflow's %d-character tag: "
                    "not recorded, so reports read the sweep's spec.yaml alone",
                    len(text), MAX_TAG_VAL_LENGTH)
        return {}
    return {OVERRIDES_TAG: text}


def recorded_spec(client: MlflowClient, parent: ParentRecord) -> SweepSpec:
    """The spec a sweep ran: the spec.yaml on its parent run (a grown sweep: its latest
    growth's spec file) with the overrides in tag sweeper.overrides applied, parsed as
    `sweeper run` parsed it (a sweep recorded without the tag: the file alone).
    RecordedSpecUnusable saying why when the file is absent or unreadable, or the spec
    no longer validates."""
    overrides = recorded_overrides(parent.tags.get(OVERRIDES_TAG))
    artifact = current_spec_artifact(parent.tags)
    try:
        text = recorded_text(client, parent.run_id, artifact)
    except (MlflowException, OSError, UnicodeDecodeError) as exc:  # absent, unreadable
        raise RecordedSpecUnusable(
            f"no usable {artifact} on the sweep's parent run ({exc})") from None
    try:
        return parse_spec(text, source="spec.yaml of the sweep", overrides=overrides)
    except SpecError as exc:
        reason = "; ".join(str(exc).splitlines())
        raise RecordedSpecUnusable(f"the sweep's recorded spec does not validate: {reason}"
                                   ) from None


def recorded_text(client: MlflowClient, run_id: str, artifact: str) -> str:
    """A text artifact of a run."""
    with tempfile.TemporaryDirectory() as folder:
        return Path(client.download_artifacts(run_id, artifact, folder)).read_text()


def recorded_overrides(tag: str | None) -> list[str]:
    """The overrides a parent run's tag holds ([] without the tag)."""
    if tag is None:
        return []
    try:
        overrides = json.loads(tag)
    except ValueError:
        overrides = None
    if not (isinstance(overrides, list) and all(isinstance(o, str) for o in overrides)):
        raise RecordedSpecUnusable(f"tag {OVERRIDES_TAG} of the sweep's parent run is not a "
                                   f"JSON list of strings: {tag[:200]!r}")
    return overrides
