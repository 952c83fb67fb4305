"""End to end in a real browser: after a sweep, the MLflow UI served by
`sweeper ui` on loopback shows every trial run, the swept params and
top_1_accuracy, and the comparison view of the trials opens. Screenshots are
kept in test-artifacts/ui/."""

import io
import json
import re
import shutil
import socket
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest

from sweeper.driver import SweepOptions, run_sweep
from sweeper.spec import parse_spec

from .conftest import tiny_sweep

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"
FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-quic"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served_sweep(local_ray: None, workdir: Path) -> Iterator[tuple[str, str]]:
    """A finished 2x2 sweep and `sweeper ui` serving it: (experiment URL, tracking URI)."""
    text = tiny_sweep("ui-demo", "search:\n  params:\n    temperature: [0.2, 0.5]\n"
                      "    color_jitter_strength: [0.5, 1.0]\n", epochs=1)
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    run_sweep(parse_spec(text), text, SweepOptions(storage=workdir / "results",
                                                   tracking_uri=uri), progress=io.StringIO())
    server = subprocess.Popen(
        [sys.executable, "-m", "sweeper.cli", "ui", "ui-demo", "--port", str(free_port()),
         "--tracking-uri", uri], cwd=workdir, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        # `sweeper ui` prints the URL once the server answers /health (MLflow's own lines
        # may come first).
        line = ""
        while "MLflow UI for" not in line:
            line = server.stdout.readline()
            assert line, "sweeper ui exited before printing its URL"
        yield line.rsplit(": ", 1)[1].strip(), uri
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_mlflow_ui_shows_the_sweep_in_chromium(served_sweep: tuple[str, str]) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    url, uri = served_sweep
    assert url.endswith("/runs")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    names = ["t0.2-cj0.5", "t0.2-cj1", "t0.5-cj0.5", "t0.5-cj1"]
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 2200, "height": 1100})
        page.goto(url)
        page.get_by_text("Training runs").first.wait_for(timeout=90_000)
        # The parent run holds the trials, collapsed: expand it.
        parent = page.locator('.ag-row [col-id="attributes.`Run Name`"]').first
        parent.wait_for(timeout=60_000)
        assert "ui-demo" in parent.inner_text()
        parent.locator("button").first.click()
        for name in names:
            page.get_by_text(name, exact=True).first.wait_for(timeout=30_000)
        # Show the swept params and the headline metric as columns, as a researcher would.
        page.get_by_role("button", name="Columns").first.click()
        search = page.get_by_placeholder("Search columns")
        for column in ("top_1_accuracy", "temperature", "color_jitter_strength"):
            search.fill(column)
            # The option's label highlights the match in <strong>; pick the exact name,
            # not online_linear_top_1_accuracy and the like.
            page.locator("span:has(> strong)").filter(
                has_text=re.compile(rf"^{column}$")).first.click()
        page.keyboard.press("Escape")
        header = page.locator(".ag-header")
        for column in ("top_1_accuracy", "temperature", "color_jitter_strength"):
            header.get_by_text(column).first.wait_for(timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "experiment_runs.png"))
        assert page.locator(".ag-row").count() >= 5  # the parent and its four trials
        # The grid renders a row in two parts (pinned run name, scrolling columns): find
        # the trial's row index by its name, then its top_1_accuracy cell.
        index = page.locator(".ag-row").filter(has_text="t0.5-cj1").first.get_attribute(
            "row-index")
        value = page.locator(f'.ag-row[row-index="{index}"] [col-id*="top_1_accuracy"]'
                             ).first.inner_text()
        assert 0 <= float(value) <= 1, value

        # The comparison view of the four trials.
        mlflow.set_tracking_uri(uri)
        trials = mlflow.search_runs(experiment_names=["ui-demo"],
                                    filter_string="tags.`sweeper.kind` = 'trial'")
        experiment_id = trials.iloc[0]["experiment_id"]
        query = urllib.parse.urlencode({"runs": json.dumps(list(trials["run_id"])),
                                        "experiments": json.dumps([experiment_id])})
        page.goto(f"{url.split('#')[0]}#/compare-runs?{query}")
        page.get_by_text("top_1_accuracy").first.wait_for(timeout=60_000)
        for name in names:
            page.get_by_text(name).first.wait_for(timeout=30_000)
        page.get_by_text("temperature").first.wait_for(timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "compare_runs.png"), full_page=True)
        browser.close()
