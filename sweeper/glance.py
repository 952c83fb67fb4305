"""The sweep at a glance: the links `sweeper ui NAME` prints. MLflow's comparison
page of the sweep's trials (params, metrics, parallel coordinates), a runs list
that shows the swept params and the metric (a view saved in the experiment), and
the report page attached to the parent run."""

from __future__ import annotations

import contextlib
import json
import logging
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

from mlflow.tracking import MlflowClient

from sweeper.spec import SweepSpec
from sweeper.tracking import (
    KIND_TAG,
    PARENT_TAG,
    RecordedSpecUnusable,
    SweepTracker,
    recorded_spec,
)

log = logging.getLogger(__name__)

DEFAULT_METRIC, DEFAULT_MODE = "top_1_accuracy", "max"  # the spec's defaults
# MLflow's comparison page fetches the runs one request each and draws a column per run:
# at 100 runs it loads in ~6 s on loopback (docs/ui.md), its table is 16 screens wide
# and its plot a tangle, so beyond that the link holds the best COMPARE_LIMIT trials
# (a ~4 kB URL).
COMPARE_LIMIT = 100
# The runs list's defaults live in a view saved in the experiment, the envelope MLflow's
# own Views -> "Save as new view" writes (experiment tag mlflow.sharedViewState.<key>),
# which the runs page loads from ?viewStateShareKey=<key>. A URL can carry the search,
# the sort and the workflow, but not the columns.
VIEW_KEY = "sweeper"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
# MLflow 3 opens pages in its GenAI navigation unless told this is model training.
WORKFLOW = ("workflowType", "machine_learning")
REPORT = "report/report.html"  # where `sweeper report` attaches its page to the parent run


@dataclass(frozen=True)
class Glance:
    """What the links of a sweep are made of."""

    name: str
    experiment_id: str
    parent_id: str
    metric: str  # the spec's metric: what "best" means
    mode: str  # max | min
    axes: tuple[str, ...]  # the swept params, in the spec's order
    ranked: tuple[str, ...]  # every trial's run id, best first (unmeasured ones last)
    compared: tuple[str, ...]  # those the comparison link holds: the best COMPARE_LIMIT
    view_saved: bool  # the runs view is in the experiment (else the link sorts and filters)
    report: bool  # `sweeper report` attached report/report.html to the parent run


def sweep_glance(tracker: SweepTracker, limit: int = COMPARE_LIMIT) -> Glance:
    """Read the sweep's spec and trials, and save its runs view in the experiment."""
    client = tracker.client
    try:
        spec: SweepSpec | None = recorded_spec(client, tracker.parent_id)
    except RecordedSpecUnusable as exc:
        log.warning("%s: ranking by %s (%s)", exc, DEFAULT_METRIC, DEFAULT_MODE)
        spec = None
    metric = spec.metric if spec is not None else DEFAULT_METRIC
    mode = spec.mode if spec is not None else DEFAULT_MODE
    trials = _trial_runs(client, tracker.experiment_id, tracker.parent_id)
    axes = _axes(spec, trials)
    ranked = tuple(run.info.run_id for run in rank(trials, metric, mode))
    saved = save_runs_view(client, tracker.experiment_id, f"sweeper: trials by {metric}",
                           runs_view_state(metric, mode, axes))
    return Glance(name=tracker.experiment, experiment_id=tracker.experiment_id,
                  parent_id=tracker.parent_id, metric=metric, mode=mode, axes=axes,
                  ranked=ranked, compared=ranked[:limit], view_saved=saved,
                  report=_has_report(client, tracker.parent_id))


def rank(runs: list[Any], metric: str, mode: str) -> list[Any]:
    """Best first by the run's latest `metric`; runs without it last; ties by name."""
    sign = -1.0 if mode == "max" else 1.0

    def key(run: Any) -> tuple[bool, float, str]:
        value = run.data.metrics.get(metric)
        missing = value is None or value != value  # NaN: a diverged trial
        return missing, 0.0 if missing else sign * value, run.info.run_name or ""

    return sorted(runs, key=key)


def compare_url(base: str, glance: Glance) -> str:
    """MLflow's comparison page of the trials: params, metrics, parallel coordinates.
    The UI's own links write runs=[...]&experiments=[...] as raw JSON; percent-encoded
    it survives terminals and chat windows that cut links at quotes."""
    query = _query([("runs", _json(list(glance.compared))),
                    ("experiments", _json([glance.experiment_id])), WORKFLOW])
    return f"{base}#/compare-runs?{query}"


def runs_view_state(metric: str, mode: str, axes: tuple[str, ...]) -> dict[str, Any]:
    """The runs list as a researcher sets it up by hand: the trials only (flat, not
    folded under the parent), best first, the swept params and the metric as columns."""
    return {"searchFilter": f"tags.`{KIND_TAG}` = 'trial'",
            "orderByKey": f"metrics.`{metric}`", "orderByAsc": mode == "min",
            "selectedColumns": [f"params.`{axis}`" for axis in axes] + [f"metrics.`{metric}`"]}


def runs_url(base: str, glance: Glance) -> str:
    """The experiment's runs list, opened on the saved view; without it (a store that
    refused the tag) the URL still carries the search and the sort."""
    path = f"{base}#/experiments/{glance.experiment_id}/runs"
    if glance.view_saved:
        # The page ignores the view when the URL names any search or sort itself.
        return f"{path}?{_query([('viewStateShareKey', VIEW_KEY), WORKFLOW])}"
    state = runs_view_state(glance.metric, glance.mode, glance.axes)
    return f"{path}?" + _query([
        ("searchFilter", state["searchFilter"]), ("orderByKey", state["orderByKey"]),
        ("orderByAsc", str(state["orderByAsc"]).lower()), WORKFLOW])


def report_url(base: str, glance: Glance) -> str:
    """The parent run's report.html in MLflow's artifact viewer (it shows HTML in place)."""
    return (f"{base}#/experiments/{glance.experiment_id}/runs/{glance.parent_id}"
            f"/artifacts/{REPORT}?{_query([WORKFLOW])}")


def save_runs_view(client: MlflowClient, experiment_id: str, name: str,
                   state: dict[str, Any]) -> bool:
    """Keep `state` as the experiment's view VIEW_KEY (listed under *Views* in the UI);
    False, with a warning, when the store refuses the tag."""
    text = json.dumps(state, sort_keys=True)
    now = int(time.time() * 1000)
    try:
        before = client.get_experiment(experiment_id).tags.get(VIEW_TAG)
        created = now
        if before:
            with contextlib.suppress(ValueError, TypeError, AttributeError):
                old = json.loads(before)
                if old.get("state") == text and old.get("name") == name:
                    return True
                created = int(old.get("createdAt", now))
        client.set_experiment_tag(experiment_id, VIEW_TAG, json.dumps(
            {"name": name, "createdAt": created, "updatedAt": now, "state": text}))
    except Exception as exc:  # a read-only store or user raises many types
        log.warning("could not save the runs view in experiment %s (%s): the runs link "
                    "sorts and filters, but shows MLflow's default columns", experiment_id, exc)
        return False
    return True


def describe(glance: Glance, base: str) -> str:
    """The lines `sweeper ui NAME` prints: what the sweep is and its two links."""
    total = len(glance.ranked)
    lines = [f"sweep {glance.name!r} ({total} trial{'s' * (total != 1)}):"]
    if not glance.compared:
        lines.append("  compare: (no trials yet)")
    else:
        if len(glance.compared) < total:
            lines.append(f"  the comparison holds the best {len(glance.compared)} of {total} "
                         f"trials by {glance.metric} ({glance.mode}): MLflow's comparison "
                         f"page is unwieldy beyond {COMPARE_LIMIT} runs; the runs list has all")
        lines.append(f"  compare: {compare_url(base, glance)}")
    lines.append(f"  runs:    {runs_url(base, glance)}")
    if glance.report:
        lines.append(f"  report:  {report_url(base, glance)}")
    return "\n".join(lines)


def _query(pairs: list[tuple[str, str]]) -> str:
    return urllib.parse.urlencode(pairs, quote_via=urllib.parse.quote, safe="")


def _json(values: list[str]) -> str:
    return json.dumps(values, separators=(",", ":"))


def _has_report(client: MlflowClient, parent_id: str) -> bool:
    try:
        return any(item.path == REPORT
                   for item in client.list_artifacts(parent_id, REPORT.rsplit("/", 1)[0]))
    except Exception as exc:  # an artifact store that cannot be listed: no link, no failure
        log.warning("could not list the sweep's report artifacts: %s", exc)
        return False


def _trial_runs(client: MlflowClient, experiment_id: str, parent_id: str) -> list[Any]:
    runs: list[Any] = []
    token = None
    while True:
        page = client.search_runs(
            [experiment_id], max_results=10_000, page_token=token,
            filter_string=f"tags.`{PARENT_TAG}` = '{parent_id}' AND tags.`{KIND_TAG}` = 'trial'")
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _axes(spec: SweepSpec | None, trials: list[Any]) -> tuple[str, ...]:
    """The spec's swept params in its order; without a spec, the params that vary."""
    if spec is not None and spec.search.params:
        return tuple(spec.search.params)
    names = sorted({key for run in trials for key in run.data.params})
    return tuple(key for key in names if key != "seed"
                 and len({run.data.params.get(key) for run in trials}) > 1)
