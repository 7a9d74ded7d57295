"""HTTP/1.1 reverse proxying through the built-in data plane against real HTTP backends."""

from __future__ import annotations

import asyncio

import pytest

from kubelb.ir import proxy
from tests.integration.dataplane import backends, irs, scenarios
from tests.integration.dataplane.conftest import eventually

pytestmark = pytest.mark.integration

LIMITS = proxy.HTTPOptions(max_request_headers_kb=60, max_request_headers_count=100)


@pytest.fixture
async def web():
    servers = [await backends.HTTPBackend(f"h{i}").start() for i in range(3)]
    yield servers
    for s in servers:
        await s.stop()


async def test_host_and_path_routing(start_dataplane, web):
    config = irs.http([
        ("api", web[:1], ("api.example.test",), "/v1"),
        ("star", web[1:2], ("*.example.test",), "/"),
        ("rest", web[2:], (), "/"),
    ])  # fmt: skip
    await start_dataplane(config)
    addr = irs.address(config)
    cases = [
        ("api.example.test", "/v1/items", "h0"),
        # The host selects one virtual host (as Envoy does): api's, with the hostname-less
        # routes as fallback, never `*.example.test`.
        ("api.example.test", "/v10", "h2"),
        ("api.example.test", "/other", "h2"),
        ("www.example.test", "/v1", "h1"),
        ("other.test", "/", "h2"),
        ("API.example.test:8080", "/v1", "h0"),
    ]
    for host, path, backend in cases:
        status, headers, _ = await scenarios.http_request(addr, scenarios.get(path, host))
        assert (status, headers["x-backend"]) == (200, backend), (host, path)


async def test_no_route_is_404(start_dataplane, web):
    config = irs.http([("api", web[:1], ("api.example.test",), "/")])
    await start_dataplane(config)
    status, _, _ = await scenarios.http_request(irs.address(config), scenarios.get("/", "x.test"))
    assert status == 404


async def test_keepalive_pools_upstream_connections(start_dataplane, web):
    config = irs.http([("all", web[:1], (), "/")])
    dp = await start_dataplane(config)
    await scenarios.http_keepalive_pooling(irs.address(config), web[0])
    # A second client connection reuses the pooled upstream connection.
    await scenarios.http_keepalive_pooling_reuse(irs.address(config), web[0])
    assert dp.status()["pooled_upstream_connections"] == 1


async def test_chunked_bodies_stream_both_ways(start_dataplane, web):
    config = irs.http([("all", web[:1], (), "/")])
    await start_dataplane(config)
    await scenarios.http_chunked_roundtrip(irs.address(config))
    status, _, body = await scenarios.http_request(irs.address(config), scenarios.get("/chunks/5"))
    assert status == 200
    assert body == b"".join(f"chunk-{i};".encode() for i in range(5))


async def test_websocket_upgrade_is_tunnelled(start_dataplane, web):
    config = irs.http([("all", web[:1], (), "/")])
    await start_dataplane(config)
    await scenarios.http_websocket(irs.address(config), web[0])


async def test_websocket_refused_when_disabled(start_dataplane, web):
    config = irs.http([("all", web[:1], (), "/")], options=proxy.HTTPOptions(websocket=False))
    await start_dataplane(config)
    raw = scenarios.get("/ws", extra="connection: upgrade\r\nupgrade: websocket\r\n")
    status, _, _ = await scenarios.http_request(irs.address(config), raw)
    assert status == 403


async def test_x_forwarded_for_is_appended(start_dataplane, web):
    config = irs.http([("all", web[:1], (), "/")])
    await start_dataplane(config)
    await scenarios.http_xff(irs.address(config))


async def test_header_limits_answer_431(start_dataplane, web):
    config = irs.http([("all", web[:1], (), "/")], options=LIMITS)
    await start_dataplane(config)
    await scenarios.http_limits(irs.address(config))


async def test_body_limit_answers_413(start_dataplane, web):
    config = irs.http([("all", web[:1], (), "/")])
    await start_dataplane(config, max_request_body_bytes=1000)
    addr = irs.address(config)
    big = b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 5000\r\n\r\n" + b"a" * 5000
    assert (await scenarios.http_request(addr, big))[0] == 413
    chunked = b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n"
    chunked += b"".join(b"200\r\n" + b"c" * 512 + b"\r\n" for _ in range(4)) + b"0\r\n\r\n"
    assert (await scenarios.http_request(addr, chunked))[0] == 413
    small = b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\n0123456789"
    assert (await scenarios.http_request(addr, small))[:3:2] == (200, b"0123456789")


async def test_unreachable_upstream_is_502(start_dataplane):
    config = irs.http([("dead", [type("D", (), {"port": backends.free_port()})()], (), "/")])
    await start_dataplane(config)
    assert (await scenarios.http_request(irs.address(config), scenarios.get("/")))[0] == 502


async def test_upstream_reset_is_502(start_dataplane, web):
    config = irs.http([("all", web[:1], (), "/")])
    await start_dataplane(config)
    assert (await scenarios.http_request(irs.address(config), scenarios.get("/reset")))[0] == 502


async def test_request_timeout_is_504(start_dataplane, web):
    options = proxy.HTTPOptions(request_timeout_seconds=0.3)
    config = irs.http([("all", web[:1], (), "/")], options=options)
    await start_dataplane(config)
    assert (await scenarios.http_request(irs.address(config), scenarios.get("/slow/30")))[0] == 504


async def test_connect_timeout_is_504(start_dataplane):
    with backends.full_backlog_port() as port:
        hole = type("H", (), {"port": port})()
        config = irs.http([("hole", [hole], (), "/")], connect_timeout_seconds=0.3)
        await start_dataplane(config)
        assert (await scenarios.http_request(irs.address(config), scenarios.get("/")))[0] == 504


async def test_no_healthy_endpoint_is_503(start_dataplane):
    hc = proxy.HealthCheck(timeout_seconds=0.2, interval_seconds=0.1, unhealthy_threshold=1)
    dead = type("D", (), {"port": backends.free_port()})()
    config = irs.http([("dead", [dead], (), "/")], health_check=hc)
    dp = await start_dataplane(config)
    await eventually(
        lambda: dp.status()["clusters"]["dead"]["endpoints"][0]["health"] == "unhealthy"
    )
    assert (await scenarios.http_request(irs.address(config), scenarios.get("/")))[0] == 503


async def test_head_and_pipelined_requests(start_dataplane, web):
    config = irs.http([("all", web[:1], (), "/")])
    await start_dataplane(config)
    reader, writer = await asyncio.open_connection(*irs.address(config))
    writer.write(
        b"HEAD /h HTTP/1.1\r\nhost: x\r\n\r\n" + scenarios.get("/p1") + scenarios.get("/p2")
    )
    status, headers, _ = await scenarios.read_response(reader, head=True)
    assert (status, headers["content-length"]) == (200, "5")
    for path in ("/p1", "/p2"):
        _, _, body = await scenarios.read_response(reader)
        assert body == f"h0 {path}".encode()
    writer.close()


async def test_garbage_is_400_and_closed(start_dataplane, web):
    config = irs.http([("all", web[:1], (), "/")])
    await start_dataplane(config)
    reader, writer = await asyncio.open_connection(*irs.address(config))
    writer.write(b"\x16\x03\x01\x02\x00garbage\r\n\r\n")
    status, _, _ = await scenarios.read_response(reader)
    assert status == 400
    assert await reader.read() == b""
    writer.close()


async def test_slowloris_gets_408(start_dataplane, web):
    config = irs.http([("all", web[:1], (), "/")])
    await start_dataplane(config, request_headers_timeout_seconds=0.5)
    reader, writer = await asyncio.open_connection(*irs.address(config))
    writer.write(b"GET / HTTP/1.1\r\n")

    async def trickle() -> None:
        for i in range(100):
            writer.write(f"x-slow-{i}: 1\r\n".encode())
            await asyncio.sleep(0.05)

    dripping = asyncio.create_task(trickle())
    try:
        status, _, _ = await scenarios.read_response(reader)
        assert status == 408
    finally:
        dripping.cancel()
        await asyncio.gather(dripping, return_exceptions=True)
        writer.close()


async def test_client_disconnecting_mid_body_frees_everything(start_dataplane, web):
    config = irs.http([("all", web[:1], (), "/")])
    dp = await start_dataplane(config)
    _reader, writer = await asyncio.open_connection(*irs.address(config))
    writer.write(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 100000\r\n\r\n" + b"a" * 500)
    await writer.drain()
    await eventually(lambda: len(web[0].requests) == 0 and web[0].connections == 1)
    writer.transport.abort()
    await eventually(lambda: dp.status()["connections"] == 0, what="client connection gone")
    await eventually(lambda: not web[0]._handlers.writers, what="upstream connection closed")
    assert dp.status()["pooled_upstream_connections"] == 0
