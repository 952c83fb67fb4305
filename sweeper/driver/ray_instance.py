"""Which Ray the sweep runs on: an existing cluster (--address, $RAY_ADDRESS), or a
private local instance listening on loopback only; and whether any of its nodes can
hold a trial."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ray

from sweeper.cluster import driver_process
from sweeper.cluster.access import ClusterUnavailable, auth_hint, probe_address
from sweeper.cluster.shipping import UPLOAD_EXCLUDES, project_modules
from sweeper.spec.schema import SweepSpec

log = logging.getLogger(__name__)


def init_ray(address: str | None) -> bool:
    """Connect to `address` (or $RAY_ADDRESS, Ray's convention), else start a private
    local instance listening on 127.0.0.1 only. False when Ray was already running."""
    if ray.is_initialized():
        return False
    driver_process.check_prepared()
    # Every worker reads the trial's relative paths from the driver's folder, as the driver does.
    chdir = "RAY_CHDIR_TO_TRIAL_DIR"
    runtime_env: dict[str, Any] = {"env_vars": {chdir: driver_process.TUNE_ENVIRONMENT[chdir]}}
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        connect_cluster(address, runtime_env)
    else:
        # "local": always a new private instance. A bare ray.init() would join whatever
        # cluster /tmp/ray/ray_current_cluster names, and hang if that one is gone.
        with _loopback_node():
            ray.init(address="local", include_dashboard=False, log_to_driver=False,
                     logging_level=logging.WARNING, runtime_env=runtime_env,
                     _node_ip_address="127.0.0.1")
    return True


def shutdown_ray() -> None:
    ray.shutdown()


def ray_temp_root() -> Path:
    """The temp folder of the Ray node this driver runs on: where every Ray session on
    this machine (a killed driver's among them) kept its files."""
    node: Any = ray._private.worker._global_node  # set by ray.init (Tune reads it too)
    return Path(node.get_temp_dir_path())


@contextlib.contextmanager
def _loopback_node() -> Iterator[None]:
    """Keep the private instance's node address 127.0.0.1, so that its servers (GCS,
    raylet, workers, agents) listen on loopback only (docs/reliability.md, "Ports").

    Ray turns a `_node_ip_address` of 127.0.0.1 into the machine's outward address
    (services.resolve_ip_for_localhost) unless multi-node clusters are switched off, as
    Ray does itself on macOS and Windows; its servers then listen on that address and
    on all interfaces. Switched off for the start only: `ray start` and joining a
    cluster (--address) are unaffected. A Ray version without the switch starts the
    instance with Ray's default binding, most ports on all interfaces, and says so
    (measured with `ss -ltnp`: docs/reliability.md, "Ports")."""
    from ray._private import ray_constants

    if not hasattr(ray_constants, "ENABLE_RAY_CLUSTER"):
        log.warning("this Ray version has no ENABLE_RAY_CLUSTER switch: the local Ray "
                    "instance may listen on all interfaces")
        yield
        return
    before = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = before


def connect_cluster(address: str, runtime_env: dict[str, Any]) -> None:
    """Join an existing cluster, or fail in seconds with one line saying why."""
    if address.startswith("ray://"):
        # Under Ray Client the Tuner runs on the head node, away from this driver's
        # MLflow writer: trials would silently go untracked.
        raise ClusterUnavailable(
            f"--address {address}: Ray Client (ray://) is not supported; use `sweeper submit "
            "SPEC --address http://HEAD:8265`, or run on a cluster node with --address HEAD:6379")
    if address != "auto":
        probe_address(address)
    # An existing cluster: ship the project's code to its nodes, unless this driver
    # is a Ray job (`sweeper submit`), whose runtime env already carries it.
    if "RAY_JOB_CONFIG_JSON_ENV_VAR" not in os.environ:
        runtime_env |= {"py_modules": project_modules(), "excludes": UPLOAD_EXCLUDES}
    try:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING,
                 runtime_env=runtime_env)
    except (ConnectionError, ray.exceptions.AuthenticationError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ClusterUnavailable(f"cannot join the Ray cluster at {address}: {first}"
                                 + auth_hint()) from None


def check_resources(spec: SweepSpec) -> None:
    """Refuse trials that no node of the cluster can ever hold: Tune would wait forever."""
    need = {"CPU": float(spec.resources.cpu), "GPU": float(spec.resources.gpu)}
    nodes = [node.get("Resources", {}) for node in ray.nodes() if node.get("Alive")]
    if any(all(res.get(k, 0.0) >= v for k, v in need.items() if v > 0) for res in nodes):
        return
    largest = ", ".join(f"{res.get('CPU', 0):g} CPUs and {res.get('GPU', 0):g} GPUs"
                        for res in sorted(nodes, key=lambda r: (r.get("GPU", 0), r.get("CPU", 0)),
                                          reverse=True)[:3]) or "no nodes"
    raise ClusterUnavailable(
        f"resources: each trial asks for {need['CPU']:g} CPUs and {need['GPU']:g} GPUs, but no "
        f"node of this Ray cluster has that much (largest: {largest}); lower resources.cpu / "
        "resources.gpu (e.g. --set resources.cpu=1)")


