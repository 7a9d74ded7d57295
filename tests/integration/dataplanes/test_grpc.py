"""gRPC through both data planes to HTTP2 clusters (real grpcio server and client): unary with
trailing metadata, server streaming, an error status, routing on the method path, response
header edits in the initial metadata."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import grpc
import pytest

from kubelb.ir import proxy, tls
from tests.integration.dataplane import irs, l7
from tests.integration.dataplane.conftest import no_leaks as guard
from tests.integration.dataplanes.conftest import Plane
from tests.support import tlscerts

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


async def test_grpc_over_tls(plane: Plane, grpc_servers) -> None:
    """gRPC clients need HTTP/2 by ALPN: a listener whose every cluster speaks HTTP/2 offers it
    (the Python proxy offers it nowhere else, docs/dataplane-differences.md)."""
    ca = tlscerts.make_ca()
    cert = ca.issue("grpc.test")
    config = irs.l7(
        [("grpc.test", [l7.route("echo", path="/demo.Echo", backends=irs.to("g0"))])],
        {"g0": grpc_servers[:1]},
        upstream_protocol=proxy.UpstreamProtocol.HTTP2,
    )
    listener = dataclasses.replace(
        config.listeners[0],
        tls=proxy.ListenerTLS(certificates=(
            proxy.ServerCertificate(server_names=("grpc.test",), secret="grpc"),
        )),
    )  # fmt: skip
    secret = tls.TLSSecret(name="grpc", certificate_chain=cert.cert_pem, private_key=cert.key_pem)
    await plane.apply(dataclasses.replace(config, listeners=(listener,), secrets=(secret,)))
    host, port = irs.address(config)
    credentials = grpc.ssl_channel_credentials(root_certificates=ca.cert_pem.encode())
    async with grpc.aio.secure_channel(
        f"{host}:{port}", credentials, options=[("grpc.ssl_target_name_override", "grpc.test")]
    ) as channel:
        call = channel.unary_unary("/demo.Echo/Unary")(b"over tls", timeout=10)
        assert await call == b"g0:over tls"
