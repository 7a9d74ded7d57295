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
