"""What travels to a Ray cluster with a sweep: the project's own packages.

Shipping them (Ray's `py_modules`) makes every node import the driver's copy of
the code, whether or not the node has the project installed; a node still needs
the third-party dependencies (torch, Ray, ...), as the docker/ image has them.
"""

from __future__ import annotations

from pathlib import Path

import reports
import sweeper
import trainers

# Never uploaded: environments, results, local stores, caches, checkpoints.
UPLOAD_EXCLUDES = [".venv", ".git", "results", "mlruns", "mlflow.db", "data", "test-artifacts",
                   "__pycache__", "*.pt", "*.egg-info"]


def project_modules() -> list[str]:
    """The folders of the project's packages, as Ray's runtime_env py_modules takes them."""
    return [str(Path(package.__file__ or "").parent) for package in (sweeper, trainers, reports)]
