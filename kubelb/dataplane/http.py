"""Downstream side of the HTTP/1.1 reverse proxy: one protocol per client connection.

Input: the listener's `context.Handle` (its current context is read for every request, so route
and endpoint changes apply to the next request). Output: each request routed by host and path
prefix, sent upstream on a pooled keep-alive connection (`http_upstream`), bodies streamed in both
directions and never buffered whole, WebSocket upgrades tunnelled, and the proxy's own answers:
400 garbage, 403 upgrade not allowed, 404 no route, 408 headers too slow, 413 body over
`max_request_body_bytes`, 431 headers over the limits, 502 upstream refused, reset or invalid,
503 no healthy endpoint, 504 connect or request timeout. Envoy answers 503 where we answer 502 or
504; we keep the distinction because it tells an operator where to look (all differences from
Envoy: docs/dataplane-differences.md). Routes are chosen as Envoy chooses them (`routing`).
Pipelined requests are parsed ahead (`http_parsing`, at most `MAX_QUEUED`) and answered in order.
A connection opening with the HTTP/2 preface (h2c, as gRPC clients speak) is handed to `http2`.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import typing

import httptools

from kubelb.dataplane import (
    context,
    flow_control,
    http_actions,
    http_filters,
    http_messages,
    http_mirror,
    http_parsing,
    http_upstream,
    proxyproto,
    upstream_tls,
    upstreams,
)
from kubelb.dataplane.http_exchange import Exchange
from kubelb.util import logsafe

logger = logging.getLogger(__name__)

# The HTTP/2 connection preface starts with this (RFC 9113 3.4): no HTTP/1 method does.
_H2_PREFACE_START = b"PRI "


class HTTPDownstream(http_parsing.RequestParsing, asyncio.BufferedProtocol):
    """A client connection: parses requests, forwards them, writes responses back."""

    __slots__ = (
        "_admitted",
        "_closed",
        "_connector",
        "_fresh",
        "_paused",
        "_timer",
        "active",
        "buffer",
        "client",
        "draining",
        "handle",
        "last",
        "parser",
        "queue",
        "transport",
        "tunnel",
        "up",
    )

    def __init__(self, handle: context.Handle) -> None:
        self.handle = handle
        ctx = handle.ctx
        self.buffer = ctx.buffer
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.client = ""
        self.active: Exchange | None = None
        self.queue: collections.deque[Exchange] = collections.deque()
        self.up: http_upstream.UpstreamHTTP | None = None
        self.tunnel = False
        self.draining = False
        self.last = 0.0
        self._start_parsing()
        self._paused = False
        self._closed = False
        self._admitted = False
        # No byte read yet: the first ones may be the HTTP/2 preface.
        self._fresh = True
        self._connector: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None

    # Connection lifecycle

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing it.
        self.transport = typing.cast(asyncio.Transport, transport)
        ctx = self.handle.ctx
        if not ctx.tracker.admit(ctx.name):
            self.transport.abort()
            return
        self._admitted = True
        self.handle.add(self)
        self.draining = self.handle.draining
        flow_control.tune(transport)
        self.client = flow_control.peer_ip(transport)
        self.last = self._head_start = ctx.clock()
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._close(abort_upstream=True)

    def shutdown(self) -> None:
        """Draining: close when idle, else after the current response."""
        self.draining = True
        if self.active is None and self._head_bytes == 0:
            self._close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
        self._close(abort_upstream=True)

    def _close(self, *, abort_upstream: bool = False) -> None:
        if self._closed:
            return
        self._closed = True
        for handle in (self._timer, self._connector):
            if handle is not None:
                handle.cancel()
        self._timer = self._connector = None
        up = self.up
        if up is not None:
            self.up = None
            self._end_target()
            up.detach()
            if up.transport is not None:
                if abort_upstream:
                    up.transport.abort()
                else:
                    up.transport.close()
        if self.transport is not None:
            self.transport.close()
        if self._admitted:
            self._admitted = False
            self.handle.ctx.tracker.release()
            self.handle.discard(self)

    # Reading requests

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.buffer.view

    def buffer_updated(self, nbytes: int) -> None:
        ctx = self.handle.ctx
        self.last = ctx.clock()
        view = self.buffer.view[:nbytes]
        if self._fresh:
            self._fresh = False
            if view[:4] == _H2_PREFACE_START:
                self._to_http2(bytes(view))
                return
        if self._upgrading is not None:
            self._send_raw(view, self._upgrading)
            return
        if self._in_head:
            self._head_bytes += nbytes
        try:
            self.parser.feed_data(view)
        except httptools.HttpParserUpgrade as upgrade:
            self._upgrade_tail(bytes(view[upgrade.args[0] :]))
        except httptools.HttpParserError as err:
            status, detail = self._reject or (400, f"malformed request: {err}")
            self._local_error(status, detail)
            return
        if self._in_head and self._head_bytes > ctx.http.max_request_headers_kb * 1024:
            self._local_error(431, "request headers exceed the limit")

    def _to_http2(self, data: bytes) -> None:
        """Hand the connection (and its admission) to the HTTP/2 protocol."""
        # Imported on first use: most data planes never see HTTP/2 and h2 costs ~1 MiB.
        from kubelb.dataplane import http2

        transport = self.transport
        assert transport is not None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._closed = True
        self._admitted = False
        down = http2.H2Downstream(self.handle, self.client, transport)
        down.draining = self.draining
        self.handle.add(down)
        self.handle.discard(self)
        transport.set_protocol(down)
        down.start(data)

    # Sending requests

    def _activate(self, ex: Exchange) -> None:
        ctx = self.handle.ctx
        self.active = ex
        if ex.method == b"CONNECT" or (ex.upgrade is not None and not ctx.http.websocket):
            self._local_error(403, "protocol upgrade is not allowed on this listener")
            return
        limit = ctx.options.max_request_body_bytes
        length = http_messages.content_length(ex.headers)
        if limit is not None and length is not None and length > limit:
            self._local_error(413, "request body exceeds the limit")
            return
        host = http_messages.host_of(ex.headers)
        path = ex.url.decode("latin-1")
        route = ctx.route(host, path, ex.method, ex.headers)
        if route is None:
            self._local_error(404, f"no route for host {host!r} and path {path!r}")
            return
        ex.route = route
        r = route.route
        if r.redirect is not None:
            location = http_filters.redirect_location(
                r.redirect,
                scheme=ctx.scheme,
                host_header=http_messages.header(ex.headers, b"host").decode("latin-1"),
                target=path,
                prefix=route.prefix,
            )
            self._answer_locally(ex, r.redirect.status_code, [(b"location", location.encode())])
            return
        if r.direct_status is not None:
            self._answer_locally(ex, r.direct_status, [])
            return
        target = route.pick(self.client)
        if target is None:
            self._local_error(503, f"no healthy endpoint for route {r.name!r}")
            return
        ex.head = http_actions.upstream_head(
            ex, route, path, self.client, b"https" if ctx.certificates is not None else b"http"
        )
        if route.mirrors and ex.upgrade is None:
            self._prepare_mirrors(ex, route)
        self._connect(ex, target)
        if (route.timeout > 0 or route.backend_timeout > 0) and not self._closed:
            # After the connect: the attempt's deadline counts from it.
            self._arm()

    # Local answers and mirrors

    def _answer_locally(
        self, ex: Exchange, status: int, headers: list[tuple[bytes, bytes]]
    ) -> None:
        """Answer `ex` without an upstream once its request has been read (its body dropped),
        keeping the connection open as after an upstream answer."""
        ex.local = (status, headers)
        ex.pending.clear()
        if ex.complete:
            self._finish_local(ex)

    def _finish_local(self, ex: Exchange) -> None:
        assert ex.local is not None
        status, headers = ex.local
        ex.local = None
        close = not ex.keep_alive or ex.upgrade is not None or self.draining
        route = ex.route
        if route is not None and route.response_edits is not None:
            headers = route.response_edits.apply(headers)
        if self.transport is not None and not self._closed:
            self.transport.write(http_messages.response_head(status, headers, close=close))
        self.active = None
        if close:
            self._close()
            return
        if self.queue:
            self._activate(self.queue.popleft())
        elif self._paused:
            self.resume_reading()

    def _prepare_mirrors(self, ex: Exchange, route: context.Route) -> None:
        ex.mirrors = http_actions.chosen_mirrors(route, ex.head)
        if not ex.mirrors:
            return
        if ex.complete:
            self._send_mirrors(ex, b"".join(ex.pending))
            return
        ex.mirror_body = list(ex.pending)
        ex.mirror_size = sum(map(len, ex.pending))

    def _send_mirrors(self, ex: Exchange, body: bytes) -> None:
        ex.mirror_body = None
        http_actions.send_mirrors(self.handle.ctx.tracker, ex.mirrors or (), body)
        ex.mirrors = None

    def _connect(self, ex: Exchange, target: upstreams.Target) -> None:
        ex.target = target
        route = ex.route
        if route is not None and route.backend_timeout > 0:
            ex.try_start = self.handle.ctx.clock()
        target.active += 1
        target.total += 1
        cluster = target.owner.cluster
        key: object = target if cluster.proxy_protocol is None else (target, self.client)
        if cluster.tls is not None:
            # A changed TLS setting must not reuse connections made under the old one.
            key = (key, cluster.tls)
        pool = self.handle.ctx.pool
        assert pool is not None
        conn = pool.acquire(key)
        if conn is not None:
            self._bind(conn, fresh=False)
        else:
            self._connector = self.handle.ctx.tracker.spawn(
                self._open(ex, target, key), name="http-connect"
            )

    async def _open(self, ex: Exchange, target: upstreams.Target, key: object) -> None:
        cluster = target.owner.cluster
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(cluster.connect_timeout_seconds):
                _, conn = await loop.create_connection(
                    lambda: http_upstream.UpstreamHTTP(self.buffer, key),
                    target.host,
                    target.port,
                    ssl=target.owner.tls_context,
                    server_hostname=upstream_tls.server_hostname(cluster),
                )
        except TimeoutError:
            self._connector = None
            self._local_error(504, f"upstream connect timeout to {target.key}")
            return
        except OSError as err:
            self._connector = None
            logger.info(
                "listener %s: upstream %s: %s", logsafe.shown(self.handle.ctx.name), target.key, err
            )
            self._local_error(502, f"upstream connect error to {target.key}")
            return
        self._connector = None
        if ex is not self.active or self._closed:
            if conn.transport is not None:
                conn.transport.close()
            return
        self._bind(conn, fresh=True)

    def _response_edits(self, ex: Exchange) -> http_filters.HeaderEdits | None:
        edits = ex.route.response_edits if ex.route is not None else None
        if (not ex.keep_alive or self.draining) and ex.upgrade is None:
            return http_filters.closing(edits)
        return edits

    def _bind(self, conn: http_upstream.UpstreamHTTP, *, fresh: bool) -> None:
        ex = self.active
        assert ex is not None
        assert conn.transport is not None
        assert self.transport is not None
        ctx = self.handle.ctx
        self.up = conn
        conn.attach(
            self,
            head_only=ex.method == b"HEAD",
            max_head=ctx.http.max_response_headers_kb * 1024,
            # Envoy's one header count bounds both directions (upstream KubeLB's headerLimits).
            max_headers=ctx.http.max_request_headers_count,
            edits=self._response_edits(ex),
        )
        out = conn.transport
        target = ex.target
        if fresh and target is not None and target.owner.cluster.proxy_protocol is not None:
            out.write(
                proxyproto.v2_header(
                    self.transport.get_extra_info("peername"),
                    self.transport.get_extra_info("sockname"),
                )
            )
        if ex.pending:
            out.write(b"".join((ex.head, *ex.pending)))
            ex.pending.clear()
            if self._paused and not self.queue:
                self.resume_reading()
        else:
            out.write(ex.head)

    def _send_body(self, ex: Exchange, data: bytes) -> None:
        if ex.mirror_body is not None:
            ex.mirror_size += len(data)
            if ex.mirror_size > http_mirror.MAX_MIRROR_BODY:
                ex.mirror_body = None
                ex.mirrors = None
            else:
                ex.mirror_body.append(data)
        if ex.local is not None:
            return
        if ex is self.active and self.up is not None and self.up.transport is not None:
            self.up.transport.write(data)
            return
        ex.pending.append(data)
        if sum(map(len, ex.pending)) > flow_control.WRITE_HIGH:
            self.pause_reading()

    def _send_raw(self, view: memoryview, ex: Exchange) -> None:
        up = self.up
        if ex is self.active and up is not None and up.transport is not None:
            up.transport.write(view)
            self.buffer.after_write(up.transport)
        else:
            self._send_body(ex, bytes(view))

    # Upstream events (called by UpstreamHTTP)

    def write_upstream_bytes(self, data: bytes | memoryview) -> None:
        transport = self.transport
        if transport is None or self._closed:
            return
        self.last = self.handle.ctx.clock()
        transport.write(data)
        if isinstance(data, memoryview):
            self.buffer.after_write(transport)

    def response_started(self) -> None:
        if self.active is not None:
            self.active.started = True

    def response_complete(self, conn: http_upstream.UpstreamHTTP) -> None:
        ex = self.active
        self.active = None
        self.up = None
        self._end_target(ex)
        pool = self.handle.ctx.pool
        assert ex is not None
        assert pool is not None
        if conn.keep_alive and ex.complete and ex.upgrade is None:
            pool.release(conn)
        else:
            conn.detach()
            if conn.transport is not None:
                conn.transport.close()
        if not (ex.keep_alive and conn.keep_alive and ex.complete) or self.draining:
            self._close()
            return
        if self.queue:
            self._activate(self.queue.popleft())
        elif self._paused:
            self.resume_reading()

    def upgraded(self, conn: http_upstream.UpstreamHTTP) -> None:
        self.tunnel = True

    def upstream_eof(self) -> None:
        if self.transport is not None and self.transport.can_write_eof():
            self.transport.write_eof()

    def upstream_failed(self, conn: http_upstream.UpstreamHTTP, status: int, detail: str) -> None:
        ex = self.active
        conn.detach()
        if conn.transport is not None:
            conn.transport.abort()
        self.up = None
        if (
            ex is not None
            and conn.reused
            and not conn.received
            and not ex.retried
            and ex.complete
            and ex.body_size == 0
            and ex.upgrade is None
            and ex.target is not None
        ):
            # A pooled connection the upstream closed while idle: retry once on a fresh one.
            ex.retried = True
            target = ex.target
            self._end_target(ex)
            self._connect(ex, target)
            return
        logger.info("listener %s: %s", logsafe.shown(self.handle.ctx.name), detail)
        self._local_error(status, detail)

    def upstream_lost(self, conn: http_upstream.UpstreamHTTP) -> None:
        if self.tunnel:
            self._close()
            return
        self.upstream_failed(conn, 502, "upstream reset the connection")

    # Flow control

    def pause_reading(self) -> None:
        if not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()

    def pause_writing(self) -> None:
        if self.up is not None and self.up.transport is not None:
            self.up.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.up is not None and self.up.transport is not None:
            self.up.transport.resume_reading()

    def eof_received(self) -> bool:
        if self.tunnel and self.up is not None and self.up.transport is not None:
            if self.up.transport.can_write_eof():
                self.up.transport.write_eof()
            return True
        # A client half-closing after a complete request still gets the response; one leaving
        # in the middle of a request abandons it (the upstream connection is dropped too).
        ex = self.active
        if ex is not None and ex.complete and self.parsing is None:
            return True
        self._close(abort_upstream=True)
        return False

    # Errors and timers

    def _local_error(self, status: int, detail: str) -> None:
        ex = self.active
        if self.transport is not None and not self._closed and (ex is None or not ex.started):
            answer = http_messages.local_response(status, detail)
            if ex is not None and ex.route is not None and ex.route.response_edits is not None:
                answer = http_filters.edit_response(answer, ex.route.response_edits)
            self.transport.write(answer)
        self._close(abort_upstream=True)

    def _end_target(self, ex: Exchange | None = None) -> None:
        ex = ex or self.active
        if ex is not None and ex.target is not None:
            ex.target.active -= 1
            ex.target = None

    def _arm(self) -> None:
        """(Re)start the one timer; it fires at the deadline or after one period, whichever is
        first, and re-evaluates then, so state changes need no timer work on the hot path."""
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_at(
            min(self._deadline(), loop.time() + self._period()), self._on_timer
        )

    def _period(self) -> float:
        ctx = self.handle.ctx
        return min(
            ctx.options.request_headers_timeout_seconds,
            ctx.http.idle_timeout_seconds,
            ctx.http.stream_idle_timeout_seconds,
        )

    def _deadline(self) -> float:
        ctx = self.handle.ctx
        ex = self.active
        if ex is not None:
            deadline = self.last + ctx.http.stream_idle_timeout_seconds
            route = ex.route
            if route is not None and not ex.started:
                if route.timeout > 0:
                    deadline = min(deadline, ex.start + route.timeout)
                if route.backend_timeout > 0 and ex.target is not None:
                    deadline = min(deadline, ex.try_start + route.backend_timeout)
            return deadline
        if self._in_head and self._head_bytes:
            return self._head_start + ctx.options.request_headers_timeout_seconds
        return self.last + ctx.http.idle_timeout_seconds

    def _on_timer(self) -> None:
        self._timer = None
        now = asyncio.get_running_loop().time()
        if now < self._deadline():
            self._arm()
            return
        ex = self.active
        if ex is not None:
            logger.info(
                "listener %s: upstream response timed out", logsafe.shown(self.handle.ctx.name)
            )
            self._local_error(504, "upstream request timeout")
        elif self._in_head and self._head_bytes:
            self._local_error(408, "request headers were not received in time")
        else:
            self._close()
