"""The test session is an entry point: it prepares the process to drive sweeps, as
`sweeper run` does (sweeper.driver_process)."""

from sweeper import driver_process

driver_process.prepare()
