"""Envoy's admin interface on a Unix socket (the manager's process deployer): the supervisor
reaches it for readiness and drain, Envoy listens on no TCP port for it, and a restarted
Envoy binds the socket again."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import stat
from pathlib import Path

import pytest

from kubelb.envoy import supervisor
from kubelb.xds import snapshot
from tests.integration.xds import backends
from tests.integration.xds.conftest import NODE, Xds, envoy_spec

pytestmark = pytest.mark.integration


def _process_tree(pid: int) -> list[int]:
    """`pid` and its descendants: a detached Envoy runs under a shim whose pid is recorded."""
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        with contextlib.suppress(OSError):  # a thread or process that just ended
            for task in Path(f"/proc/{current}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
    return tree


def listening_tcp_ports(pid: int) -> set[int]:
    """TCP ports process `pid` or its descendants listen on (their socket inodes matched
    against /proc/net/tcp*)."""
    inodes = set()
    for member in _process_tree(pid):
        fds: list[Path] = []
        with contextlib.suppress(OSError):
            fds = list(Path(f"/proc/{member}/fd").iterdir())
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


async def test_admin_on_a_unix_socket(xds: Xds, envoys: supervisor.EnvoySupervisor) -> None:
    xds.cache.set_snapshot(NODE, snapshot.Snapshot())
    await envoys.ensure(NODE, envoy_spec(xds.port, admin_pipe=True))
    async with asyncio.timeout(30):
        await envoys.wait_ready(NODE)
    path = envoys.admin_path(NODE)
    assert path is not None
    assert envoys.admin_port(NODE) is None
    assert stat.S_ISSOCK(os.stat(path).st_mode)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert await envoys.admin(NODE, "GET", "/ready") == (200, "LIVE\n")
    _, info = await envoys.admin(NODE, "GET", "/server_info")
    assert '"state": "LIVE"' in info
    pid = envoys.pid(NODE)
    assert pid is not None
    assert listening_tcp_ports(pid) == set(), "no admin (or any) TCP listener"

    # Killed: the supervisor starts it again on the same socket path, stale file and all.
    os.kill(pid, signal.SIGKILL)

    async def restarted() -> bool:
        new = envoys.pid(NODE)
        return new is not None and new != pid and envoys.ready(NODE)

    await backends.eventually(restarted, what="Envoy restarted and ready again")
    assert envoys.admin_path(NODE) == path
    assert await envoys.admin(NODE, "GET", "/ready") == (200, "LIVE\n")

    # Drain goes through the socket too: /healthcheck/fail is seen before Envoy stops.
    removing = asyncio.create_task(envoys.remove(NODE))

    async def draining() -> bool:
        try:
            # The node is no longer listed while it drains: ask its socket directly.
            _, body = await envoys.request("", 0, "GET", "/server_info", unix=path)
        except (*supervisor.ADMIN_ERRORS, LookupError):
            return False
        return '"state": "DRAINING"' in body

    await backends.eventually(draining, what="Envoy draining (POST /healthcheck/fail)")
    await removing
    assert envoys.pid(NODE) is None
