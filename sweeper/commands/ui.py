"""`sweeper ui`: the MLflow UI for a sweep's tracking store, on loopback by default,
serving until interrupted, with the sweep's links (sweeper.record.links) printed and the
first opened where there is a graphical browser."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import signal
import subprocess
import sys
import urllib.parse
import urllib.request
import webbrowser
from typing import TextIO

from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from sweeper.errors import SweeperError
from sweeper.record.links import Glance, compare_url, describe, runs_url, sweep_glance
from sweeper.record.store import TrackingUnavailable, check_readable
from sweeper.record.sweeps import SweepNotFound, read_sweep

log = logging.getLogger(__name__)


class UiError(SweeperError):
    """The UI could not be started (a busy port, a store that cannot be read)."""


def mlflow_ui_command(tracking_uri: str, host: str, port: int) -> list[str]:
    return [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", tracking_uri,
            "--host", host, "--port", str(port), "--workers", "1"]  # one user: one worker


def wait_until_serving(url: str, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    """Poll MLflow's /health until it answers; fail early if the server died."""
    def answers() -> None:
        if process.poll() is not None:
            raise UiError(f"mlflow ui exited with status {process.returncode} "
                          "(is the port already in use?)")
        with urllib.request.urlopen(url + "health", timeout=2) as response:
            if response.status != 200:
                raise OSError(f"/health answered {response.status}")

    try:
        Retrying(retry=retry_if_exception_type(OSError), wait=wait_fixed(0.5),
                 stop=stop_after_delay(timeout_s), reraise=True)(answers)
    except OSError:
        raise UiError(f"mlflow ui did not answer at {url} within {timeout_s:.0f} s") from None


def is_loopback(host: str) -> bool:
    """Whether `host` is reachable from this machine only (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to any interface
        return False


def exposure_warning(host: str, port: int) -> str | None:
    """What to tell the user before serving on a non-loopback address, else None."""
    if is_loopback(host):
        return None
    return (f"sweeper: WARNING: the MLflow UI on {host}:{port} has no authentication and is "
            "reachable from the network: anyone who can connect can read and change every "
            "run, param and artifact of this store. Serve on 127.0.0.1 (the default) and "
            "tunnel (ssh -L) unless this network is trusted.")


def serve(tracking_uri: str, name: str | None, host: str, port: int,
          out: TextIO = sys.stdout, timeout_s: float = 120.0, err: TextIO | None = None,
          browser: bool = True) -> int:
    """Start the UI, print the sweep's links, open one, and serve until interrupted."""
    try:
        client = check_readable(tracking_uri)
    except TrackingUnavailable as exc:
        raise UiError(str(exc)) from None
    glance = None
    if name is not None:
        try:
            sweep = read_sweep(tracking_uri, name, client)
        except SweepNotFound as exc:
            raise UiError(str(exc)) from None
        glance = sweep_glance(sweep)
    if tracking_uri.startswith(("http://", "https://")):
        # `mlflow ui` serves a database, not a server: a tracking server is its own UI.
        base = tracking_uri.rstrip("/") + "/"
        url = describe(glance, base) if glance else base
        print(f"MLflow tracking server {tracking_uri} serves the UI itself: {url}", file=out,
              flush=True)
        return 0
    warning = exposure_warning(host, port)
    if warning:
        print(warning, file=err or sys.stderr, flush=True)
    # In a session of its own: a terminal's Ctrl-C reaches this process only, which stops
    # the server and every process it started, at once and quietly (the server's own
    # children print tracebacks when interrupted mid-import).
    process = subprocess.Popen(mlflow_ui_command(tracking_uri, host, port),
                               env=_server_environment(), start_new_session=True)
    # A terminated `sweeper ui` must take its server down with it, not orphan it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        wait_until_serving(f"http://{host}:{port}/", process, timeout_s)
        announce(tracking_uri, f"http://{host}:{port}/", glance, out, browser)
        return process.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        stop_server(process)


def _server_environment() -> dict[str, str]:
    """MLflow's UI server without its job runner and job workers (seven processes, about
    250 MB each, for GenAI jobs a sweep's UI never runs), unless the user asks for them."""
    return {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ}


def stop_server(process: subprocess.Popen[bytes], patience_s: float = 0.5) -> None:
    """Stop the server's whole process group: SIGTERM, then SIGKILL after `patience_s`
    (uvicorn's graceful shutdown takes about 5 s, and a UI over a database has nothing
    to save: its writes are transactions). A second Ctrl-C or SIGTERM while it stops is
    ignored, so that it ends quietly."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=patience_s)
            return
        except subprocess.TimeoutExpired:
            continue


def announce(tracking_uri: str, base: str, glance: Glance | None, out: TextIO,
             browser: bool) -> None:
    """Print where to look (the sweep's links, else the store's home) and open the
    comparison, or the runs list while there are no trials, in a browser."""
    if glance is None:
        print(f"MLflow UI for {tracking_uri}: {base}", file=out)
        first = base
    else:
        print(f"MLflow UI for {tracking_uri}, {describe(glance, base)}", file=out)
        first = compare_url(base, glance) if glance.compared else runs_url(base, glance)
    print("(Ctrl-C to stop)", file=out, flush=True)
    if browser:
        open_in_browser(first)


def open_in_browser(url: str) -> bool:
    """Open `url` where there is a graphical browser; never fail, never take over the
    terminal with a text browser (webbrowser's fallback on a headless machine)."""
    if not os.environ.get("BROWSER"):  # $BROWSER: the user's own choice, always honoured
        if sys.platform not in ("darwin", "win32") and not (
                os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            return False
        try:
            if type(webbrowser.get()) is webbrowser.GenericBrowser:  # lynx, w3m, ...
                return False
        except webbrowser.Error:
            return False
    try:
        return webbrowser.open(url, new=2)
    except Exception as exc:  # a broken browser must not take the server down
        log.warning("could not open a browser: %s", exc)
        return False
