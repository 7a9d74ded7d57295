"""gRPC through both data planes to HTTP2 clusters (real grpcio server and client): unary with
trailing metadata, server streaming, an error status, routing on the method path. The route's
exact path match and response header edits need Envoy's L7 translation (branch l7-envoy)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from tests.integration.dataplane import l7
from tests.integration.dataplane.conftest import no_leaks as guard
from tests.integration.dataplanes import test_l7
from tests.integration.dataplanes.conftest import Plane

pytestmark = pytest.mark.integration

# Both planes, the Envoy ones expected to fail until the L7 translation lands.
l7_plane = test_l7.l7_plane


@pytest.fixture(autouse=True)
async def no_leaks() -> AsyncIterator[None]:
    """The usual guard, after one gRPC exchange: grpcio keeps a socket pair of its own once
    its asyncio engine has run, which is not ours to close."""
    server = await l7.GRPCBackend("warm-up").start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        await channel.unary_unary("/demo.Echo/Unary")(b"", timeout=10)
    await server.stop()
    async for _ in guard.__wrapped__():  # type: ignore[attr-defined]
        yield


@pytest.fixture
async def grpc_servers() -> AsyncIterator[list[l7.GRPCBackend]]:
    servers = [await l7.GRPCBackend(f"g{i}").start() for i in range(2)]
    yield servers
    for s in servers:
        await s.stop()


async def test_grpc_end_to_end(l7_plane: Plane, grpc_servers) -> None:
    await l7.grpc_calls(l7_plane.apply, grpc_servers)
