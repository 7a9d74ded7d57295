"""TCP proxying through the built-in data plane against real backends on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import os
import typing

import pytest

from kubelb.ir import proxy
from tests.integration.dataplane import backends, irs, scenarios
from tests.integration.dataplane.conftest import eventually

pytestmark = pytest.mark.integration

TCP = proxy.Protocol.TCP


@pytest.fixture
async def tcp_backends():
    servers = [await backends.TCPBackend(f"b{i}").start() for i in range(3)]
    yield servers
    for s in servers:
        await s.stop()


async def test_round_robin_echo_and_half_close(start_dataplane, tcp_backends):
    config = irs.l4(TCP, tcp_backends)
    dp = await start_dataplane(config)
    await scenarios.tcp_round_robin(irs.address(config), tcp_backends)
    await scenarios.tcp_echo_half_close(irs.address(config))
    totals = [e["total"] for e in dp.status()["clusters"]["l4-c"]["endpoints"]]
    assert sum(totals) == 10


async def test_source_ip_persistence_is_stable_when_an_endpoint_is_added(
    start_dataplane, tcp_backends
):
    config = irs.l4(TCP, tcp_backends[:2], source_ip_persistence=True)
    dp = await start_dataplane(config)
    before = await scenarios.tcp_persistence(irs.address(config), tcp_backends[:2])
    await dp.apply(irs.l4(TCP, tcp_backends, port=config.listeners[0].port,
                          source_ip_persistence=True))  # fmt: skip
    after = await scenarios.tcp_persistence(irs.address(config), tcp_backends)
    moved = [ip for ip in before if before[ip] != after[ip]]
    # Consistent hashing: only clients now owned by the new backend move (about a third).
    assert all(after[ip] == "b2" for ip in moved), (before, after)
    assert len(moved) < len(before) * 2 // 3


async def test_proxy_protocol_v2_header_reaches_the_backend(start_dataplane):
    server = await backends.TCPBackend("pp", parse_proxy=True).start()
    try:
        config = irs.l4(TCP, [server], proxy_protocol=proxy.ProxyProtocol.V2)
        await start_dataplane(config)
        await scenarios.tcp_proxy_protocol(irs.address(config), server)
    finally:
        await server.stop()


async def test_unreachable_upstream_closes_the_client(start_dataplane):
    dead = backends.free_port()
    config = irs.l4(TCP, [type("Dead", (), {"port": dead})()])
    await start_dataplane(config)
    await scenarios.tcp_closed_without_data(irs.address(config))


async def test_connect_timeout_closes_the_client(start_dataplane):
    # A listener whose accept queue is full drops SYNs, so connecting hangs until the timeout.
    with backends.full_backlog_port() as port:
        config = irs.l4(TCP, [type("Hole", (), {"port": port})()], connect_timeout_seconds=0.3)
        await start_dataplane(config)
        await scenarios.tcp_closed_without_data(irs.address(config))


async def test_health_check_takes_an_endpoint_out_and_back(start_dataplane, tcp_backends):
    hc = proxy.HealthCheck(
        timeout_seconds=0.2, interval_seconds=0.1, no_traffic_interval_seconds=0.1,
        unhealthy_threshold=2, healthy_threshold=2,
    )  # fmt: skip
    config = irs.l4(TCP, tcp_backends[:2], health_check=hc)
    dp = await start_dataplane(config)
    addr = irs.address(config)

    def health() -> dict[str, str]:
        eps = dp.status()["clusters"]["l4-c"]["endpoints"]
        return {e["address"]: e["health"] for e in eps}

    down = tcp_backends[1]
    key = f"127.0.0.1:{down.port}"
    await eventually(lambda: set(health().values()) == {"healthy"}, what="both healthy")
    await down.stop()
    await eventually(lambda: health()[key] == "unhealthy", what="stopped backend unhealthy")
    assert {await scenarios.tcp_greeting(addr) for _ in range(6)} == {"b0"}
    await down.start()
    await eventually(lambda: health()[key] == "healthy", what="restarted backend healthy")
    assert {await scenarios.tcp_greeting(addr) for _ in range(6)} == {"b0", "b1"}


async def test_idle_timeout_closes_quiet_connections(start_dataplane, tcp_backends):
    config = irs.l4(TCP, tcp_backends[:1])
    await start_dataplane(config, tcp_idle_timeout_seconds=0.3)
    reader, writer = await asyncio.open_connection(*irs.address(config))
    assert await reader.readline() == b"b0\n"
    async with asyncio.timeout(10):
        assert await reader.read() == b""
    writer.close()


async def test_max_connections_refuses_with_a_log_line(start_dataplane, tcp_backends, caplog):
    config = irs.l4(TCP, tcp_backends[:1])
    dp = await start_dataplane(config, max_connections=2)
    addr = irs.address(config)
    held = [await asyncio.open_connection(*addr) for _ in range(2)]
    for r, _ in held:
        assert await r.readline() == b"b0\n"
    with caplog.at_level(logging.WARNING, logger="kubelb.dataplane.context"):
        await scenarios.tcp_closed_without_data(addr)
    assert "max_connections=2 reached" in caplog.text
    assert dp.status()["refused_connections"] == 1
    for _, w in held:
        w.close()


async def test_endpoint_change_keeps_open_connections(start_dataplane, tcp_backends):
    config = irs.l4(TCP, tcp_backends[:1])
    dp = await start_dataplane(config)
    addr = irs.address(config)
    reader, writer = await asyncio.open_connection(*addr)
    assert await reader.readline() == b"b0\n"
    await dp.apply(irs.l4(TCP, tcp_backends[1:], port=addr[1]))
    writer.write(b"still here")
    assert await reader.readexactly(10) == b"still here"
    assert {await scenarios.tcp_greeting(addr) for _ in range(4)} == {"b1", "b2"}
    writer.close()


async def test_removed_listener_drains_then_closes(start_dataplane, tcp_backends):
    config = irs.l4(TCP, tcp_backends[:1])
    other = irs.l4(TCP, tcp_backends[1:2], name="other")
    both = dataclasses.replace(
        config, listeners=config.listeners + other.listeners,
        clusters=config.clusters + other.clusters,
    )  # fmt: skip
    dp = await start_dataplane(both)
    reader, writer = await asyncio.open_connection(*irs.address(config))
    assert await reader.readline() == b"b0\n"
    await dp.apply(other)
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection(*irs.address(config))
    # The untouched listener keeps serving; the drained connection works until drain_seconds.
    assert await scenarios.tcp_greeting(irs.address(other)) == "b1"
    writer.write(b"x")
    assert await reader.readexactly(1) == b"x"
    async with asyncio.timeout(10):
        assert await reader.read() == b""
    writer.close()


async def test_upstream_reset_closes_the_client(start_dataplane, tcp_backends):
    config = irs.l4(TCP, tcp_backends[:1])
    await start_dataplane(config)
    reader, writer = await asyncio.open_connection(*irs.address(config))
    assert await reader.readline() == b"b0\n"
    await tcp_backends[0].stop()
    async with asyncio.timeout(10):
        with contextlib.suppress(ConnectionResetError):
            assert await reader.read() == b""
    writer.close()


async def test_hostname_endpoints_are_resolved(start_dataplane, tcp_backends):
    config = irs.l4(TCP, tcp_backends[:1])
    cluster = dataclasses.replace(
        config.clusters[0],
        endpoints=(proxy.Endpoint(address="localhost", port=tcp_backends[0].port),),
    )
    await start_dataplane(dataclasses.replace(config, clusters=(cluster,)))
    assert await scenarios.tcp_greeting(irs.address(config)) == "b0"


async def test_bulk_stream_with_backpressure_keeps_every_byte(start_dataplane, tcp_backends):
    """Both directions turn into bulk readers (large reads) that write views of one shared
    buffer. Random bytes show any chunk written from a buffer that was reused too early, and a
    client that stops reading for a while makes the proxy's writes back up (partial writes,
    paused reads) before it takes everything."""
    config = irs.l4(TCP, tcp_backends[:1])
    await start_dataplane(config)
    payload = os.urandom(24 << 20)
    reader, writer = await asyncio.open_connection(*irs.address(config))
    try:
        assert (await reader.readline()).strip() == b"b0"

        async def send() -> None:
            for offset in range(0, len(payload), 1 << 20):
                writer.write(payload[offset : offset + (1 << 20)])
                await writer.drain()
            writer.write_eof()

        sending = asyncio.create_task(send())
        transport = typing.cast(asyncio.Transport, writer.transport)
        # Not reading: the echo backs up through the proxy. The proxy stops reading from the
        # backend only while its writes to this client are backed up.
        await eventually(
            lambda: not transport.is_reading() and tcp_backends[0].echo_blocked(),
            what="the echo backed up from this client to the backend",
        )
        echoed = await reader.readexactly(len(payload))
        await sending
        assert hashlib.sha256(echoed).digest() == hashlib.sha256(payload).digest()
        assert await reader.read() == b"bye\n"
    finally:
        writer.close()
        await writer.wait_closed()
