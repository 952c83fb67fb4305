"""The private local Ray instance (`sweeper run` without --address) listens on
loopback only: every TCP port its processes open (GCS, raylet, object manager,
dashboard and runtime-env agents, metrics export, workers) is bound to 127.0.0.1
or ::ffff:127.0.0.1. Without sweeper.driver.ray_instance._loopback_node, Ray 2.60 binds most of them
on all interfaces (docs/reliability.md, "Ports of the local Ray instance")."""

import ipaddress
import os
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,  # starts Ray (~10 s)
    pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux's /proc"),
]


def _descendants(root: int) -> dict[int, str]:
    """pid -> command name of `root` and every process below it."""
    parents: dict[int, int] = {}
    names: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            names[int(entry.name)] = stat[stat.index("(") + 1 : stat.rindex(")")]
            parents[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    found, todo = {}, [root]
    while todo:
        pid = todo.pop()
        found[pid] = names.get(pid, "?")
        todo += [child for child, parent in parents.items() if parent == pid]
    return found


def _listening_sockets() -> dict[str, ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """socket inode -> local address of every listening TCP socket (/proc/net/tcp{,6})."""
    sockets = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A":  # TCP_LISTEN
                continue
            raw = bytes.fromhex(fields[1].split(":")[0])
            # The kernel prints each 32-bit word in host (little-endian) order.
            packed = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            sockets[fields[9]] = ipaddress.ip_address(packed)
    return sockets


def _is_loopback(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def test_the_local_ray_instance_listens_on_loopback_only(local_ray: None) -> None:
    import ray

    @ray.remote
    def touch() -> int:  # starts a worker process, which opens its own port
        return os.getpid()

    ray.get([touch.remote() for _ in range(2)])
    assert ray.util.get_node_ip_address() == "127.0.0.1"
    sockets = _listening_sockets()
    listening: list[tuple[str, str]] = []
    for pid, name in _descendants(os.getpid()).items():
        try:
            fds = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
        except OSError:
            continue
        listening += [(name, str(sockets[fd[8:-1]])) for fd in fds
                      if fd.startswith("socket:[") and fd[8:-1] in sockets]
    names = {name for name, _ in listening}
    assert {"gcs_server", "raylet"} <= names, listening  # it did see Ray's own servers
    exposed = [entry for entry in listening
               if not _is_loopback(ipaddress.ip_address(entry[1]))]
    assert not exposed, f"listening beyond loopback: {exposed}"
