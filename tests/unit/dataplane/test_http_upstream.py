"""The upstream side edits the final response head of a route with response header edits,
whatever way the bytes are split, and leaves every other byte as the upstream sent it."""

from __future__ import annotations

import pytest

from kubelb.dataplane import flow_control, http_filters, http_upstream
from kubelb.ir import proxy
from tests.unit.dataplane import fakes


class Down:
    def __init__(self) -> None:
        self.received = bytearray()
        self.done = False

    def write_upstream_bytes(self, data: bytes | memoryview) -> None:
        self.received += bytes(data)

    def response_started(self) -> None: ...

    def response_complete(self, conn: http_upstream.UpstreamHTTP) -> None:
        self.done = True

    def upgraded(self, conn: http_upstream.UpstreamHTTP) -> None: ...
    def upstream_eof(self) -> None: ...

    def upstream_failed(self, conn: http_upstream.UpstreamHTTP, status: int, detail: str) -> None:
        raise AssertionError(detail)

    def upstream_lost(self, conn: http_upstream.UpstreamHTTP) -> None: ...
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...


EDITS = http_filters.HeaderEdits(
    proxy.HeaderModifier(set=(("server", "edge"),), remove=("x-internal",))
)
RESPONSE = (
    b"HTTP/1.1 100 Continue\r\n\r\n"
    b"HTTP/1.1 200 OK\r\nServer: app\r\nx-internal: 1\r\ncontent-length: 4\r\n\r\nbody"
)
EDITED = (
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 4\r\nserver: edge\r\n\r\nbody"
)


@pytest.mark.parametrize("cut", [1, 20, 26, 30, 60, len(RESPONSE) - 3])
def test_the_final_head_is_edited_however_the_bytes_arrive(cut):
    conn = http_upstream.UpstreamHTTP(flow_control.ReadBuffer(), "k")
    conn.connection_made(fakes.FakeTransport())
    down = Down()
    conn.attach(down, head_only=False, max_head=1 << 16, edits=EDITS)
    fakes.feed(conn, RESPONSE[:cut])
    fakes.feed(conn, RESPONSE[cut:])
    assert (bytes(down.received), down.done) == (EDITED, True)


def test_without_edits_the_bytes_pass_unchanged():
    conn = http_upstream.UpstreamHTTP(flow_control.ReadBuffer(), "k")
    conn.connection_made(fakes.FakeTransport())
    down = Down()
    conn.attach(down, head_only=False, max_head=1 << 16)
    fakes.feed(conn, RESPONSE)
    assert bytes(down.received) == RESPONSE
