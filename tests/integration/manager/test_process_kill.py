"""The manager in process mode (`--envoy-deployer=process`) as a real process against the real
API server: `kill -9` of the manager and its restart fail no request through a LoadBalancer, and
the restarted manager adopts the tenant's running Envoy (same pid) rather than starting another,
and programs it again over xDS."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import urllib.request
from pathlib import Path

import pytest

from kubelb.envoy import supervisor
from kubelb.kube import resources
from kubelb.localcluster import processes
from kubelb.util import naming
from tests.integration.manager.helpers import (
    addresses,
    echo_server,
    eventually,
    exchange,
    free_port,
    get,
    load_balancer,
    ready,
)
from tests.support import cluster
from tests.support.processes import pid_alive

pytestmark = pytest.mark.integration

POOL_ADDRESS = "127.0.0.43"
NODE_ADDRESS = "127.0.0.23"
# Requests of the steady loop, at most: the restart completes well within them.
MAX_REQUESTS = 20_000


class RequestLoop:
    """New connections one after the other through the LoadBalancer, counted."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.ok = 0
        self.failures: list[bytes | None] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        while not self._stop.is_set() and self.ok + len(self.failures) < MAX_REQUESTS:
            answer = await exchange(self.host, self.port, b"ping")
            if answer == b"node:ping":
                self.ok += 1
            else:
                self.failures.append(answer)
            await asyncio.sleep(0)

    async def passes(self, count: int) -> None:
        target = self.ok + count

        async def enough() -> bool:
            return self.ok >= target

        await eventually(enough, what=f"{count} more requests (failed so far: {self.failures})")


class Manager:
    """`kubelb --mode=manager --envoy-deployer=process`, restartable on the same sockets and
    state folder (the Envoys' bootstrap names the xDS port: it must not move)."""

    def __init__(self, management: cluster.Cluster, namespace: str, workdir: Path) -> None:
        self.state_dir = workdir / "state"
        self.log = workdir / "manager.log"
        self.probe_port = free_port()
        self.argv = [
            sys.executable, "-m", "kubelb", "--mode=manager",
            f"--kubeconfig={management.kubeconfig}", f"--namespace={namespace}",
            "--envoy-deployer=process", f"--address-pool={POOL_ADDRESS}",
            f"--listen-address=127.0.0.1:{free_port()}",
            f"--health-probe-bind-address=127.0.0.1:{self.probe_port}",
            f"--metrics-addr=127.0.0.1:{free_port()}",
            f"--state-dir={self.state_dir}", "--enable-leader-election=false",
            "--envoy-drain-seconds=1", "--log-level=info",
        ]  # fmt: skip
        self.process: processes.Process | None = None

    async def start(self) -> None:
        self.process = processes.Process("manager", self.argv, self.log)

        async def serving() -> bool:
            assert self.process is not None
            self.process.check_running()
            return await asyncio.to_thread(_ok, f"http://127.0.0.1:{self.probe_port}/readyz")

        await eventually(serving, what="the manager's /readyz")

    def kill_9(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)  # the manager alone, not its process group
        self.process._popen.wait()
        assert self.process.returncode == -signal.SIGKILL

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            await self.process.stop(grace=30.0)

    def logs(self) -> str:
        return self.log.read_text(errors="replace")

    def envoy(self, namespace: str) -> tuple[int, list[int]]:
        """The tenant's Envoy as recorded: (its shim's pid, the shim's children: Envoy)."""
        record = supervisor._read_record(self.state_dir / naming.dns1035(namespace) / "envoy.json")
        assert record is not None
        pid = int(record["pid"])
        return pid, _children(pid)


async def test_kill_9_of_the_manager_fails_no_request_and_the_envoy_is_adopted(
    kube, tenants, management: cluster.Cluster, management_namespace: str, tmp_path: Path
) -> None:
    ns = await tenants()
    node_port, lb_port = free_port(NODE_ADDRESS), free_port(POOL_ADDRESS)
    await kube.create(resources.ADDRESSES, addresses(NODE_ADDRESS), namespace=ns)
    await kube.create(resources.LOAD_BALANCERS,
                      load_balancer("web", ports=[("http", lb_port, node_port)]),
                      namespace=ns)  # fmt: skip
    manager = Manager(management, management_namespace, tmp_path)
    loop = RequestLoop(POOL_ADDRESS, lb_port)
    try:
        async with echo_server(NODE_ADDRESS, node_port, b"node:"):
            await manager.start()

            async def served() -> bool:
                condition = ready(await get(kube, resources.LOAD_BALANCERS, ns, "web"))
                answer = await exchange(POOL_ADDRESS, lb_port, b"ping")
                return bool(condition and condition["status"] == "True") and answer is not None

            await eventually(served, what="LoadBalancer web Ready and serving")
            shim, envoy = manager.envoy(ns)
            assert envoy

            loop.start()
            await loop.passes(20)
            manager.kill_9()
            await loop.passes(50)  # the orphaned Envoy serves on alone
            assert pid_alive(shim)

            await manager.start()
            adopted = f"Envoy for node {ns!r} adopted (pid {shim},"
            await eventually(lambda: _async(adopted in manager.logs()),
                             what="the restarted manager to adopt the Envoy")  # fmt: skip
            assert manager.envoy(ns) == (shim, envoy)  # not restarted
            # The adopted Envoy takes configuration from the new manager: a new port serves.
            second_port = free_port(POOL_ADDRESS)
            ports = [("http", lb_port, node_port), ("extra", second_port, node_port)]
            await kube.patch(resources.LOAD_BALANCERS, "web",
                             {"spec": load_balancer("web", ports=ports)["spec"]},
                             namespace=ns)  # fmt: skip
            await eventually(lambda: exchange(POOL_ADDRESS, second_port, b"x"),
                             what="the new port through the adopted Envoy")  # fmt: skip
            await loop.passes(50)
            await loop.stop()
            assert loop.failures == [], f"{len(loop.failures)} of {loop.ok + len(loop.failures)}"
            assert manager.envoy(ns) == (shim, envoy)
            assert manager.logs().count(f"Envoy for node {ns!r} started") == 1
    finally:
        await loop.stop()
        await manager.stop()
        supervisor.reap(manager.state_dir)


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


async def _async(value: bool) -> bool:
    return value
