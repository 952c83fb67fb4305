"""`sweeper submit`: run `sweeper run` as a Ray job on a cluster's job server."""

from __future__ import annotations

import asyncio
import shlex
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

from sweeper.cluster.access import auth_hint
from sweeper.cluster.shipping import Upload, plan_upload, stage
from sweeper.errors import SweeperError
from trainers.config import DatasetConfig

TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


class SubmitError(SweeperError):
    """The job could not be submitted (bad spec location, unreachable job server)."""


def entrypoint(spec: Path, run_args: list[str]) -> str:
    """The job's command, run in the uploaded copy of the working directory."""
    return shlex.join(["python", "-m", "sweeper.cli", "run", spec.as_posix(), *run_args])


def relative_spec(spec: str, workdir: Path) -> Path:
    path = Path(spec).resolve()
    try:
        return path.relative_to(workdir.resolve())
    except ValueError:
        raise SubmitError(f"the spec {spec} must be inside the working directory {workdir}, "
                          "which is what gets uploaded with the job") from None


def check_job_server(address: str, timeout_s: float = 5.0) -> None:
    """The job server answers HTTP, or SubmitError: Ray's client waits without a timeout
    on a server that accepts connections but never answers."""
    url = address if "://" in address else f"http://{address}"
    if not url.startswith(("http://", "https://")):
        return  # ray://, auto: Ray's own client resolves those
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/api/version", timeout=timeout_s):
            pass
    except urllib.error.HTTPError:
        return  # it answered (an error status is Ray's client's to explain)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SubmitError(f"the Ray job server at {address} is unavailable: {reason}; check "
                          "--address (the head node's dashboard, http://HEAD:8265)") from None


def plan(spec: str, datasets: Iterable[DatasetConfig], workdir: Path | None = None) -> Upload:
    """What `submit` would upload from `workdir` (the current folder): see shipping."""
    workdir = workdir or Path.cwd()
    if not Path(spec).is_file():
        raise SubmitError(f"spec file not found: {spec}")
    relative_spec(spec, workdir)
    upload = plan_upload(Path(spec), workdir, datasets)
    if upload.refused:
        more = (f" (and {len(upload.refused) - 1} more like it)"
                if len(upload.refused) > 1 else "")
        raise SubmitError(f"not uploaded: {_cut(upload.refused[0], 400)}{more}")
    return upload


def submit(address: str, spec: str, run_args: list[str], wait: bool,
           datasets: Iterable[DatasetConfig] = (), out: TextIO = sys.stdout) -> int:
    """Submit; print the job id; with `wait`, stream the logs and return 0 iff it succeeded."""
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient

    upload = plan(spec, datasets)
    for note in upload.notes:
        print(f"sweeper: note: {note}", file=sys.stderr)
    command = entrypoint(relative_spec(spec, Path.cwd()), run_args)
    check_job_server(address)
    try:
        client = JobSubmissionClient(address)
        # An allow-list, staged: the job's working directory holds the spec and the data
        # it names, py_modules the project's code (so the job and its trials run this copy
        # on every node), and nothing else of this folder (no dotfiles, keys or stores).
        with tempfile.TemporaryDirectory(prefix="sweeper-submit-") as staging:
            working_dir, modules = stage(upload, Path(staging))
            job_id = client.submit_job(entrypoint=command, runtime_env={
                "working_dir": working_dir, "py_modules": modules})
    except (ConnectionError, RuntimeError, ValueError, AuthenticationError) as exc:
        raise SubmitError(f"cannot submit to the Ray job server at {address}: "
                          f"{_first_line(exc)}" + auth_hint()) from None
    print(f"submitted job {job_id} to {address}: {command}", file=out, flush=True)
    if not wait:
        print(f"follow it with: sweeper status --job {job_id} --address {address}", file=out)
        return 0
    asyncio.run(_follow(client, job_id, out))
    status = str(client.get_job_status(job_id).value)
    while status not in TERMINAL:  # the log can end a moment before the job does
        time.sleep(0.5)
        status = str(client.get_job_status(job_id).value)
    print(f"job {job_id}: {status}", file=out)
    return 0 if status == "SUCCEEDED" else 1


async def _follow(client: Any, job_id: str, out: TextIO) -> None:
    """Print the job's log as the job server streams it, until the job ends."""
    async for lines in client.tail_job_logs(job_id):
        print(lines, end="", file=out, flush=True)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def job_status(address: str, job_id: str) -> str:
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient

    check_job_server(address)
    try:
        info = JobSubmissionClient(address).get_job_info(job_id)
    except (ConnectionError, RuntimeError, ValueError, AuthenticationError) as exc:
        raise SubmitError(f"cannot read job {job_id} from {address}: {_first_line(exc)}"
                          + auth_hint()) from None
    return f"job {job_id}: {info.status.value}" + (f" ({info.message})" if info.message else "")
