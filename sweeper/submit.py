"""`sweeper submit`: run `sweeper run` as a Ray job on a cluster's job server."""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path
from typing import TextIO

from sweeper.shipping import UPLOAD_EXCLUDES, project_modules

TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


class SubmitError(Exception):
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


def submit(address: str, spec: str, run_args: list[str], wait: bool,
           out: TextIO = sys.stdout, poll_s: float = 2.0) -> int:
    """Submit; print the job id; with `wait`, stream the logs and return 0 iff it succeeded."""
    from ray.job_submission import JobSubmissionClient

    if not Path(spec).is_file():
        raise SubmitError(f"spec file not found: {spec}")
    command = entrypoint(relative_spec(spec, Path.cwd()), run_args)
    try:
        client = JobSubmissionClient(address)
        # The working directory carries the spec and relative data paths; py_modules the
        # project's code, so the job and its trials run this copy on every node.
        job_id = client.submit_job(entrypoint=command, runtime_env={
            "working_dir": str(Path.cwd()), "py_modules": project_modules(),
            "excludes": UPLOAD_EXCLUDES})
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise SubmitError(f"cannot submit to the Ray job server at {address}: {exc}") from exc
    print(f"submitted job {job_id} to {address}: {command}", file=out, flush=True)
    if not wait:
        print(f"follow it with: sweeper status --job {job_id} --address {address}", file=out)
        return 0
    shown = 0
    while True:
        status = str(client.get_job_status(job_id).value)
        logs = client.get_job_logs(job_id)
        print(logs[shown:], end="", file=out, flush=True)
        shown = len(logs)
        if status in TERMINAL:
            break
        time.sleep(poll_s)
    print(f"job {job_id}: {status}", file=out)
    return 0 if status == "SUCCEEDED" else 1


def job_status(address: str, job_id: str) -> str:
    from ray.job_submission import JobSubmissionClient

    try:
        info = JobSubmissionClient(address).get_job_info(job_id)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise SubmitError(f"cannot read job {job_id} from {address}: {exc}") from exc
    return f"job {job_id}: {info.status.value}" + (f" ({info.message})" if info.message else "")
