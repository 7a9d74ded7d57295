"""HTTP listeners on both data planes: keep-alive and pooling, host and path routing, chunked
bodies both ways, WebSocket, X-Forwarded-For, header limits, upstream failure codes, and live
route changes under traffic without a failed request."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import pytest

from kubelb.ir import proxy
from tests.integration.dataplane import backends, irs, scenarios
from tests.integration.dataplanes import traffic
from tests.integration.dataplanes.conftest import Plane, expected, until

pytestmark = pytest.mark.integration

LIMITS = proxy.HTTPOptions(max_request_headers_kb=16, max_request_headers_count=50)


@pytest.fixture
async def web() -> AsyncIterator[list[backends.HTTPBackend]]:
    servers = [await backends.HTTPBackend(f"h{i}").start() for i in range(3)]
    yield servers
    for s in servers:
        await s.stop()


async def test_keepalive_and_pooled_upstream_connections(plane: Plane, web) -> None:
    config = irs.http([("web", web[:1], (), "/")])
    await plane.apply(config)
    addr = irs.address(config)
    await scenarios.http_keepalive_pooling(addr, web[0])
    await scenarios.http_keepalive_pooling_reuse(addr, web[0])


async def test_host_and_path_routing(plane: Plane, web) -> None:
    config = irs.http([
        ("api", web[:1], ("api.example.test",), "/v1"),
        ("star", web[1:2], ("*.example.test",), "/"),
        ("rest", web[2:], (), "/"),
    ])  # fmt: skip
    await plane.apply(config)
    addr = irs.address(config)
    cases = [
        ("api.example.test", "/v1/items", "h0"),
        ("API.example.test:8080", "/v1", "h0"),
        ("www.example.test", "/v1", "h1"),
        ("deep.www.example.test", "/", "h1"),
        ("example.test", "/", "h2"),
        ("other.test", "/v1", "h2"),
        # The host selects one virtual host: api's, whose fallback is the hostname-less route,
        # never the `*.example.test` one.
        ("api.example.test", "/other", "h2"),
        # A path prefix matches whole segments: `/v1` is not a prefix of `/v10`.
        ("api.example.test", "/v10", "h2"),
    ]
    for host, path, backend in cases:
        status, headers, _ = await scenarios.http_request(addr, scenarios.get(path, host))
        assert (status, headers.get("x-backend")) == (200, backend), (host, path)


async def test_chunked_request_and_response_bodies(plane: Plane, web) -> None:
    config = irs.http([("web", web[:1], (), "/")])
    await plane.apply(config)
    addr = irs.address(config)
    await scenarios.http_chunked_roundtrip(addr, size=3 << 20)
    status, headers, body = await scenarios.http_request(addr, scenarios.get("/chunks/40"))
    assert status == 200
    assert headers.get("transfer-encoding") == "chunked"
    assert body == b"".join(f"chunk-{i};".encode() for i in range(40))


async def test_websocket_upgrade_is_tunnelled(plane: Plane, web) -> None:
    config = irs.http([("web", web[:1], (), "/")])
    await plane.apply(config)
    await scenarios.http_websocket(irs.address(config), web[0])


async def test_x_forwarded_for_names_the_client(plane: Plane, web) -> None:
    config = irs.http([("web", web[:1], (), "/")])
    await plane.apply(config)
    addr = irs.address(config)

    async def seen_xff(extra: str = "", client: str = "127.0.0.9") -> list[str]:
        reader, writer = await asyncio.open_connection(*addr, local_addr=(client, 0))
        try:
            _, headers, _ = await scenarios.http_request(
                addr, scenarios.get("/xff", extra=extra), reader_writer=(reader, writer)
            )
        finally:
            writer.close()
        # Envoy joins with "," and we with ", " (documented); the list is what counts.
        return [part.strip() for part in headers["x-seen-xff"].split(",")]

    assert await seen_xff() == ["127.0.0.9"]
    assert await seen_xff("x-forwarded-for: 192.0.2.1\r\n") == ["192.0.2.1", "127.0.0.9"]
    # A client at exactly 127.0.0.1: Envoy names the host's own address instead (documented).
    if plane.kind == "python":
        assert await seen_xff(client="127.0.0.1") == ["127.0.0.1"]


async def test_header_limits_answer_431(plane: Plane, web) -> None:
    config = irs.http([("web", web[:1], (), "/")], options=LIMITS)
    await plane.apply(config)
    addr = irs.address(config)
    within = "x-fine: " + "a" * 8_000 + "\r\n" + "".join(f"x-h{i}: v\r\n" for i in range(30))
    assert (await scenarios.http_request(addr, scenarios.get("/", extra=within)))[0] == 200
    too_big = "x-big: " + "a" * 20_000 + "\r\n"
    assert (await scenarios.http_request(addr, scenarios.get("/", extra=too_big)))[0] == 431
    too_many = "".join(f"x-h{i}: v\r\n" for i in range(60))
    assert (await scenarios.http_request(addr, scenarios.get("/", extra=too_many)))[0] == 431
    # The limits refuse one request, never the listener.
    assert (await scenarios.http_request(addr, scenarios.get("/")))[0] == 200


async def test_header_limits_bound_upstream_responses(plane: Plane, web) -> None:
    """Config headerLimits on the upstream side, as upstream KubeLB sets Envoy's cluster
    protocol options: a response head over maxResponseHeadersKb, or with more headers than
    maxRequestHeadersCount (Envoy's one count for both directions), never reaches the client."""
    limits = dataclasses.replace(LIMITS, max_response_headers_kb=16)
    config = irs.http([("web", web[:1], (), "/")], options=limits)
    await plane.apply(config)
    addr = irs.address(config)
    for path, allowed in (("/bigheader/8000", True), ("/bigheader/20000", False),
                          ("/manyheaders/30", True), ("/manyheaders/60", False)):  # fmt: skip
        status = (await scenarios.http_request(addr, scenarios.get(path)))[0]
        assert (status == 200) is allowed, (path, status)
        if not allowed:
            assert status in (502, 503), (path, status)
    assert (await scenarios.http_request(addr, scenarios.get("/")))[0] == 200


async def test_upstream_failure_codes(plane: Plane, web) -> None:
    refused = backends.free_port()
    with backends.full_backlog_port() as hole:
        config = irs.http(
            [
                ("web", web[:1], (), "/"),
                ("down", [_Port(refused)], (), "/refused"),
                ("hole", [_Port(hole)], (), "/hole"),
            ],
            options=proxy.HTTPOptions(request_timeout_seconds=2.0),
            connect_timeout_seconds=0.3,
        )
        await plane.apply(config)
        addr = irs.address(config)

        async def status_of(path: str, host: str = "x") -> int:
            return (await scenarios.http_request(addr, scenarios.get(path, host)))[0]

        assert await status_of("/ok") == 200
        assert await status_of("/refused") == expected(plane, "connect_refused")
        assert await status_of("/reset") == expected(plane, "upstream_reset")
        assert await status_of("/hole") == expected(plane, "connect_timeout")
        assert await status_of("/slow/5") == 504


async def test_no_route_is_404_and_no_healthy_endpoint_is_503(plane: Plane, web) -> None:
    gone = await backends.HTTPBackend("gone").start()
    await gone.stop()
    check = proxy.HealthCheck(timeout_seconds=0.5, interval_seconds=0.2, unhealthy_threshold=1,
                              healthy_threshold=1, no_traffic_interval_seconds=0.2)  # fmt: skip
    config = irs.http(
        [("web", web[:1], ("web.test",), "/"), ("gone", [gone], ("gone.test",), "/")],
        health_check=check,
    )
    await plane.apply(config)
    addr = irs.address(config)
    assert (await scenarios.http_request(addr, scenarios.get("/", "web.test")))[0] == 200
    assert (await scenarios.http_request(addr, scenarios.get("/", "elsewhere.test")))[0] == 404

    async def unavailable() -> bool:
        status = (await scenarios.http_request(addr, scenarios.get("/", "gone.test")))[0]
        return status == 503

    await until(unavailable, what="503 once the only endpoint is known to be down")


async def test_live_route_change_fails_no_request(plane: Plane, web) -> None:
    """`/` moves from cluster a to b while a stays (it still serves `/a`)."""
    before = irs.http([("a", web[:1], (), "/")])
    moved = irs.http(
        [("a", web[:1], (), "/a"), ("b", web[1:2], (), "/"), ("c", web[2:], (), "/c")],
        port=before.listeners[0].port,
    )
    await _move_under_traffic(plane, before, moved)


async def test_live_route_change_removing_the_old_cluster_fails_no_request(
    plane: Plane, web
) -> None:
    before = irs.http([("a", web[:1], (), "/")])
    moved = irs.http(
        [("b", web[1:2], (), "/"), ("c", web[2:], (), "/c")], port=before.listeners[0].port
    )
    await _move_under_traffic(plane, before, moved)


async def _move_under_traffic(
    plane: Plane, before: proxy.ProxyConfig, moved: proxy.ProxyConfig
) -> None:
    addr = irs.address(before)
    await plane.apply(before)
    async with traffic.Loop(addr, clients=4) as loop:
        await until(lambda: loop.all_answered_by("h0"), what="every client reaches a")
        await plane.apply(moved)
        # Both switch open connections at their next request (Envoy: the route table by RDS).
        await until(lambda: loop.all_answered_by("h1"), what="every client moves to b")
        after = loop.answers()
        await until(lambda: loop.more_answers(after, 40), what="more traffic after the move")
    assert loop.failures == [], loop.failures[:5]
    assert loop.seen_since(after) == {"h1"}, "nothing reaches the old route's cluster any more"
    status, headers, _ = await scenarios.http_request(addr, scenarios.get("/c/x"))
    assert (status, headers["x-backend"]) == (200, "h2")


class _Port:
    def __init__(self, port: int) -> None:
        self.port = port
