"""HTTP downstream protocol with a fake transport: the answers the proxy gives by itself."""

from __future__ import annotations

import pytest

from kubelb.dataplane import context, http
from kubelb.ir import proxy
from tests.unit.dataplane import fakes

CLUSTER = proxy.Cluster(
    name="c", protocol=proxy.Protocol.HTTP,
    endpoints=(proxy.Endpoint(address="127.0.0.1", port=9),),
)  # fmt: skip
TO_C = (proxy.WeightedCluster(cluster="c"),)


def listener(**http_options) -> proxy.Listener:
    return proxy.Listener(
        name="web", address="127.0.0.1", port=8080, protocol=proxy.Protocol.HTTP,
        virtual_hosts=proxy.group_by_hostname(
            [(("a.test",), proxy.HTTPRoute(name="r", backends=TO_C))]
        ),
        http=proxy.HTTPOptions(**http_options),
    )  # fmt: skip


async def answer(data: bytes, *, options=None, **http_options) -> bytes:
    ctx = fakes.listener_context(listener(**http_options), [CLUSTER], **(options or {}))
    down = http.HTTPDownstream(context.Handle(ctx))
    transport = fakes.FakeTransport()
    down.connection_made(transport)
    fakes.feed(down, data)
    assert transport.closed
    assert ctx.tracker.active == 0
    return bytes(transport.written)


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"\x00\x01garbage\r\n\r\n", b"400"),
        (b"GET / HTTP/1.1\r\nhost: other.test\r\n\r\n", b"404"),
        (b"CONNECT a.test:443 HTTP/1.1\r\nhost: a.test\r\n\r\n", b"403"),
        (b"GET / HTTP/1.1\r\nhost: a.test\r\n" + b"x: y\r\n" * 20 + b"\r\n", b"431"),
    ],
)
async def test_local_answers(request_bytes, status):
    raw = await answer(request_bytes, max_request_headers_count=10)
    assert raw.startswith(b"HTTP/1.1 " + status)


async def test_body_over_the_limit_is_413():
    raw = await answer(
        b"POST / HTTP/1.1\r\nhost: a.test\r\ncontent-length: 11\r\n\r\n",
        options={"max_request_body_bytes": 10},
    )
    assert raw.startswith(b"HTTP/1.1 413")


async def test_header_bytes_over_the_limit_are_431():
    raw = await answer(
        b"GET / HTTP/1.1\r\nhost: a.test\r\nx-big: " + b"a" * 2048 + b"\r\n\r\n",
        max_request_headers_kb=1,
    )
    assert raw.startswith(b"HTTP/1.1 431")


def routed(*routes: proxy.HTTPRoute) -> proxy.Listener:
    return proxy.Listener(
        name="web", address="127.0.0.1", port=8080, protocol=proxy.Protocol.HTTP,
        virtual_hosts=(proxy.VirtualHost(name="a", domains=("a.test",), routes=routes),),
    )  # fmt: skip


DOWN = proxy.Cluster(name="down", protocol=proxy.Protocol.HTTP)
STAMP = proxy.HeaderModifier(set=(("x-route", "r"),), add=(("x-added", "1"),))
ROUTES = (
    proxy.HTTPRoute(
        name="moved",
        match=proxy.RouteMatch(path=proxy.PathMatch(value="/old")),
        redirect=proxy.Redirect(
            scheme="https", path=proxy.PathRewrite(kind=proxy.PathRewriteKind.PREFIX, value="/new"),
            status_code=301,
        ),
        response_headers=STAMP,
    ),
    proxy.HTTPRoute(
        name="teapot", match=proxy.RouteMatch(path=proxy.PathMatch(value="/fixed")),
        direct_status=418,
    ),
    proxy.HTTPRoute(
        name="nowhere", match=proxy.RouteMatch(path=proxy.PathMatch(value="/down")),
        backends=(proxy.WeightedCluster(cluster="down"),), response_headers=STAMP,
    ),
)  # fmt: skip


def serve_routes() -> tuple[http.HTTPDownstream, fakes.FakeTransport, context.ListenerContext]:
    ctx = fakes.listener_context(routed(*ROUTES), [CLUSTER, DOWN])
    down = http.HTTPDownstream(context.Handle(ctx))
    transport = fakes.FakeTransport()
    down.connection_made(transport)
    return down, transport, ctx


async def test_a_redirect_is_answered_locally_and_the_connection_stays_open():
    down, transport, _ = serve_routes()
    fakes.feed(down, b"GET /old/x?q=1 HTTP/1.1\r\nhost: a.test:8080\r\n\r\n")
    assert bytes(transport.written) == (
        b"HTTP/1.1 301 Moved Permanently\r\nlocation: https://a.test/new/x?q=1\r\n"
        b"x-route: r\r\nx-added: 1\r\ncontent-length: 0\r\n\r\n"
    )
    assert not transport.closed
    transport.written.clear()
    fakes.feed(down, b"GET /fixed HTTP/1.1\r\nhost: a.test\r\nconnection: close\r\n\r\n")
    assert bytes(transport.written) == (
        b"HTTP/1.1 418 I'm a Teapot\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    )
    assert transport.closed


async def test_a_local_answer_waits_for_the_request_body_and_drops_it():
    down, transport, _ = serve_routes()
    fakes.feed(down, b"POST /fixed HTTP/1.1\r\nhost: a.test\r\ncontent-length: 6\r\n\r\nab")
    assert transport.written == b""
    fakes.feed(down, b"cdef")
    assert transport.written.startswith(b"HTTP/1.1 418 ")
    assert not transport.closed


async def test_pipelined_local_answers_come_in_order():
    down, transport, _ = serve_routes()
    fakes.feed(
        down,
        b"GET /fixed HTTP/1.1\r\nhost: a.test\r\n\r\n"
        b"GET /old HTTP/1.1\r\nhost: a.test\r\n\r\n"
        b"GET /fixed HTTP/1.1\r\nhost: a.test\r\n\r\n",
    )
    statuses = [line[9:12] for line in bytes(transport.written).split(b"\r\n")
                if line.startswith(b"HTTP/1.1")]  # fmt: skip
    assert statuses == [b"418", b"301", b"418"]


async def test_response_edits_apply_to_the_proxys_own_errors_on_the_route():
    down, transport, ctx = serve_routes()
    fakes.feed(down, b"GET /down HTTP/1.1\r\nhost: a.test\r\n\r\n")
    head = bytes(transport.written).split(b"\r\n\r\n")[0]
    assert head.startswith(b"HTTP/1.1 503 ")
    assert b"\r\nx-route: r\r\nx-added: 1" in head
    assert ctx.tracker.active == 0
