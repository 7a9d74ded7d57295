"""gRPC (HTTP/2 with trailers) through the built-in data plane to HTTP2 clusters, with a real
grpcio server and client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from kubelb.ir import proxy
from tests.integration.dataplane import conftest, l7

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
async def no_leaks() -> AsyncIterator[None]:
    """conftest's guard, after one gRPC exchange: grpcio keeps a socket pair of its own once
    its asyncio engine has run, which is not ours to close."""
    server = await l7.GRPCBackend("warm-up").start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        await channel.unary_unary("/demo.Echo/Unary")(b"", timeout=10)
    await server.stop()
    async for _ in conftest.no_leaks.__wrapped__():  # type: ignore[attr-defined]
        yield


@pytest.fixture
async def grpc_servers() -> AsyncIterator[list[l7.GRPCBackend]]:
    servers = [await l7.GRPCBackend(f"g{i}").start() for i in range(2)]
    yield servers
    for s in servers:
        await s.stop()


async def test_grpc_end_to_end(start_dataplane, grpc_servers):
    async def apply(config: proxy.ProxyConfig) -> None:
        dp = await start_dataplane(config)
        assert dp.config_errors == []

    await l7.grpc_calls(apply, grpc_servers)
