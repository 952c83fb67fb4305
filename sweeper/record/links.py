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

from sweeper.record.contract import KIND_TAG, TRIAL_KIND
from sweeper.record.ranking import ranked
from sweeper.record.sweeps import SweepRecord

log = logging.getLogger(__name__)

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


def sweep_glance(sweep: SweepRecord, limit: int = COMPARE_LIMIT) -> Glance:
    """The sweep's links from its record; saves its runs view in the experiment."""
    metric, mode, axes = sweep.metric, sweep.mode, tuple(sweep.axes)
    ranking = tuple(record.run_id for record in ranked(sweep.trials, metric, mode))
    saved = save_runs_view(sweep.client, sweep.experiment_id, f"sweeper: trials by {metric}",
                           runs_view_state(metric, mode, axes))
    return Glance(name=sweep.name, experiment_id=sweep.experiment_id,
                  parent_id=sweep.parent_id, metric=metric, mode=mode, axes=axes,
                  ranked=ranking, compared=ranking[:limit], view_saved=saved,
                  report=_has_report(sweep.client, sweep.parent_id))


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
    return {"searchFilter": f"tags.`{KIND_TAG}` = '{TRIAL_KIND}'",
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
