"""Listing many runs from a tracking server quickly: the JSON that MLflow's REST API
sends, read as is, and after the first page, the rest as several ranges of start time
asked for at once.

Measured at 10,000 runs on 2 cores (docs/benchmarks.md): the server answers a page of
1,000 runs in ~3.5 s, one request at a time, and MLflow's client then spends ~1.5 s
turning that page's JSON into protobuf messages and `Run` objects. Reading the JSON
directly drops the second cost; asking for the ranges at once lets a server with several
workers (`mlflow server --workers`) answer them side by side.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from mlflow.tracking import MlflowClient

T = TypeVar("T")
Json = dict[str, Any]

SEARCH_ENDPOINT = "/api/2.0/mlflow/runs/search"  # MLflow's REST API: SearchRuns
OLDEST_FIRST, NEWEST_FIRST = "attributes.start_time ASC", "attributes.start_time DESC"
# Runs in the first page, read alone: a small sweep's whole record in one request.
FIRST_PAGE = 250
# Start-time ranges read at once after the first page: one request in flight each.
# `mlflow server` answers with `--workers` processes (default 4); on a 2-core server two
# at once already use it whole, and more in flight only make each answer later (the
# read commands' requests must come back within 20 s, sweeper.record.store).
RANGES = 2
# Between starting one range and the next. Each worker process accepts every connection
# waiting when it looks, so connections opened together all go to one worker; a
# connection opened while the first worker is busy with a request goes to another.
STAGGER_S = 0.2


def is_server(client: MlflowClient) -> bool:
    return client.tracking_uri.startswith(("http://", "https://"))


def search_server(client: MlflowClient, experiment_ids: list[str], filter_string: str,
                  page_size: int, convert: Callable[[Json], T]) -> Iterator[T]:
    """Every run matching the filter (MLflow's filter syntax), oldest first, each as
    `convert` makes it from the run's JSON (`info` and `data`, as the REST API sends it).

    The first page is read alone: a sweep that fits in it costs one request. Then the
    runs from the first page's last start time on are split into RANGES ranges of start
    time, read in parallel, each page by page; runs of the first page that the first
    range holds again (equal start times) are left out."""
    ask = _Requests(client, experiment_ids, filter_string)
    first = ask.page(OLDEST_FIRST, min(FIRST_PAGE, page_size))
    runs = first.get("runs", [])
    yield from map(convert, runs)
    if not first.get("next_page_token"):
        return
    low = _start_time(runs[-1])
    seen = {_run_id(run) for run in runs if _start_time(run) == low}
    newest = ask.page(NEWEST_FIRST, 1).get("runs", [])
    high = max(_start_time(newest[0]), low) if newest else low
    bounds = _bounds(low, high, RANGES)

    def read(index: int) -> list[T]:
        time.sleep(STAGGER_S * index)
        lower, upper = bounds[index], bounds[index + 1] if index + 1 < len(bounds) else None
        return [convert(run) for run in ask.every(lower, upper, page_size)
                if _run_id(run) not in seen]

    with ThreadPoolExecutor(max_workers=len(bounds),
                            thread_name_prefix="sweeper-server-read") as pool:
        for found in pool.map(read, range(len(bounds))):
            yield from found


def _bounds(low: int, high: int, ranges: int) -> list[int]:
    """The lower ends of up to `ranges` ranges of start time from `low`: the last range
    has no upper end (runs created while it is read are in it)."""
    step = math.ceil((high - low + 1) / ranges)
    return list(range(low, high + 1, max(step, 1)))[:ranges]


class _Requests:
    def __init__(self, client: MlflowClient, experiment_ids: list[str],
                 filter_string: str) -> None:
        self.store = client._tracking_client.store  # the public client returns only Runs
        self.experiment_ids = [str(e) for e in experiment_ids]
        self.filter_string = filter_string

    def page(self, order_by: str, size: int, token: str | None = None,
             extra: str = "") -> Json:
        from mlflow.utils.rest_utils import http_request, verify_rest_response

        query = " AND ".join(part for part in (self.filter_string, extra) if part)
        body: Json = {"experiment_ids": self.experiment_ids, "filter": query,
                      "max_results": size, "order_by": [order_by]}
        if token:
            body["page_token"] = token
        response = http_request(self.store.get_host_creds(), SEARCH_ENDPOINT, "POST",
                                json=body)
        return verify_rest_response(response, SEARCH_ENDPOINT).json()

    def every(self, lower: int, upper: int | None, size: int) -> Iterator[Json]:
        """The runs with `lower` <= start time < `upper`, oldest first."""
        extra = f"attributes.start_time >= {lower}"
        if upper is not None:
            extra += f" AND attributes.start_time < {upper}"
        token = None
        while True:
            page = self.page(OLDEST_FIRST, size, token, extra)
            yield from page.get("runs", [])
            token = page.get("next_page_token")
            if not token:
                return


def _start_time(run: Json) -> int:
    return int(run["info"].get("start_time", 0))


def _run_id(run: Json) -> str:
    info = run["info"]
    return str(info.get("run_id") or info.get("run_uuid"))
