"""HTTP/2 without TLS (h2c, prior knowledge) for gRPC: a client connection that opens with the
HTTP/2 preface is handed here by `http.HTTPDownstream`.

Input: the listener's `context.Handle` and the connection's first bytes. Output: each stream
routed like an HTTP/1.1 request (`context.ListenerContext.route`: matches, weights, redirects
and fixed statuses, request and response header edits, rewrites) and forwarded over HTTP/2 to a
cluster whose `upstream_protocol` is HTTP2, headers, data and trailers passed through both ways,
so gRPC works end to end. Each client connection has its own upstream connection per endpoint,
streams multiplexed on it; the listener's idle timeout closes a connection without streams.
Limits (docs/dataplane-differences.md): received data is acknowledged at once (no back-pressure
across the proxy), no mirrors and no route timeouts on HTTP/2 streams (gRPC carries its own
deadline), an HTTP/2 request routed to an HTTP/1 cluster gets 502.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import typing
from collections.abc import Sequence

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

from kubelb.dataplane import context, http_filters, http_messages, upstream_tls, upstreams
from kubelb.ir import proxy
from kubelb.util import logsafe

logger = logging.getLogger(__name__)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

Headers = list[tuple[bytes, bytes]]

# Connection-specific headers HTTP/2 forbids (RFC 9113 8.2.2); `te: trailers` stays.
_CONNECTION_HEADERS = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"}
)


class _Queue:
    __slots__ = ("data", "end", "trailers")

    def __init__(self) -> None:
        self.data = bytearray()
        self.end = False
        self.trailers: Headers | None = None


class _Sender:
    """One side's HTTP/2 connection, with data held back until flow control lets it go."""

    def __init__(self, client_side: bool) -> None:
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=client_side, header_encoding=None)
        )
        self.transport: asyncio.Transport | None = None
        self.queues: dict[int, _Queue] = {}

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def headers(self, stream: int, headers: Headers, *, end: bool = False) -> None:
        try:
            self.h2.send_headers(stream, headers, end_stream=end)
        except h2.exceptions.H2Error as err:
            logger.debug("stream %d: headers not sent: %s", stream, err)

    def data(self, stream: int, data: bytes, *, end: bool = False) -> None:
        q = self.queues.setdefault(stream, _Queue())
        q.data += data
        q.end = q.end or end
        self.pump(stream)

    def trailers(self, stream: int, headers: Headers) -> None:
        self.queues.setdefault(stream, _Queue()).trailers = headers
        self.pump(stream)

    def end(self, stream: int) -> None:
        self.data(stream, b"", end=True)

    def reset(self, stream: int) -> None:
        self.queues.pop(stream, None)
        with contextlib.suppress(h2.exceptions.H2Error):
            self.h2.reset_stream(stream)

    def pump(self, stream: int | None = None) -> None:
        for sid in [stream] if stream is not None else list(self.queues):
            q = self.queues.get(sid)
            if q is None:
                continue
            try:
                while q.data:
                    size = min(
                        self.h2.local_flow_control_window(sid), self.h2.max_outbound_frame_size
                    )
                    if size <= 0:
                        break
                    self.h2.send_data(sid, bytes(q.data[:size]))
                    del q.data[:size]
                if q.data:
                    continue
                if q.trailers is not None:
                    self.h2.send_headers(sid, q.trailers, end_stream=True)
                elif q.end:
                    self.h2.end_stream(sid)
                else:
                    continue
            except h2.exceptions.H2Error as err:
                logger.debug("stream %d: data not sent: %s", sid, err)
            del self.queues[sid]


class _Stream:
    """One client stream and where it went."""

    __slots__ = ("down_id", "ended", "pending", "responded", "route", "target", "up", "up_id")

    def __init__(self, down_id: int) -> None:
        self.down_id = down_id
        self.route: context.Route | None = None
        self.target: upstreams.Target | None = None
        self.up: H2Upstream | None = None
        self.up_id = 0
        self.pending: list[bytes] = []
        self.ended = False
        self.responded = False


class H2Downstream(asyncio.Protocol):
    """A client connection speaking HTTP/2."""

    def __init__(self, handle: context.Handle, client: str, transport: asyncio.Transport) -> None:
        self.handle = handle
        self.client = client
        self.side = _Sender(client_side=False)
        self.side.transport = transport
        self.transport = transport
        self.streams: dict[int, _Stream] = {}
        self.upstreams: dict[str, H2Upstream] = {}
        self.draining = False
        self._closed = False
        self.last = handle.ctx.clock()
        self._timer: asyncio.TimerHandle | None = None

    def start(self, data: bytes) -> None:
        http = self.handle.ctx.http
        self.side.h2.initiate_connection()
        self.side.h2.update_settings(
            {h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: http.max_request_headers_kb * 1024}
        )
        self._arm()
        self.data_received(data)

    def _arm(self) -> None:
        idle = self.handle.ctx.http.idle_timeout_seconds
        self._timer = asyncio.get_running_loop().call_at(self.last + idle, self._on_timer)

    def _on_timer(self) -> None:
        """Close a connection without streams once it has been idle for the listener's idle
        timeout (Envoy's `idle_timeout`); otherwise look again later."""
        self._timer = None
        idle = self.handle.ctx.http.idle_timeout_seconds
        if not self.streams and self.handle.ctx.clock() >= self.last + idle:
            self.side.h2.close_connection()
            self.side.flush()
            self._close()
            return
        if self.streams:
            self.last = self.handle.ctx.clock()
        self._arm()

    # Connection lifecycle (context.Connection)

    def shutdown(self) -> None:
        self.draining = True
        self.side.h2.close_connection()
        self.side.flush()
        if not self.streams:
            self._close()

    def abort(self) -> None:
        self.transport.abort()
        self._close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._close()

    def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for s in list(self.streams.values()):
            self._end_target(s)
        self.streams.clear()
        for up in self.upstreams.values():
            up.close()
        self.upstreams.clear()
        self.transport.close()
        self.handle.ctx.tracker.release()
        self.handle.discard(self)

    # Client events

    def data_received(self, data: bytes) -> None:
        self.last = self.handle.ctx.clock()
        try:
            events = self.side.h2.receive_data(data)
        except h2.exceptions.ProtocolError as err:
            logger.info("listener %s: HTTP/2 error: %s", logsafe.shown(self.handle.ctx.name), err)
            self.side.flush()
            self._close()
            return
        for ev in events:
            if isinstance(ev, h2.events.RequestReceived):
                self._request(ev.stream_id, ev.headers or [])
            elif isinstance(ev, h2.events.DataReceived):
                self._client_data(ev)
            elif isinstance(ev, h2.events.StreamEnded):
                self._client_ended(ev.stream_id)
            elif isinstance(ev, h2.events.StreamReset):
                self._client_reset(ev.stream_id)
            elif isinstance(ev, h2.events.WindowUpdated):
                self.side.pump(ev.stream_id or None)
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self.side.flush()
                self._close()
                return
        self.side.flush()

    def _request(self, stream_id: int, raw: Sequence[tuple[bytes, bytes]]) -> None:
        s = _Stream(stream_id)
        self.streams[stream_id] = s
        pseudo: dict[bytes, bytes] = {}
        headers: Headers = []
        for name, value in raw:
            if name.startswith(b":"):
                pseudo[name] = value
            elif name not in _CONNECTION_HEADERS:
                headers.append((name, value))
        ctx = self.handle.ctx
        if len(headers) > ctx.http.max_request_headers_count:
            # headerLimits.maxRequestHeadersCount, as on HTTP/1 (the size is bounded by the
            # MAX_HEADER_LIST_SIZE this side advertises, which h2 enforces).
            self._answer(s, 431)
            return
        authority = pseudo.get(b":authority") or http_messages.header(headers, b"host")
        host = http_messages.host_of([(b"host", authority)])
        path = pseudo.get(b":path", b"/").decode("latin-1")
        method = pseudo.get(b":method", b"GET")
        route = ctx.route(host, path, method, headers)
        if route is None:
            self._answer(s, 404)
            return
        s.route = route
        r = route.route
        if r.redirect is not None:
            location = http_filters.redirect_location(
                r.redirect,
                scheme=ctx.scheme,
                host_header=authority.decode("latin-1"),
                target=path,
                prefix=route.prefix,
            )
            self._answer(s, r.redirect.status_code, [(b"location", location.encode())])
            return
        if r.direct_status is not None:
            self._answer(s, r.direct_status)
            return
        target = route.backends.pick(self.client)
        if target is None:
            self._answer(s, 503)
            return
        if target.owner.cluster.upstream_protocol is not proxy.UpstreamProtocol.HTTP2:
            self._answer(s, 502)
            return
        if route.request_edits is not None:
            headers = route.request_edits.apply(headers)
        if r.rewrite is not None:
            if r.rewrite.hostname is not None:
                authority = r.rewrite.hostname.encode()
            if r.rewrite.path is not None:
                path = http_filters.rewrite_target(path, route.prefix, r.rewrite.path)
        xff = http_messages.header(headers, b"x-forwarded-for")
        ip = self.client.encode()
        upstream_headers: Headers = [
            (b":method", method),
            (b":scheme", b"http"),
            (b":path", path.encode("latin-1")),
            (b":authority", authority),
            *(
                (n, v)
                for n, v in headers
                if n not in (b"host", b"x-forwarded-for", b"x-forwarded-proto")
            ),
            (b"x-forwarded-for", xff + b", " + ip if xff else ip),
            (
                b"x-forwarded-proto",
                http_messages.header(headers, b"x-forwarded-proto") or ctx.scheme.encode(),
            ),
        ]
        s.target = target
        target.active += 1
        target.total += 1
        up = self.upstreams.get(target.key)
        if up is None or up.broken:
            up = H2Upstream(self, target)
            self.upstreams[target.key] = up
            up.connect()
        up.open(s, upstream_headers)

    def _client_data(self, ev: h2.events.DataReceived) -> None:
        self.side.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        s = self.streams.get(ev.stream_id)
        if s is None or s.up is None or not ev.data:
            return
        if s.up_id:
            s.up.side.data(s.up_id, ev.data)
            s.up.side.flush()
        else:
            s.pending.append(ev.data)

    def _client_ended(self, stream_id: int) -> None:
        s = self.streams.get(stream_id)
        if s is None:
            return
        s.ended = True
        if s.up is not None and s.up_id:
            s.up.side.end(s.up_id)
            s.up.side.flush()

    def _client_reset(self, stream_id: int) -> None:
        s = self.streams.pop(stream_id, None)
        if s is None:
            return
        self.side.queues.pop(stream_id, None)
        if s.up is not None and s.up_id:
            s.up.forget(s.up_id)
            s.up.side.reset(s.up_id)
            s.up.side.flush()
        self._end_target(s)

    # Answers

    def _answer(self, s: _Stream, status: int, headers: Headers | None = None) -> None:
        """A body-less answer of the proxy's own, ending the stream."""
        self.respond(s, [(b":status", str(status).encode()), *(headers or [])], end=True)

    def respond(self, s: _Stream, headers: Headers, *, end: bool = False) -> None:
        """The response head (from upstream or our own), with the route's edits."""
        s.responded = True
        edits = s.route.response_edits if s.route is not None else None
        if edits is not None:
            status = [(n, v) for n, v in headers if n.startswith(b":")]
            headers = status + edits.apply([(n, v) for n, v in headers if not n.startswith(b":")])
        self.side.headers(s.down_id, headers, end=end)
        if end:
            self.finished(s)
        self.side.flush()

    def finished(self, s: _Stream) -> None:
        self.streams.pop(s.down_id, None)
        self._end_target(s)
        if self.draining and not self.streams:
            self._close()

    def failed(self, s: _Stream, detail: str) -> None:
        """The upstream stream or connection failed: 502 if nothing was answered yet."""
        logger.info("listener %s: %s", logsafe.shown(self.handle.ctx.name), detail)
        if s.responded:
            self.side.reset(s.down_id)
            self.finished(s)
            self.side.flush()
        else:
            self._answer(s, 502)

    def _end_target(self, s: _Stream) -> None:
        if s.target is not None:
            s.target.active -= 1
            s.target = None

    # Flow control: received data is acknowledged at once, so nothing to pause.

    def pause_writing(self) -> None:
        pass

    def resume_writing(self) -> None:
        pass


class H2Upstream(asyncio.Protocol):
    """One HTTP/2 connection to an endpoint, carrying the streams of one client connection."""

    def __init__(self, down: H2Downstream, target: upstreams.Target) -> None:
        self.down = down
        self.target = target
        self.side = _Sender(client_side=True)
        self.streams: dict[int, _Stream] = {}
        self.waiting: list[tuple[_Stream, Headers]] = []
        self.broken = False
        self._task: asyncio.Task[None] | None = None

    def connect(self) -> None:
        self._task = self.down.handle.ctx.tracker.spawn(self._connect(), name="h2-connect")

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        cluster = self.target.owner.cluster
        try:
            async with asyncio.timeout(cluster.connect_timeout_seconds):
                await loop.create_connection(
                    lambda: self,
                    self.target.host,
                    self.target.port,
                    ssl=self.target.owner.tls_context,
                    server_hostname=upstream_tls.server_hostname(cluster),
                )
        except (OSError, TimeoutError) as err:
            self._fail(f"upstream connect error to {self.target.key}: {err}")
        finally:
            self._task = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing it.
        self.side.transport = typing.cast(asyncio.Transport, transport)
        self.side.h2.initiate_connection()
        waiting, self.waiting = self.waiting, []
        for s, headers in waiting:
            self._start(s, headers)
        self.side.flush()

    def open(self, s: _Stream, headers: Headers) -> None:
        s.up = self
        if self.side.transport is None:
            self.waiting.append((s, headers))
            return
        self._start(s, headers)
        self.side.flush()

    def _start(self, s: _Stream, headers: Headers) -> None:
        sid = self.side.h2.get_next_available_stream_id()
        s.up_id = sid
        self.streams[sid] = s
        self.side.headers(sid, headers, end=s.ended and not s.pending)
        for data in s.pending:
            self.side.data(sid, data)
        if s.ended and s.pending:
            self.side.end(sid)
        s.pending = []

    def forget(self, sid: int) -> None:
        self.streams.pop(sid, None)

    def data_received(self, data: bytes) -> None:
        try:
            events = self.side.h2.receive_data(data)
        except h2.exceptions.ProtocolError as err:
            self._fail(f"HTTP/2 error from upstream {self.target.key}: {err}")
            return
        down = self.down
        for ev in events:
            if isinstance(ev, h2.events.ResponseReceived):
                # A response without body ends on its head (gRPC's trailers-only answers):
                # the client must see that one HEADERS frame, not headers and an empty DATA.
                ended = ev.stream_ended is not None
                s = (
                    self.streams.pop(ev.stream_id, None)
                    if ended
                    else self.streams.get(ev.stream_id)
                )
                if s is not None:
                    down.respond(s, list(ev.headers or []), end=ended)
            elif isinstance(ev, h2.events.DataReceived):
                self.side.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                s = self.streams.get(ev.stream_id)
                if s is not None and ev.data:
                    down.side.data(s.down_id, ev.data)
            elif isinstance(ev, h2.events.TrailersReceived):
                s = self.streams.pop(ev.stream_id, None)
                if s is not None:
                    down.side.trailers(s.down_id, list(ev.headers or []))
                    down.finished(s)
            elif isinstance(ev, h2.events.StreamEnded):
                s = self.streams.pop(ev.stream_id, None)
                if s is not None:
                    down.side.end(s.down_id)
                    down.finished(s)
            elif isinstance(ev, h2.events.StreamReset):
                s = self.streams.pop(ev.stream_id, None)
                if s is not None:
                    down.failed(s, f"upstream {self.target.key} reset a stream")
            elif isinstance(ev, h2.events.WindowUpdated):
                self.side.pump(ev.stream_id or None)
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self._fail(f"upstream {self.target.key} closed the HTTP/2 connection")
        self.side.flush()
        down.side.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.side.transport = None
        self._fail(f"upstream {self.target.key} closed the connection")

    def _fail(self, detail: str) -> None:
        self.broken = True
        streams = [*self.streams.values(), *(s for s, _ in self.waiting)]
        self.streams.clear()
        self.waiting.clear()
        for s in streams:
            self.down.failed(s, detail)
        self.down.side.flush()
        if self.side.transport is not None:
            self.side.transport.close()

    def close(self) -> None:
        self.streams.clear()
        self.waiting.clear()
        if self._task is not None:
            self._task.cancel()
        if self.side.transport is not None:
            self.side.transport.close()
