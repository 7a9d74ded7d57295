"""Reading HTTP/1.1 requests off a client connection: the httptools parser's callbacks.

A mixin of `http.HTTPDownstream`, which owns the state named below: each request becomes an
`Exchange` as its head is parsed (with the listener's header count and size limits, and the body
limit, refused by raising `Reject` from inside the parser), is activated at once or queued behind
the one in flight (at most `MAX_QUEUED`, then reading pauses), and its body is streamed upstream
as it arrives.
"""

from __future__ import annotations

import collections

import httptools

from kubelb.dataplane import context, http_messages
from kubelb.dataplane.http_exchange import Exchange

# Pipelined requests parsed ahead of the one being answered.
MAX_QUEUED = 8


class Reject(Exception):
    """Raised inside a parser callback; `_reject` says the status and why."""


class RequestParsing:
    # The parsing state lives here; the connection's own state is `HTTPDownstream`'s.
    __slots__ = (
        "_head_bytes",
        "_head_count",
        "_head_size",
        "_head_start",
        "_in_head",
        "_reject",
        "_upgrading",
        "parsing",
    )

    handle: context.Handle
    parser: httptools.HttpRequestParser
    active: Exchange | None
    queue: collections.deque[Exchange]
    last: float

    def _start_parsing(self) -> None:
        self.parsing: Exchange | None = None
        self._in_head = True
        self._head_start = 0.0
        self._head_bytes = 0
        self._head_count = 0
        self._head_size = 0
        self._reject: tuple[int, str] | None = None
        # The exchange that asked for a protocol upgrade: later client bytes belong to it, raw.
        self._upgrading: Exchange | None = None

    def _activate(self, ex: Exchange) -> None:
        raise NotImplementedError

    def _send_body(self, ex: Exchange, data: bytes) -> None:
        raise NotImplementedError

    def _send_mirrors(self, ex: Exchange, body: bytes) -> None:
        raise NotImplementedError

    def _finish_local(self, ex: Exchange) -> None:
        raise NotImplementedError

    def _local_error(self, status: int, detail: str) -> None:
        raise NotImplementedError

    def pause_reading(self) -> None:
        raise NotImplementedError

    def on_message_begin(self) -> None:
        ex = Exchange(self.last)
        self.parsing = ex
        if not self._in_head:
            self._in_head = True
            self._head_start = self.last
            self._head_bytes = 1  # non-zero: a head has started, the headers deadline applies
        self._head_count = 0
        self._head_size = 0

    def on_url(self, url: bytes) -> None:
        assert self.parsing is not None
        self.parsing.url += url
        self._head_size += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self.parsing is not None
        self._head_count += 1
        self._head_size += len(name) + len(value) + 4
        http_options = self.handle.ctx.http
        if self._head_count > http_options.max_request_headers_count:
            self._reject = (431, "too many request headers")
            raise Reject
        if self._head_size > http_options.max_request_headers_kb * 1024:
            self._reject = (431, "request headers exceed the limit")
            raise Reject
        self.parsing.headers.append((name, value))

    def on_headers_complete(self) -> None:
        ex = self.parsing
        assert ex is not None
        parser = self.parser
        self._in_head = False
        self._head_bytes = 0
        ex.method = parser.get_method()
        ex.version = parser.get_http_version()
        ex.keep_alive = parser.should_keep_alive()
        upgrade = None
        if parser.should_upgrade():
            upgrade = next((v for n, v in ex.headers if n.lower() == b"upgrade"), b"")
            ex.upgrade = upgrade
            self._upgrading = ex
        ex.chunked = any(
            n.lower() == b"transfer-encoding" and b"chunked" in v.lower() for n, v in ex.headers
        )
        if self.active is None:
            self._activate(ex)
        else:
            self.queue.append(ex)
            if len(self.queue) >= MAX_QUEUED:
                self.pause_reading()

    def on_body(self, body: bytes) -> None:
        ex = self.parsing
        assert ex is not None
        ex.body_size += len(body)
        limit = self.handle.ctx.options.max_request_body_bytes
        if limit is not None and ex.body_size > limit:
            self._reject = (413, "request body exceeds the limit")
            raise Reject
        self._send_body(ex, http_messages.chunk(body) if ex.chunked else body)

    def on_message_complete(self) -> None:
        ex = self.parsing
        assert ex is not None
        self.parsing = None
        if ex.chunked:
            self._send_body(ex, http_messages.LAST_CHUNK)
        ex.complete = True
        if ex is self.active and (ex.mirror_body is not None or ex.local is not None):
            self._request_complete(ex)

    def _request_complete(self, ex: Exchange) -> None:
        """The active exchange's request has been read whole."""
        if ex.mirror_body is not None:
            self._send_mirrors(ex, b"".join(ex.mirror_body))
        if ex.local is not None:
            self._finish_local(ex)

    def _upgrade_tail(self, tail: bytes) -> None:
        ex = self._upgrading
        if ex is None:
            self._local_error(400, "unexpected protocol upgrade")
            return
        self.parsing = None
        ex.complete = True
        if tail:
            self._send_body(ex, tail)
        if ex is self.active and ex.local is not None:
            self._finish_local(ex)
