"""The cross-data-plane suite: every test gets `plane`, which serves an IR `ProxyConfig` on one of
the two data planes, and runs once per data plane.

- `envoy`: our `XdsServer` and `SnapshotCache` programming a real Envoy that the
  `EnvoySupervisor` runs with the IR's node id; `apply` publishes the translated snapshot and
  returns once Envoy has ACKed it and every new TCP or HTTP listener accepts connections.
- `python`: `runtime.DataPlane.apply`, on uvloop as in production.

`apply(new_ir)` changes the config live in both. Where the data planes answer differently by
design, tests look the answer up in `EXPECTED` (documented in docs/dataplane-differences.md).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import uvloop

from kubelb.dataplane import runtime
from kubelb.envoy import supervisor
from kubelb.ir import proxy
from kubelb.util import backoff
from kubelb.xds import cache, server, snapshot, translate
from tests.integration.dataplane.conftest import (  # noqa: F401  (no_leaks: autouse guard)
    eventually,
    no_leaks,
)
from tests.integration.xds.conftest import envoy_spec

# "envoy-delta": Envoy on incremental xDS; it must behave exactly as "envoy".
KINDS = ("envoy", "envoy-delta", "python")

# Answers that differ by design, per data plane (docs/dataplane-differences.md).
EXPECTED: dict[str, dict[str, int]] = {
    "connect_refused": {"envoy": 503, "python": 502},
    "upstream_reset": {"envoy": 503, "python": 502},
    "connect_timeout": {"envoy": 503, "python": 504},
}


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Any]:
    """The Python data plane runs on uvloop in production; gRPC's asyncio server runs on it too."""
    return {"uvloop": uvloop.new_event_loop}


class Plane:
    """One data plane serving one IR at a time."""

    kind: str

    async def apply(self, config: proxy.ProxyConfig) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


class PythonPlane(Plane):
    kind = "python"

    def __init__(self) -> None:
        self.dataplane = runtime.DataPlane(drain_seconds=0.5)

    async def apply(self, config: proxy.ProxyConfig) -> None:
        await self.dataplane.apply(config)
        assert self.dataplane.config_errors == [], self.dataplane.config_errors

    async def close(self) -> None:
        await self.dataplane.close(0)


class EnvoyPlane(Plane):
    kind = "envoy"

    def __init__(self, state_dir: Path, *, delta: bool = False) -> None:
        self.delta = delta
        self.cache = cache.SnapshotCache()
        self.server = server.XdsServer(self.cache)
        self.envoys = supervisor.EnvoySupervisor(
            state_dir, restart_backoff=backoff.Backoff(initial=0.2, cap=2.0)
        )
        self._port = 0
        self._nodes: set[str] = set()

    async def start(self) -> None:
        self._port = await self.server.start("127.0.0.1:0")

    async def apply(self, config: proxy.ProxyConfig) -> None:
        node = config.node_id
        snap = snapshot.Snapshot.from_resources(translate.translate(config))
        self.cache.set_snapshot(node, snap)
        if node not in self._nodes:
            self._nodes.add(node)
            await self.envoys.ensure(node, envoy_spec(self._port, xds_delta=self.delta))
            async with asyncio.timeout(60):
                await self.envoys.wait_ready(node)

        def acked() -> bool:
            status = self.cache.status(node)
            return status.versions == snap.versions and status.in_sync()

        await eventually(acked, seconds=30, what=f"Envoy {node} ACKs the new snapshot")
        for li in config.listeners:
            if li.protocol is not proxy.Protocol.UDP:
                await eventually_accepts(li.address, li.port)

    async def close(self) -> None:
        await self.envoys.close()
        await self.server.stop(grace=1.0)


async def eventually_accepts(host: str, port: int, seconds: float = 30.0) -> None:
    """Until a TCP connect to (`host`, `port`) succeeds (a new Envoy listener warms first)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            if loop.time() > deadline:
                pytest.fail(f"nothing accepts on {host}:{port} after {seconds}s")
            await asyncio.sleep(0.05)
            continue
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
        return


@pytest.fixture(params=KINDS)
async def plane(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Plane]:
    serving: Plane
    if request.param in ("envoy", "envoy-delta"):
        envoy = EnvoyPlane(tmp_path / "envoy", delta=request.param == "envoy-delta")
        await envoy.start()
        serving = envoy
    else:
        serving = PythonPlane()
    try:
        yield serving
    finally:
        await serving.close()


async def until(
    check: Callable[[], Awaitable[bool]], *, seconds: float = 30.0, what: str = ""
) -> None:
    """Poll an async `check` until true; fail after a generous deadline (never a timing test)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not await check():
        if loop.time() > deadline:
            pytest.fail(f"condition not met within {seconds}s: {what or check}")
        await asyncio.sleep(0.05)


def expected(plane: Plane, case: str) -> int:
    return EXPECTED[case][plane.kind]
