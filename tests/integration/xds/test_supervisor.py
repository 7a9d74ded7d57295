"""The Envoy supervisor with real Envoy processes: probes, drain, death with the parent."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from kubelb.envoy import supervisor
from kubelb.observe import metrics
from kubelb.xds import snapshot
from tests.integration.xds import backends
from tests.integration.xds.conftest import NODE, Xds, envoy_spec

pytestmark = pytest.mark.integration


def alive(pid: int) -> bool:
    """Running and not a zombie (a reparented child may wait a while to be reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


async def test_probe_listeners_and_drain_on_remove(
    xds: Xds, envoys: supervisor.EnvoySupervisor
) -> None:
    ready_port, health_port = backends.free_port(), backends.free_port()
    # Without a snapshot Envoy waits out its initial fetch timeouts (and is rightly not ready):
    # the server never answers a node it knows nothing about with an empty config.
    xds.cache.set_snapshot(NODE, snapshot.Snapshot())
    await envoys.ensure(
        NODE, envoy_spec(xds.port, readiness_port=ready_port, health_port=health_port)
    )
    async with asyncio.timeout(30):
        await envoys.wait_ready(NODE)
    assert envoys.ready(NODE)
    assert await envoys.request("127.0.0.1", ready_port, "GET", "/ready") == (
        200,
        "LIVE\n",
    )
    status, _ = await envoys.request("127.0.0.1", health_port, "GET", "/healthz")
    assert status == 200
    status, _ = await envoys.request("127.0.0.1", ready_port, "GET", "/stats")
    assert status == 404, "the readiness listener exposes nothing but /ready"
    proxies = metrics.REGISTRY.get_sample_value(
        "kubelb_envoy_control_plane_envoy_proxies", {"namespace": NODE, "topology": "shared"}
    )
    assert proxies == 1

    pid = envoys.pid(NODE)
    assert pid is not None
    removing = asyncio.create_task(envoys.remove(NODE))

    async def failing_health() -> bool:
        status, _ = await envoys.request("127.0.0.1", health_port, "GET", "/healthz")
        return status == 503

    await backends.eventually(failing_health, what="/healthz failing while draining")
    await removing
    assert not alive(pid)
    assert not envoys.ready(NODE)
    assert envoys.pid(NODE) is None


async def test_same_spec_is_a_no_op_and_a_new_spec_replaces(
    xds: Xds, envoys: supervisor.EnvoySupervisor
) -> None:
    xds.cache.set_snapshot(NODE, snapshot.Snapshot())
    spec = envoy_spec(xds.port)
    await envoys.ensure(NODE, spec)
    async with asyncio.timeout(30):
        await envoys.wait_ready(NODE)
    pid = envoys.pid(NODE)
    await envoys.ensure(NODE, spec)
    assert envoys.pid(NODE) == pid
    await envoys.ensure(NODE, envoy_spec(xds.port, log_level="warning"))
    async with asyncio.timeout(30):
        await envoys.wait_ready(NODE)
    assert envoys.pid(NODE) not in (None, pid)
    assert pid is not None
    assert not alive(pid)


async def test_admin_requests_share_a_session_closed_with_the_supervisor(
    xds: Xds, envoys: supervisor.EnvoySupervisor
) -> None:
    xds.cache.set_snapshot(NODE, snapshot.Snapshot())
    with pytest.raises(LookupError):
        await envoys.admin(NODE, "GET", "/ready")
    await envoys.ensure(NODE, envoy_spec(xds.port))
    async with asyncio.timeout(30):
        await envoys.wait_ready(NODE)
    assert await envoys.admin(NODE, "GET", "/ready") == (200, "LIVE\n")
    status, body = await envoys.admin(NODE, "GET", "/server_info")
    assert status == 200
    assert '"state": "LIVE"' in body
    session = envoys._admin_session
    assert session is not None
    open_while_serving = not session.closed

    await envoys.close()
    assert open_while_serving
    assert session.closed
    with pytest.raises(LookupError):
        await envoys.admin(NODE, "GET", "/ready")
    # A closed supervisor starts anew, with a new session.
    await envoys.ensure(NODE, envoy_spec(xds.port))
    async with asyncio.timeout(30):
        await envoys.wait_ready(NODE)
    assert await envoys.admin(NODE, "GET", "/ready") == (200, "LIVE\n")


CHILD = """
import asyncio, sys
from pathlib import Path
from kubelb.envoy import deployer, supervisor

async def main():
    sup = supervisor.EnvoySupervisor(Path(sys.argv[1]))
    spec = deployer.EnvoySpec(xds_port=int(sys.argv[2]), readiness_port=None, health_port=None,
                              concurrency=1)
    await sup.ensure("orphan", spec)
    while sup.pid("orphan") is None:
        await asyncio.sleep(0.05)
    print(sup.pid("orphan"), flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_envoy_dies_with_its_parent(xds: Xds, tmp_path: Path) -> None:
    parent = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        str(tmp_path),
        str(xds.port),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert parent.stdout is not None
        async with asyncio.timeout(60):
            line = await parent.stdout.readline()
        envoy_pid = int(line)
        assert alive(envoy_pid)
    finally:
        parent.kill()  # SIGKILL: no Python cleanup runs, only the kernel's death signal
        await parent.wait()

    async def gone() -> bool:
        return not alive(envoy_pid)

    await backends.eventually(gone, what=f"Envoy {envoy_pid} to exit after its parent was killed")
    if alive(envoy_pid):  # pragma: no cover - only reached if the assertion above is removed
        os.kill(envoy_pid, 9)
