"""The test session is an entry point: it prepares the process to drive sweeps, as
`sweeper run` does (sweeper.cluster.driver_process)."""

import os

from sweeper.cluster import driver_process

driver_process.prepare()
# As sweeper.cli sets it for every command: MLflow's telemetry waits on a closed network.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
