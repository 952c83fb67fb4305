"""`sweeper ui NAME`: the links it prints (fast, on a store logged without Ray), and
end to end in a real browser: after a real sweep and `sweeper report`, the MLflow UI
served by `sweeper ui` on loopback opens each printed link on what it promises.

Screenshots are kept in test-artifacts/ui/; UPDATE_SCREENSHOTS=1 also writes the
ones the docs show (docs/images/compare.png, report.png, runs.png)."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import urllib.parse
import webbrowser
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from sweeper.cli import build_parser
from sweeper.commands import ui
from sweeper.record import links
from sweeper.record.ranking import ranked
from sweeper.record.read_model import TrialRecord
from sweeper.record.store import open_client
from sweeper.record.sweeps import SweepRecord, read_sweep
from sweeper.spec.trials import Trial
from tests.reports.conftest import log_sweep, spec_yaml

from .conftest import tiny_sweep

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts" / "ui"
DOC_IMAGES = ROOT / "docs" / "images"
FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-quic"]
VIEWPORT = {"width": 1280, "height": 800}  # the docs' screenshots: small PNGs
GRID = "search:\n  params:\n    temperature: [0.2, 0.5]\n    color_jitter_strength: [0.5, 1.0]\n"
AXES = ("temperature", "color_jitter_strength")

chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                              reason="Debian's chromium is not installed")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def query_of(url: str) -> dict[str, str]:
    """The query of a hash-routed URL (MLflow's UI: http://host/#/route?query)."""
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).fragment.split("?", 1)[1]))


# --- the links, without a browser ------------------------------------------------------

def logged(uri: str, extra: str = "",
           score: Any = lambda t: {"top_1_accuracy": t.params["temperature"]
                                   * t.params["color_jitter_strength"]},
           overrides: tuple[str, ...] = ()) -> SweepRecord:
    """A finished 2x2 sweep logged as the driver would, without Ray or training."""
    text = tiny_sweep("glance", GRID, extra=extra)

    def outcome(trial: Trial) -> tuple[dict[str, float], str, None]:
        return score(trial), "FINISHED", None

    log_sweep(uri, text, outcome, epochs=(1,), overrides=overrides)
    return read_sweep(uri, "glance", open_client(uri))


def reread(sweep: SweepRecord) -> SweepRecord:
    """The sweep read again from its store (after a test changed it), with the same client."""
    return read_sweep(sweep.tracking_uri, sweep.name, sweep.client)


@pytest.fixture
def store(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def names_of(client: MlflowClient, run_ids: tuple[str, ...]) -> list[str]:
    return [client.get_run(run_id).info.run_name for run_id in run_ids]


def test_comparison_link_holds_every_trial_best_first(store: str) -> None:
    tracker = logged(store)
    glance = links.sweep_glance(tracker)
    assert (glance.metric, glance.mode, glance.axes) == ("top_1_accuracy", "max", AXES)
    # top_1 = t * cj: 0.5, 0.25, 0.2, 0.1
    assert names_of(tracker.client, glance.compared) == [
        "t0.5-cj1", "t0.5-cj0.5", "t0.2-cj1", "t0.2-cj0.5"]
    url = links.compare_url("http://127.0.0.1:5000/", glance)
    assert url.startswith("http://127.0.0.1:5000/#/compare-runs?")
    query = query_of(url)
    assert json.loads(query["runs"]) == list(glance.compared)
    assert json.loads(query["experiments"]) == [tracker.experiment_id]
    assert query["workflowType"] == "machine_learning"
    assert not re.search(r'["\[\]` ]', url)  # percent-encoded: terminals keep it whole
    text = links.describe(glance, "http://127.0.0.1:5000/")
    assert text.splitlines()[0] == "sweep 'glance' (4 trials):"
    assert f"  compare: {url}" in text.splitlines()
    assert "report:" not in text  # no `sweeper report` yet


def test_over_the_limit_the_comparison_holds_the_best_by_the_spec_metric(store: str) -> None:
    # A spec that minimises its metric: "best" is the lowest loss.
    tracker = logged(store, extra="metric: loss\nmode: min\n",
                     score=lambda t: {"loss": t.params["temperature"]
                                      + t.params["color_jitter_strength"]})
    glance = links.sweep_glance(tracker, limit=3)
    assert (glance.metric, glance.mode) == ("loss", "min")
    assert names_of(tracker.client, glance.ranked) == [
        "t0.2-cj0.5", "t0.5-cj0.5", "t0.2-cj1", "t0.5-cj1"]
    assert glance.compared == glance.ranked[:3]
    lines = links.describe(glance, "http://h:1/").splitlines()
    assert "the comparison holds the best 3 of 4 trials by loss (min)" in lines[1]
    assert json.loads(query_of(lines[2].split(": ", 1)[1].strip())["runs"]) == list(
        glance.compared)


def test_the_glance_reads_the_spec_that_ran_else_what_the_runs_show(
        store: str, caplog: pytest.LogCaptureFixture) -> None:
    tracker = logged(store, overrides=("metric=loss", "mode=min"),
                     score=lambda t: {"top_1_accuracy": t.params["temperature"],
                                      "loss": t.params["color_jitter_strength"]})
    glance = links.sweep_glance(tracker)
    assert (glance.metric, glance.mode, glance.axes) == ("loss", "min", AXES)

    path = spec_yaml(store, tracker.parent_id)
    path.write_text(path.read_text() + "retired_setting: 1\n")
    with caplog.at_level(logging.WARNING, logger="sweeper.record.sweeps"):
        glance = links.sweep_glance(reread(tracker))
    assert "retired_setting: unknown key" in caplog.text
    assert "reading the sweep from its runs alone" in caplog.text
    # The params that vary, alphabetical: not the declared order.
    assert (glance.metric, glance.mode, glance.axes) == (
        "top_1_accuracy", "max", ("color_jitter_strength", "temperature"))
    assert names_of(tracker.client, glance.ranked)[:2] == ["t0.5-cj0.5", "t0.5-cj1"]


def test_the_limit_keeps_the_comparison_url_short() -> None:
    glance = links.Glance(name="big", experiment_id="123", parent_id="p" * 32,
                       metric="top_1_accuracy", mode="max", axes=AXES,
                       ranked=tuple(f"{i:032x}" for i in range(500)),
                       compared=tuple(f"{i:032x}" for i in range(links.COMPARE_LIMIT)),
                       view_saved=True, report=False)
    assert len(links.compare_url("http://127.0.0.1:5000/", glance)) < 5000


def test_trials_without_the_metric_come_last() -> None:
    def run(name: str, index: int, **metrics: float) -> TrialRecord:
        return TrialRecord(run_id=name, name=name, status="FINISHED", params={},
                           metrics=metrics, tags={"sweeper.trial_index": str(index)},
                           start_time=0, end_time=None, description="")

    runs = [run("a", 0), run("b", 1, top_1_accuracy=float("nan")),
            run("c", 2, top_1_accuracy=0.1), run("d", 3, top_1_accuracy=0.3),
            run("e", 4, top_1_accuracy=0.1)]
    # Missing and NaN last (by trial index), ties by trial index.
    assert [r.name for r in ranked(runs, "top_1_accuracy", "max")] == ["d", "c", "e", "a", "b"]
    assert [r.name for r in ranked(runs, "top_1_accuracy", "min")] == ["c", "e", "d", "a", "b"]


def test_runs_link_opens_a_view_saved_in_the_experiment(store: str) -> None:
    tracker = logged(store)
    glance = links.sweep_glance(tracker)
    assert glance.view_saved
    url = links.runs_url("http://127.0.0.1:5000/", glance)
    assert url.startswith(f"http://127.0.0.1:5000/#/experiments/{tracker.experiment_id}/runs?")
    assert query_of(url) == {"viewStateShareKey": "sweeper", "workflowType": "machine_learning"}
    # The envelope MLflow's Views menu reads: name, times, and the state as a JSON string.
    tag = tracker.client.get_experiment(tracker.experiment_id).tags[links.VIEW_TAG]
    view = json.loads(tag)
    assert view["name"] == "sweeper: trials by top_1_accuracy"
    assert json.loads(view["state"]) == {
        "searchFilter": "tags.`sweeper.kind` = 'trial'",
        "orderByKey": "metrics.`top_1_accuracy`", "orderByAsc": False,
        "selectedColumns": ["params.`temperature`", "params.`color_jitter_strength`",
                            "metrics.`top_1_accuracy`"]}
    links.sweep_glance(tracker)  # a second `sweeper ui`: nothing to rewrite
    assert tracker.client.get_experiment(tracker.experiment_id).tags[links.VIEW_TAG] == tag


def test_without_the_view_the_runs_link_still_filters_and_sorts(
        store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    tracker = logged(store, extra="metric: loss\nmode: min\n",
                     score=lambda t: {"loss": t.params["temperature"]})

    def refuse(*_: Any) -> None:
        raise PermissionError("read-only store")

    monkeypatch.setattr(tracker.client, "set_experiment_tag", refuse)
    glance = links.sweep_glance(tracker)
    assert not glance.view_saved
    assert query_of(links.runs_url("http://h:1/", glance)) == {
        "searchFilter": "tags.`sweeper.kind` = 'trial'", "orderByKey": "metrics.`loss`",
        "orderByAsc": "true", "workflowType": "machine_learning"}


def test_report_link_once_the_report_is_attached(store: str, tmp_path: Path) -> None:
    tracker = logged(store)
    page = tmp_path / "report.html"
    page.write_text("<table></table>")
    tracker.client.log_artifact(tracker.parent_id, str(page), "report")
    glance = links.sweep_glance(reread(tracker))
    assert glance.report
    url = links.report_url("http://127.0.0.1:5000/", glance)
    assert url == (f"http://127.0.0.1:5000/#/experiments/{tracker.experiment_id}/runs/"
                   f"{tracker.parent_id}/artifacts/report/report.html"
                   "?workflowType=machine_learning")
    assert f"  report:  {url}" in links.describe(glance, "http://127.0.0.1:5000/").splitlines()


def test_no_browser_on_a_headless_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []

    def record(url: str, new: int = 0) -> bool:
        opened.append(url)
        return True

    monkeypatch.setattr(webbrowser, "open", record)
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    assert not ui.open_in_browser("http://x/")  # not even lynx in this terminal
    monkeypatch.setenv("BROWSER", "firefox")  # the user's own choice
    assert ui.open_in_browser("http://x/")
    assert opened == ["http://x/"]

    def broken(url: str, new: int = 0) -> bool:
        raise OSError("no such browser")

    monkeypatch.setattr(webbrowser, "open", broken)
    assert not ui.open_in_browser("http://x/")  # never fails the server


def test_cli_no_browser_flag() -> None:
    assert build_parser().parse_args(["ui", "demo"]).browser
    assert not build_parser().parse_args(["ui", "demo", "--no-browser"]).browser


# --- end to end in Chromium ------------------------------------------------------------

@pytest.fixture(scope="module")
def served_sweep(local_ray: None, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[tuple[dict[str, str], str]]:
    """A finished 2x2 sweep with its report, and `sweeper ui` serving it: (the links it
    printed by label, tracking URI). One per module: the sweep is the slow part."""
    from sweeper.driver import SweepOptions, run_sweep
    from sweeper.spec.load import parse_spec

    workdir = tmp_path_factory.mktemp("ui")
    text = tiny_sweep("ui-demo", GRID, epochs=1)
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(workdir)  # MLflow's default artifact root is ./mlruns
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        import io

        run_sweep(parse_spec(text), text, SweepOptions(storage=workdir / "results",
                                                       tracking_uri=uri),
                  progress=io.StringIO())
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    subprocess.run([sys.executable, "-m", "sweeper.cli", "report", "ui-demo",
                    "--tracking-uri", uri], cwd=workdir, env=env, check=True,
                   capture_output=True, timeout=300)
    server = subprocess.Popen(
        [sys.executable, "-m", "sweeper.cli", "ui", "ui-demo", "--port", str(free_port()),
         "--tracking-uri", uri, "--no-browser"], cwd=workdir, env=env,
        stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        # `sweeper ui` prints its links once the server answers /health (MLflow's own
        # lines may come first), then "(Ctrl-C to stop)".
        links: dict[str, str] = {}
        line = ""
        while "Ctrl-C to stop" not in line:
            line = server.stdout.readline()
            assert line, "sweeper ui exited before printing its links"
            if match := re.match(r"^  (compare|runs|report): +(http\S+)$", line):
                links[match[1]] = match[2]
        assert set(links) == {"compare", "runs", "report"}, links
        yield links, uri
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def api(served_sweep: tuple[dict[str, str], str]) -> dict[str, Any]:
    """What MLflow's API says about the sweep: the truth the pages must show."""
    client = MlflowClient(served_sweep[1])
    experiment = client.get_experiment_by_name("ui-demo")
    assert experiment is not None
    trials = client.search_runs([experiment.experiment_id],
                                "tags.`sweeper.kind` = 'trial'")
    assert len(trials) == 4
    return {"experiment_id": experiment.experiment_id,
            "runs": {run.info.run_id: run for run in trials},
            "by_name": {run.info.run_name: run for run in trials}}


@pytest.fixture
def page() -> Iterator[Any]:
    """A fresh Chromium profile (so MLflow's first-visit state applies), 1280x800."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser.new_page(viewport=VIEWPORT)
        browser.close()


def close_assistant(page: Any) -> None:
    """MLflow opens its Assistant side panel on a loopback server's first visit (a
    fresh profile's), a moment after the page: close it as a user would, once."""
    close = page.locator('[data-component-id="mlflow.assistant.chat_panel.close"]')
    try:
        close.wait_for(timeout=15_000)
    except Exception:  # Playwright's TimeoutError: no panel this time
        return
    close.click()
    close.wait_for(state="hidden", timeout=10_000)


def screenshot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name))
    if os.environ.get("UPDATE_SCREENSHOTS"):
        DOC_IMAGES.mkdir(parents=True, exist_ok=True)
        small_png(ARTIFACTS / name, DOC_IMAGES / name)


def small_png(source: Path, target: Path) -> None:
    """A screenshot in 256 colours: a third of the size, the UI's flat colours intact."""
    from PIL import Image

    with Image.open(source) as image:
        image.convert("RGB").quantize(colors=256, dither=Image.Dither.NONE).save(
            target, optimize=True)


def plot_dimensions(page: Any) -> dict[str, list[float]]:
    """The parallel-coordinates plot's axes and their values, one per run (Plotly's own
    data on the plot element)."""
    data = page.evaluate("JSON.stringify(document.querySelector('.js-plotly-plot')"
                         ".data[0].dimensions.map(d => [d.label, Array.from(d.values)]))")
    return {label: values for label, values in json.loads(data)}


@pytest.mark.slow
@chromium
def test_printed_comparison_link_shows_the_trials_in_chromium(
        served_sweep: tuple[dict[str, str], str], api: dict[str, Any], page: Any) -> None:
    links, _ = served_sweep
    query = query_of(links["compare"])
    order = json.loads(query["runs"])  # best first, as the link lists them
    assert sorted(order) == sorted(api["runs"])
    assert json.loads(query["experiments"]) == [api["experiment_id"]]
    runs = [api["runs"][run_id] for run_id in order]
    accuracy = [run.data.metrics["top_1_accuracy"] for run in runs]
    assert accuracy == sorted(accuracy, reverse=True)

    page.goto(links["compare"])
    page.get_by_text("Comparing 4 Runs from 1 Experiment").wait_for(timeout=90_000)
    page.locator(".js-plotly-plot .parcoords").first.wait_for(timeout=60_000)
    close_assistant(page)
    # Run details: one column per trial, in the link's order.
    def row(title: str) -> list[str]:
        """A row of the comparison's tables: its title cell, then a cell per run."""
        title_cell = page.locator(".head-value", has_text=re.compile(rf"^{re.escape(title)}$"))
        return [text.strip() for text in page.locator("tr", has=title_cell).first.locator(
            ".data-value").all_inner_texts()]

    assert row("Run ID:") == order
    assert row("Run Name:") == [r.info.run_name for r in runs]
    # The swept params' rows hold each trial's values as MLflow's API returns them.
    for param in AXES:
        assert row(param) == [r.data.params[param] for r in runs]
    # The metrics table lists top_1_accuracy (each name links to its plot).
    # The table renders the rows in view (virtualised): scroll down until its row exists.
    links = page.locator('a[title="Plot chart"]')
    top1 = links.filter(has_text=re.compile("^top_1_accuracy$"))
    for _ in range(30):
        if top1.count():
            break
        links.last.scroll_into_view_if_needed()
        page.mouse.wheel(0, 600)
        page.wait_for_timeout(200)
    top1.first.wait_for(timeout=30_000)
    # Parallel coordinates: the swept params differ, so they are its axes already.
    axes = plot_dimensions(page)
    for param in AXES:
        assert axes[param] == [float(r.data.params[param]) for r in runs]
    # Put the sweep's metric on the plot (MLflow starts with the first metric
    # alphabetically) and drop that one, as a researcher would.
    selects = page.locator('[class*="select-selector"]', has=page.get_by_role("combobox"))
    metrics_select = selects.nth(1)
    first_metric = metrics_select.locator('[class*="selection-item-content"]').first
    first_name = first_metric.inner_text()
    metrics_select.click()
    option = page.locator('[class*="select-item-option"][title="top_1_accuracy"]')
    holder = page.locator(".rc-virtual-list-holder").last  # the open dropdown's
    for _ in range(50):  # the option list is virtual: scroll until the option exists
        if option.count():
            break
        holder.evaluate("e => e.scrollTop += 120")
        page.wait_for_timeout(100)
    option.click()
    page.keyboard.press("Escape")
    metrics_select.locator('[class*="selection-item"]', has_text=first_name).locator(
        '[class*="remove"]').click()
    # The plot redraws: its axis titles (SVG text) become the params and the metric.
    expected = sorted([*AXES, "top_1_accuracy"])
    page.wait_for_function(
        "expected => JSON.stringify(Array.from(document.querySelectorAll("
        "'.parcoords .axis-title'), e => e.textContent).sort()) == JSON.stringify(expected)",
        arg=expected, timeout=30_000)
    # Plotly keeps float32: equal to MLflow's float64 to 7 digits.
    assert plot_dimensions(page)["top_1_accuracy"] == pytest.approx(accuracy, rel=1e-6)
    page.mouse.move(0, 0)
    screenshot(page, "compare.png")


@pytest.mark.slow
@chromium
def test_printed_runs_link_shows_the_trials_by_the_metric_in_chromium(
        served_sweep: tuple[dict[str, str], str], api: dict[str, Any], page: Any) -> None:
    links, _ = served_sweep
    page.goto(links["runs"])
    header = page.locator(".ag-header")
    # The saved view's columns, without touching Columns.
    for column in ("top_1_accuracy", *AXES):
        header.get_by_text(column, exact=True).first.wait_for(timeout=90_000)
    close_assistant(page)
    page.get_by_text("4 matching runs").wait_for(timeout=30_000)  # the trials, no parent
    # MLflow's grid renders a row in two parts (the pinned run name, the scrolling
    # columns) sharing a row-index: read each row's name and cells by that index.
    rows = []
    for index in range(4):
        row = page.locator(f'.ag-row[row-index="{index}"]')
        # The name cell also holds the run's colour picker: read its link.
        name = row.locator('[col-id="attributes.`Run Name`"] a').first.inner_text().strip()
        cells = {column: row.locator(f'[col-id="{key}"]').first.inner_text().strip()
                 for column, key in (("top_1_accuracy", "metrics.`top_1_accuracy`"),
                                     *((p, f"params.`{p}`") for p in AXES))}
        rows.append((name, cells))
    assert sorted(name for name, _ in rows) == sorted(api["by_name"])
    for name, cells in rows:
        run = api["by_name"][name]
        # The grid shows the value MLflow stores, every digit (CSS only clips it).
        assert float(cells["top_1_accuracy"]) == run.data.metrics["top_1_accuracy"], name
        for param in AXES:
            assert cells[param] == run.data.params[param], (name, param)
    shown = [float(cells["top_1_accuracy"]) for _, cells in rows]
    assert shown == sorted(shown, reverse=True)  # best first
    assert page.get_by_text("Judges", exact=True).count() == 0  # the training navigation
    screenshot(page, "runs.png")


@pytest.mark.slow
@chromium
def test_printed_report_link_shows_report_html_in_chromium(
        served_sweep: tuple[dict[str, str], str], api: dict[str, Any], page: Any) -> None:
    links, _ = served_sweep
    assert "/artifacts/report/report.html" in links["report"]
    page.goto(links["report"])
    table = page.frame_locator("iframe").locator("table#appendix-b")
    table.wait_for(timeout=90_000)
    close_assistant(page)
    assert table.is_visible()
    header = table.locator("thead th").all_inner_texts()
    assert header[:2] == ["temperature", "color_jitter"]
    column = header.index("top_1_accuracy")
    shown = {}
    for row in table.locator("tbody tr").all():
        cells = row.locator("td").all_inner_texts()
        shown[(cells[0], cells[1])] = cells[column]
    expected = {(run.data.params["temperature"], run.data.params["color_jitter_strength"]):
                f"{round(run.data.metrics['top_1_accuracy'], 3)}"
                for run in api["runs"].values()}
    assert shown == expected
    screenshot(page, "report.png")


def test_ctrl_c_stops_the_ui_and_every_server_process_quietly(tmp_path: Path) -> None:
    """A terminal's Ctrl-C (SIGINT to the foreground group), twice: exit 0, no
    traceback from the server's processes, none of them left behind."""
    import signal

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    open_client(uri)  # an empty store
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "sweeper.cli", "ui", "--port", str(port), "--tracking-uri", uri,
         "--no-browser"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert server.stdout is not None
    while "Ctrl-C to stop" not in (line := server.stdout.readline()):
        assert line, "sweeper ui exited before serving"
    os.killpg(server.pid, signal.SIGINT)
    os.killpg(server.pid, signal.SIGINT)  # impatient: the second one too must end quietly
    _, err = server.communicate(timeout=60)
    assert server.returncode == 0, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    left = subprocess.run(["pgrep", "-f", f"--port {port}"], capture_output=True, text=True)
    assert left.stdout == "", left.stdout
