"""The xDS server's listen address: `:PORT` is every interface (gRPC itself refuses an empty
host), and a failed bind is a `BindError` that says why."""

from __future__ import annotations

import socket

import pytest

from kubelb.observe import server as observe_server
from kubelb.xds import cache, server


@pytest.mark.parametrize(
    ("host", "port", "target"),
    [("", 8001, "[::]:8001"), ("0.0.0.0", 1, "0.0.0.0:1"), ("::1", 2, "[::1]:2"),
     ("127.0.0.1", 0, "127.0.0.1:0"), ("envoycp.kubelb.svc", 3, "envoycp.kubelb.svc:3")],
)  # fmt: skip
def test_grpc_target(host, port, target):
    assert server.grpc_target(host, port) == target


def accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=5):
            return True
    except OSError:
        return False


async def test_an_empty_host_listens_on_every_interface():
    srv = server.XdsServer(cache.SnapshotCache())
    port = await srv.start(":0")
    try:
        assert port > 0
        # 127.0.0.2 is on loopback but not 127.0.0.1: only a wildcard socket answers there.
        assert accepts("127.0.0.1", port)
        assert accepts("127.0.0.2", port)
    finally:
        await srv.stop(grace=None)


async def test_a_port_in_use_is_a_bind_error():
    # gRPC would share a port with another gRPC server (SO_REUSEPORT): a second kubelb on the
    # same port must fail instead of taking half of the Envoys' connections.
    first = server.XdsServer(cache.SnapshotCache())
    port = await first.start("127.0.0.1:0")
    try:
        for address in (f"127.0.0.1:{port}", f":{port}"):
            with pytest.raises(observe_server.BindError) as caught:
                await server.XdsServer(cache.SnapshotCache()).start(address)
            assert str(caught.value) == (
                f"xDS server cannot listen on {address}: Address already in use"
            )
    finally:
        await first.stop(grace=None)


async def test_an_address_not_on_this_host_is_a_bind_error():
    # 192.0.2.0/24 is reserved for documentation: never a local address.
    with pytest.raises(observe_server.BindError, match=r"192\.0\.2\.1:0: Cannot assign requested"):
        await server.XdsServer(cache.SnapshotCache()).start("192.0.2.1:0")
