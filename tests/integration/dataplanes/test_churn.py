"""Endpoint churn on both data planes: moving a LoadBalancer's endpoint from one live backend to
another, again and again under a steady stream of new connections, fails none of them (make
before break: the new endpoint serves before the old one stops taking connections)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from kubelb.ir import proxy
from tests.integration.dataplane import backends, irs, scenarios
from tests.integration.dataplanes.conftest import Plane, until

pytestmark = pytest.mark.integration

MOVES = 100


class NewConnections:
    """A few clients that each open a new connection per request and read which backend greets
    it; a refused, reset or silent connection is a failure."""

    def __init__(self, addr: scenarios.Address, *, clients: int = 4) -> None:
        self.addr = addr
        self.answers: list[str] = []
        self.failures: list[str] = []
        self._clients = clients
        self._stop = False
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> NewConnections:
        self._tasks = [
            asyncio.create_task(self._client(), name=f"churn-client-{i}")
            for i in range(self._clients)
        ]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop = True
        await asyncio.gather(*self._tasks)

    async def _client(self) -> None:
        while not self._stop:
            try:
                async with asyncio.timeout(10):
                    name = await scenarios.tcp_greeting(self.addr)
            except (OSError, TimeoutError) as err:
                self.failures.append(repr(err))
                continue
            if name:
                self.answers.append(name)
            else:
                self.failures.append("closed before the greeting")

    def answered_since(self, mark: int, name: str) -> bool:
        return name in self.answers[mark:]


async def test_moving_an_endpoint_between_live_backends_fails_no_connection(plane: Plane) -> None:
    a = await backends.TCPBackend("a").start()
    b = await backends.TCPBackend("b").start()
    # Upstream KubeLB's health check (5 s interval, healthy after 2 passes): a new endpoint is
    # checked long after it starts taking connections, as in production.
    base = irs.l4(proxy.Protocol.TCP, [a], health_check=proxy.HealthCheck())
    addr = irs.address(base)
    listener = base.listeners[0]

    def pointing_at(server: backends.TCPBackend) -> proxy.ProxyConfig:
        cluster = base.clusters[0]
        moved = proxy.Cluster(
            name=cluster.name,
            protocol=cluster.protocol,
            endpoints=irs.endpoints([server]),
            health_check=cluster.health_check,
        )
        return proxy.ProxyConfig(node_id=base.node_id, listeners=(listener,), clusters=(moved,))

    try:
        await plane.apply(base)
        assert await scenarios.tcp_greeting(addr) == "a"
        async with NewConnections(addr) as load:
            for move in range(MOVES):
                target = b if move % 2 == 0 else a
                mark = len(load.answers)
                await plane.apply(pointing_at(target))

                async def moved(target: backends.TCPBackend = target, mark: int = mark) -> bool:
                    return load.answered_since(mark, target.name)

                await until(moved, what=f"move {move}: {target.name} answers")
        failed = len(load.failures)
        print(f"{plane.kind}: {failed} of {failed + len(load.answers)} new connections failed "
              f"across {MOVES} endpoint moves")  # fmt: skip
        assert load.failures == [], (len(load.failures), load.failures[:5])
    finally:
        for server in (a, b):
            with contextlib.suppress(Exception):
                await server.stop()
