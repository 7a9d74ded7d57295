"""TCP protocol behaviour with fake transports: buffering, backpressure, half-close."""

from __future__ import annotations

import pytest

from kubelb.dataplane import context, flow_control, tcp
from kubelb.ir import proxy
from tests.unit.dataplane import fakes

CLUSTER = proxy.Cluster(
    name="c", protocol=proxy.Protocol.TCP,
    endpoints=(proxy.Endpoint(address="127.0.0.1", port=9),),
)  # fmt: skip
LISTENER = proxy.Listener(
    name="l", address="127.0.0.1", port=8080, protocol=proxy.Protocol.TCP, clusters=("c",)
)


@pytest.fixture
async def down():
    ctx = fakes.listener_context(LISTENER, [CLUSTER])
    d = tcp.TCPDownstream(ctx, context.Handle(ctx))
    d.transport = fakes.FakeTransport()
    return d


async def test_bytes_before_the_upstream_are_kept_and_reading_pauses(down):
    chunk = b"x" * 65536
    for _ in range(flow_control.WRITE_HIGH // len(chunk) + 1):
        fakes.feed(down, chunk)
    assert down.transport.paused
    up = fakes.FakeTransport()
    target = down.ctx.picker.pick()
    down._connected(up, target, CLUSTER)
    assert len(up.written) == (flow_control.WRITE_HIGH // len(chunk) + 1) * len(chunk)
    assert not down.transport.paused


async def test_proxy_protocol_header_goes_first(down):
    fakes.feed(down, b"hello")
    up = fakes.FakeTransport()
    cluster = proxy.Cluster(name="c", protocol=proxy.Protocol.TCP,
                            proxy_protocol=proxy.ProxyProtocol.V2)  # fmt: skip
    down._connected(up, down.ctx.picker.pick(), cluster)
    assert up.written.startswith(b"\r\n\r\n\x00\r\nQUIT\n")
    assert up.written.endswith(b"hello")


async def test_backpressure_both_ways(down):
    up = fakes.FakeTransport()
    down._connected(up, down.ctx.picker.pick(), CLUSTER)
    upstream = tcp.TCPUpstream(down)
    upstream.pause_writing()
    assert down.transport.paused
    upstream.resume_writing()
    assert not down.transport.paused
    down.pause_writing()
    assert up.paused
    down.resume_writing()
    assert not up.paused


async def test_bytes_are_written_through_as_received(down):
    up = fakes.FakeTransport()
    down._connected(up, down.ctx.picker.pick(), CLUSTER)
    fakes.feed(down, b"a")
    up.pending = 1  # the upstream cannot send at once: the bytes object stays valid as it is
    fakes.feed(down, b"b")
    tcp.TCPUpstream(down).data_received(b"back")
    assert up.written == b"ab"
    assert down.transport.written == b"back"


async def test_half_close_is_passed_both_ways(down):
    up = fakes.FakeTransport()
    down._connected(up, down.ctx.picker.pick(), CLUSTER)
    assert down.eof_received() is True
    assert up.eof
    assert not down.transport.closed
    tcp.TCPUpstream(down).eof_received()
    assert down.transport.eof
    assert down.transport.closed
    assert up.closed


async def test_a_large_read_turns_that_direction_into_a_bulk_reader(down):
    up = fakes.FakeTransport()
    down._connected(up, down.ctx.picker.pick(), CLUSTER)
    fakes.feed(down, b"x" * 100)
    assert not isinstance(down.transport.protocol, tcp.BulkReader)  # request/response sized
    fakes.feed(down, b"x" * tcp.BULK_READ)
    reader = down.transport.protocol
    assert isinstance(reader, tcp.BulkReader)

    view = reader.get_buffer(-1)
    view[:5] = b"hello"
    reader.buffer_updated(5)
    assert up.written.endswith(b"x" * 100 + b"hello")
    # Every other event still reaches the connection.
    reader.pause_writing()
    paused = up.paused
    reader.resume_writing()
    assert (paused, up.paused) == (True, False)
    assert reader.eof_received() is True
    assert up.eof

    tcp.TCPUpstream(down).data_received(b"y" * tcp.BULK_READ)
    back = up.protocol
    assert isinstance(back, tcp.BulkReader)
    view = back.get_buffer(-1)
    view[:3] = b"end"
    back.buffer_updated(3)
    assert down.transport.written.endswith(b"y" * tcp.BULK_READ + b"end")
    back.connection_lost(None)
    assert down.transport.closed
    assert up.closed


async def test_a_bulk_reader_stops_sharing_a_buffer_the_peer_still_holds(down):
    up = fakes.FakeTransport()
    down._connected(up, down.ctx.picker.pick(), CLUSTER)
    fakes.feed(down, b"x" * tcp.BULK_READ)
    reader = down.transport.protocol
    first = reader.get_buffer(-1)
    up.unsent_after_write = 10  # a partial send: the upstream keeps a view of the buffer
    reader.buffer_updated(10)
    assert reader.get_buffer(-1) is not first


async def test_a_bulk_reader_copies_what_queues_behind_earlier_data(down):
    up = fakes.FakeTransport()
    down._connected(up, down.ctx.picker.pick(), CLUSTER)
    fakes.feed(down, b"x" * tcp.BULK_READ)
    reader = down.transport.protocol
    up.pending = 1  # earlier data still queued: this write cannot be sent now either
    shared = reader.get_buffer(-1)
    shared[:4] = b"tail"
    reader.buffer_updated(4)
    assert reader.get_buffer(-1) is shared  # not pinned: the upstream got its own copy
    assert up.written.endswith(b"tail")
