"""TCP listeners on both data planes: active health checks taking an endpoint out and back,
upstream PROXY protocol v2 parsed by the backend, and source-IP persistence over TCP and HTTP."""

from __future__ import annotations

import asyncio
import collections
import contextlib

import pytest

from kubelb.ir import proxy
from tests.integration.dataplane import backends, irs, scenarios
from tests.integration.dataplanes.conftest import Plane, until

pytestmark = pytest.mark.integration

# Quick checks so a test sees an endpoint go out and back within seconds on both data planes.
FAST_CHECK = proxy.HealthCheck(
    timeout_seconds=0.5,
    interval_seconds=0.2,
    unhealthy_threshold=2,
    healthy_threshold=1,
    no_traffic_interval_seconds=0.2,
)


async def greeting_or_failure(addr: scenarios.Address) -> str:
    """The answering backend's name, or "" when the proxy closed or reset the connection."""
    try:
        async with asyncio.timeout(10):
            return await scenarios.tcp_greeting(addr)
    except (ConnectionError, TimeoutError):
        return ""


async def test_health_checked_endpoint_goes_down_and_comes_back(plane: Plane) -> None:
    a = await backends.TCPBackend("a").start()
    b = await backends.TCPBackend("b").start()
    config = irs.l4(proxy.Protocol.TCP, [a, b], health_check=FAST_CHECK)
    addr = irs.address(config)
    try:
        await plane.apply(config)

        async def both_answer() -> bool:
            return {await greeting_or_failure(addr) for _ in range(4)} == {"a", "b"}

        await until(both_answer, what="both endpoints serve")
        port = b.port
        await b.stop()

        async def only_a() -> bool:
            return {await greeting_or_failure(addr) for _ in range(6)} == {"a"}

        # Connections opened while the check has not yet noticed may fail; after that, none do.
        await until(only_a, what="traffic avoids the stopped endpoint")
        seen = collections.Counter([await greeting_or_failure(addr) for _ in range(12)])
        assert seen == {"a": 12}, seen

        b = await backends.TCPBackend("b", port=port).start()
        await until(both_answer, what="the endpoint is back in rotation")
        seen = collections.Counter([await greeting_or_failure(addr) for _ in range(12)])
        assert set(seen) == {"a", "b"}, seen
    finally:
        await a.stop()
        await b.stop()


async def test_proxy_protocol_v2_carries_the_client_address(plane: Plane) -> None:
    server = await backends.TCPBackend("pp", parse_proxy=True).start()
    config = irs.l4(proxy.Protocol.TCP, [server], proxy_protocol=proxy.ProxyProtocol.V2)
    try:
        await plane.apply(config)
        addr = irs.address(config)
        assert await scenarios.tcp_greeting(addr, local_ip="127.0.0.7") == server.name
        # Envoy's readiness probes (connects without data) also reach the backend with a header,
        # so look for ours rather than at a position.
        ours = [h for h in server.proxy_headers if h.source and h.source[0] == "127.0.0.7"]
        assert len(ours) == 1, server.proxy_headers
        assert ours[0].command == "PROXY"
        assert ours[0].destination == addr
        await scenarios.tcp_echo_half_close(irs.address(config), payload_size=1 << 20)
    finally:
        await server.stop()


async def test_source_ip_persistence_over_tcp(plane: Plane) -> None:
    servers = [await backends.TCPBackend(f"t{i}").start() for i in range(3)]
    config = irs.l4(proxy.Protocol.TCP, servers, source_ip_persistence=True)
    try:
        await plane.apply(config)
        await scenarios.tcp_persistence(irs.address(config), servers)
    finally:
        for s in servers:
            await s.stop()


async def test_source_ip_persistence_over_http(plane: Plane) -> None:
    """Every request of a client IP goes to one endpoint, over new and kept-alive connections."""
    servers = [await backends.HTTPBackend(f"h{i}").start() for i in range(3)]
    config = irs.http([("sticky", servers, (), "/")], source_ip_persistence=True)
    addr = irs.address(config)
    try:
        await plane.apply(config)
        chosen: dict[str, str] = {}
        for i in range(2, 22):
            ip = f"127.0.0.{i}"
            names = set()
            for _ in range(2):
                reader, writer = await asyncio.open_connection(*addr, local_addr=(ip, 0))
                try:
                    for _ in range(2):
                        status, headers, _ = await scenarios.http_request(
                            addr, scenarios.get("/"), reader_writer=(reader, writer)
                        )
                        assert status == 200
                        names.add(headers["x-backend"])
                finally:
                    writer.close()
                    with contextlib.suppress(ConnectionError):
                        await writer.wait_closed()
            assert len(names) == 1, f"{ip} moved between endpoints: {names}"
            chosen[ip] = names.pop()
        assert len(set(chosen.values())) > 1, f"all clients on one endpoint: {chosen}"
    finally:
        for s in servers:
            await s.stop()
