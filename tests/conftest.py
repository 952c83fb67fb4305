"""The test session is an entry point: it prepares the process to drive sweeps, as
`sweeper run` does (sweeper.cluster.driver_process)."""

from sweeper.cluster import driver_process

driver_process.prepare()
