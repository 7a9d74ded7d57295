"""gRPC through both data planes to HTTP2 clusters (real grpcio server and client): unary with
trailing metadata, server streaming, an error status, routing on the method path, response
header edits in the initial metadata."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from tests.integration.dataplane import l7
from tests.integration.dataplane.conftest import no_leaks as guard
from tests.integration.dataplanes.conftest import Plane

pytestmark = pytest.mark.integration


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


async def test_grpc_end_to_end(plane: Plane, grpc_servers) -> None:
    await l7.grpc_calls(plane.apply, grpc_servers)
