"""Upstream side of the HTTP reverse proxy: one protocol per upstream connection, and the pool of
idle keep-alive connections shared by all HTTP listeners.

Input: a request head and body written by a `Downstream` (the client side, implemented by
`http.HTTPDownstream`, which this module never imports). Output: the response bytes passed
through unchanged (status line, headers and body framing as the upstream sent them) while a
response parser only tracks where the message ends, whether the connection can be reused, and
whether it switched protocols (WebSocket). Responses whose head exceeds the listener's limit are
answered with 502 instead.
"""

from __future__ import annotations

import asyncio
import logging
import typing
from collections.abc import Hashable
from typing import Protocol

import httptools

from kubelb.dataplane import flow_control, http_filters

logger = logging.getLogger(__name__)


class Downstream(Protocol):
    """The client-side exchange an upstream connection serves, and what it tells it."""

    def write_upstream_bytes(self, data: bytes | memoryview) -> None:
        """Response bytes (or tunnelled bytes after an upgrade) for the client."""

    def response_started(self) -> None:
        """The response head (status 200 or above) is complete."""

    def response_complete(self, conn: UpstreamHTTP) -> None:
        """The whole response went through."""

    def upgraded(self, conn: UpstreamHTTP) -> None:
        """The upstream switched protocols: bytes flow both ways untouched from now on."""

    def upstream_eof(self) -> None:
        """The upstream half-closed a tunnel."""

    def upstream_failed(self, conn: UpstreamHTTP, status: int, detail: str) -> None:
        """No usable response: answer the client with `status`."""

    def upstream_lost(self, conn: UpstreamHTTP) -> None:
        """The connection closed before the response was complete."""

    def pause_reading(self) -> None:
        """The upstream cannot take more request bytes for now."""

    def resume_reading(self) -> None:
        """The upstream takes request bytes again."""


class _HeadRefusedError(Exception):
    """A response head over the listener's limits (httptools reports it as a parser error)."""


class UpstreamHTTP(asyncio.BufferedProtocol):
    """One upstream connection; attached to at most one downstream exchange at a time."""

    __slots__ = (
        "_edits",
        "_head_buf",
        "_head_count",
        "_head_parsed",
        "_head_pending",
        "_head_size",
        "_max_head",
        "_max_headers",
        "_parser",
        "_refusal",
        "_status",
        "buffer",
        "complete",
        "down",
        "head_only",
        "idle_since",
        "keep_alive",
        "pool_key",
        "received",
        "reused",
        "transport",
        "tunnel",
    )

    def __init__(self, buffer: flow_control.ReadBuffer, pool_key: Hashable) -> None:
        self.buffer = buffer
        self.pool_key = pool_key
        self.transport: asyncio.Transport | None = None
        self.down: Downstream | None = None
        self._parser: httptools.HttpResponseParser | None = None
        self._head_buf: list[bytes] = []
        self._head_pending = False
        self._head_size = 0
        self._max_head = 0
        # The head as parsed (header count, bytes of status and headers): a head that arrives
        # whole in one read is measured here, before any of it is passed on.
        self._head_count = 0
        self._head_parsed = 0
        self._max_headers = 0
        self._refusal: str | None = None
        self._status = 0
        # Response header edits of the route, until the final response head has been edited.
        self._edits: http_filters.HeaderEdits | None = None
        self.head_only = False
        self.complete = False
        self.keep_alive = False
        self.received = False
        self.reused = False
        self.tunnel = False
        self.idle_since = 0.0

    @property
    def usable(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    def attach(
        self,
        down: Downstream,
        *,
        head_only: bool,
        max_head: int,
        max_headers: int = 0,
        edits: http_filters.HeaderEdits | None = None,
    ) -> None:
        """`max_head`: bytes of a response head; `max_headers`: headers in it (0: any)."""
        self.down = down
        self._edits = edits
        self._parser = httptools.HttpResponseParser(self)
        self._head_buf = []
        self._head_pending = True
        self._head_size = 0
        self._max_head = max_head
        self._max_headers = max_headers
        self._head_count = self._head_parsed = 0
        self._refusal = None
        self._status = 0
        self.head_only = head_only
        self.complete = False
        self.keep_alive = False
        self.received = False
        self.tunnel = False
        if self.transport is not None:
            self.transport.resume_reading()

    def detach(self) -> None:
        self.down = None
        self._parser = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing it.
        self.transport = typing.cast(asyncio.Transport, transport)
        flow_control.tune(transport)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.buffer.view

    def buffer_updated(self, nbytes: int) -> None:
        view = self.buffer.view[:nbytes]
        down = self.down
        if down is None:
            # Bytes on an idle pooled connection: the upstream broke the protocol.
            if self.transport is not None:
                self.transport.close()
            return
        if self.tunnel:
            down.write_upstream_bytes(view)
            return
        self.received = True
        parser = self._parser
        assert parser is not None
        try:
            parser.feed_data(view)
        except httptools.HttpParserUpgrade:
            self.tunnel = True
        except httptools.HttpParserError as err:
            reason = self._refusal or f"invalid response from upstream: {err}"
            down.upstream_failed(self, 502, reason)
            return
        if self._head_pending and not self.tunnel:
            self._head_size += nbytes
            if self._head_size > self._max_head:
                down.upstream_failed(self, 502, "upstream response headers exceed the limit")
                return
            self._head_buf.append(bytes(view))
            return
        if self._edits is not None:
            down.write_upstream_bytes(self._edited(b"".join((*self._head_buf, view))))
            self._head_buf = []
        elif self._head_buf:
            self._head_buf.append(bytes(view))
            down.write_upstream_bytes(b"".join(self._head_buf))
            self._head_buf = []
        else:
            down.write_upstream_bytes(view)
        if self.tunnel:
            down.upgraded(self)
        elif self.complete:
            down.response_complete(self)

    def _edited(self, data: bytes) -> bytes:
        """`data` with the route's edits applied to the final response head, once it is there."""
        span = http_filters.final_head_end(data)
        if span is None or self._edits is None:
            return data
        start, end = span
        head = http_filters.edit_response_head(data[start:end], self._edits)
        self._edits = None
        return data[:start] + head + data[end:]

    # httptools callbacks

    def on_message_begin(self) -> None:
        self._head_pending = True
        self._head_size = 0
        self._head_count = self._head_parsed = 0

    def on_status(self, status: bytes) -> None:
        self._head_parsed += len(status) + len(b"HTTP/1.1 000 \r\n")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_count += 1
        self._head_parsed += len(name) + len(value) + 4
        if self._max_headers and self._head_count > self._max_headers:
            self._refusal = f"upstream response has more than {self._max_headers} headers"
        elif self._head_parsed > self._max_head:
            self._refusal = "upstream response headers exceed the limit"
        if self._refusal is not None:
            raise _HeadRefusedError(self._refusal)  # stops the parser: nothing is passed on

    def on_headers_complete(self) -> None:
        assert self._parser is not None
        self._head_pending = False
        self._status = self._parser.get_status_code()
        if self._status >= 200:
            self.keep_alive = self._parser.should_keep_alive()
            if self.down is not None:
                self.down.response_started()
            if self.head_only:
                self.complete = True

    def on_message_complete(self) -> None:
        if self._status >= 200 or self._status == 101:
            self.complete = True

    # Transport events

    def eof_received(self) -> bool:
        down = self.down
        if down is None:
            return False
        if self.tunnel:
            down.upstream_eof()
            return True
        if self.complete:
            return False
        if not self._head_pending and self._status >= 200:
            # A body delimited by the end of the connection (no length, not chunked).
            self.keep_alive = False
            self.complete = True
            down.response_complete(self)
            return False
        down.upstream_failed(self, 502, "upstream closed the connection before responding")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        down = self.down
        if down is not None and not self.complete:
            down.upstream_lost(self)

    def pause_writing(self) -> None:
        if self.down is not None:
            self.down.pause_reading()

    def resume_writing(self) -> None:
        if self.down is not None:
            self.down.resume_reading()


class Pool:
    """Idle keep-alive upstream connections, newest first, per key (target, and client when the
    cluster sends PROXY headers, since the header describes one client)."""

    def __init__(self, *, size: int, idle_seconds: float) -> None:
        self.size = size
        self.idle_seconds = idle_seconds
        self.idle: dict[Hashable, list[UpstreamHTTP]] = {}
        self._sweeper: asyncio.TimerHandle | None = None

    def acquire(self, key: Hashable) -> UpstreamHTTP | None:
        conns = self.idle.get(key)
        while conns:
            conn = conns.pop()
            if conn.usable:
                conn.reused = True
                return conn
        return None

    def release(self, conn: UpstreamHTTP) -> None:
        conn.detach()
        transport = conn.transport
        if transport is None or transport.is_closing():
            return
        conns = self.idle.setdefault(conn.pool_key, [])
        if len(conns) >= self.size:
            transport.close()
            return
        loop = asyncio.get_running_loop()
        conn.idle_since = loop.time()
        conns.append(conn)
        if self._sweeper is None:
            self._sweeper = loop.call_later(self.idle_seconds / 2, self._sweep)

    def count(self) -> int:
        return sum(len(c) for c in self.idle.values())

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for conns in self.idle.values():
            for conn in conns:
                if conn.transport is not None:
                    conn.transport.close()
        self.idle.clear()

    def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        cutoff = loop.time() - self.idle_seconds
        for key in list(self.idle):
            keep = []
            for conn in self.idle[key]:
                if conn.usable and conn.idle_since >= cutoff:
                    keep.append(conn)
                elif conn.transport is not None:
                    conn.transport.close()
            if keep:
                self.idle[key] = keep
            else:
                del self.idle[key]
        self._sweeper = loop.call_later(self.idle_seconds / 2, self._sweep) if self.idle else None
