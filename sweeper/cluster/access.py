"""Reaching an existing Ray cluster: is anything listening at the address, and
does this process send the cluster's token. Imports no Ray, so `sweeper submit`
and the driver share it."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

from sweeper.errors import SweeperError


class ClusterUnavailable(SweeperError):
    """The Ray cluster cannot be reached, refuses this driver, or cannot ever fit a trial."""


def probe_address(address: str, timeout_s: float = 5.0) -> None:
    """A TCP connection to HOST:PORT (or a job server's http://HOST:PORT) first: Ray
    itself retries a dead address for minutes."""
    try:
        if "://" in address:
            url = urlsplit(address)
            host, port = url.hostname or "", url.port or (443 if url.scheme == "https" else 80)
        else:
            host, _, text = address.rpartition(":")
            host, port = host.strip("[]"), int(text)
    except ValueError:
        host, port = "", 0
    if not host or not 0 < port < 65536:
        raise ClusterUnavailable(f"--address {address}: expected HOST:PORT of the cluster's "
                                 "head (its GCS, port 6379 by default)")
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as exc:
        raise ClusterUnavailable(
            f"--address {address}: nothing answers there ({exc}); start the cluster's head "
            "(`ray start --head`), or check the address") from None


def use_token_if_available() -> None:
    """Ray turns token authentication on for `ray start --head` when a token exists on
    the machine (~/.ray/auth_token, which any local Ray writes), but a driver only sends
    one when RAY_AUTH_MODE=token. Sending it to a cluster without authentication is
    harmless, so send it whenever there is one and the user has not chosen.

    Ray reads the variable when it is first imported: call this before that, at the
    command's entry (sweeper.cli), never from code that may run after `import ray`."""
    if "RAY_AUTH_MODE" in os.environ:
        return
    token_path = os.environ.get("RAY_AUTH_TOKEN_PATH") or str(Path.home() / ".ray" / "auth_token")
    if os.environ.get("RAY_AUTH_TOKEN") or Path(token_path).is_file():
        os.environ["RAY_AUTH_MODE"] = "token"


def auth_hint() -> str:
    mode = os.environ.get("RAY_AUTH_MODE", "unset")
    return (f" (RAY_AUTH_MODE is {mode}: a cluster with token authentication needs its token "
            "in ~/.ray/auth_token or $RAY_AUTH_TOKEN, and RAY_AUTH_MODE=token)")
