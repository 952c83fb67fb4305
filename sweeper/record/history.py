"""A metric's per-epoch history for many runs at once: what the reports' curves need.

One `get_metric_history` request per run costs ~15 ms on SQLite and far more over
HTTP: thousands of runs take minutes. The stores answer in bulk instead: a SQL store
(SQLite, PostgreSQL, ...) in one query per chunk of runs, a tracking server through the
bulk endpoint its own UI uses (100 runs a request). Other stores are asked run by run.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import NamedTuple

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)

SQL_CHUNK = 500  # run ids per query (SQLite allows 32,766 bound variables)
HTTP_CHUNK = 100  # the server's limit per request
HTTP_MAX_POINTS = 25_000  # the server's cap on the points of one answer
HTTP_ENDPOINT = "/ajax-api/2.0/mlflow/metrics/get-history-bulk"


class Point(NamedTuple):
    run_id: str
    step: int
    value: float


def metric_history(client: MlflowClient, run_ids: Sequence[str], key: str) -> list[Point]:
    """Every logged point of metric `key` of the runs `run_ids`, by run then step."""
    store = client._tracking_client.store  # the public client has no bulk read
    if hasattr(store, "get_metric_history_bulk"):
        points = list(_from_sql(store, run_ids, key))
    elif hasattr(store, "get_host_creds"):
        points = list(_from_server(client, store, run_ids, key))
    else:
        points = list(_run_by_run(client, run_ids, key))
    return sorted(points, key=lambda p: (p.run_id, p.step))


def _from_sql(store: object, run_ids: Sequence[str], key: str) -> Iterator[Point]:
    for start in range(0, len(run_ids), SQL_CHUNK):
        chunk = list(run_ids[start : start + SQL_CHUNK])
        found = store.get_metric_history_bulk(  # type: ignore[attr-defined]
            run_ids=chunk, metric_key=key, max_results=2**62)
        for item in found:
            yield Point(item.run_id, int(item.step), float(item.value))


def _from_server(client: MlflowClient, store: object, run_ids: Sequence[str], key: str
                 ) -> Iterator[Point]:
    from mlflow.utils.rest_utils import http_request

    for start in range(0, len(run_ids), HTTP_CHUNK):
        chunk = list(run_ids[start : start + HTTP_CHUNK])
        try:
            response = http_request(store.get_host_creds(),  # type: ignore[attr-defined]
                                    HTTP_ENDPOINT, "GET",
                                    params={"run_id": chunk, "metric_key": key,
                                            "max_results": HTTP_MAX_POINTS})
            response.raise_for_status()
            metrics = response.json().get("metrics", [])
        except (OSError, ValueError, MlflowException) as exc:  # an older or stricter server
            log.info("bulk metric history unavailable (%s): reading run by run", exc)
            yield from _run_by_run(client, chunk, key)
            continue
        if len(metrics) >= HTTP_MAX_POINTS:  # cut at the cap: ask these runs one by one
            yield from _run_by_run(client, chunk, key)
            continue
        for item in metrics:
            yield Point(str(item["run_id"]), int(item.get("step", 0)), float(item["value"]))


def _run_by_run(client: MlflowClient, run_ids: Sequence[str], key: str) -> Iterator[Point]:
    for run_id in run_ids:
        for metric in client.get_metric_history(run_id, key):
            yield Point(run_id, int(metric.step), float(metric.value))
