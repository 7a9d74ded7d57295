"""What every connection of a listener needs, bundled once per listener version.

Input: the IR listener, its clusters' live state and the data plane's `Options`. Output: a frozen
`ListenerContext` that protocols keep for their whole life (so a config change only affects new
connections), and the process-wide `Tracker` that enforces `max_connections` and owns the few
tasks the hot path starts (upstream connects), so that closing the data plane can wait for them.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from kubelb.dataplane import (
    balancer,
    flow_control,
    http_filters,
    http_upstream,
    routing,
    tls_keys,
    tls_names,
    upstreams,
)
from kubelb.ir import proxy

logger = logging.getLogger(__name__)

_LIMIT_LOG_EVERY = 10.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Options:
    """Data-plane settings that are not in the IR (process-wide, from flags)."""

    max_connections: int = 50_000
    tcp_idle_timeout_seconds: float = 3600.0
    udp_session_timeout_seconds: float = 60.0
    udp_max_sessions: int = 16_384
    # Time a client gets to send complete request headers (slowloris defence).
    request_headers_timeout_seconds: float = 60.0
    # None streams bodies of any size; a number answers larger requests with 413.
    max_request_body_bytes: int | None = None
    upstream_pool_size: int = 128
    upstream_pool_idle_seconds: float = 60.0
    dns_refresh_seconds: float = upstreams.DNS_REFRESH_SECONDS
    # Time a TLS client gets for its ClientHello (passthrough) or whole handshake (HTTPS):
    # Envoy's TLS inspector default.
    tls_handshake_timeout_seconds: float = 15.0


class Tracker:
    """Connection admission against `max_connections`, and ownership of hot-path tasks."""

    __slots__ = ("_last_warning", "active", "limit", "refused", "tasks")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0
        self.refused = 0
        self._last_warning = 0.0
        self.tasks: set[asyncio.Task[None]] = set()

    def admit(self, listener: str) -> bool:
        if self.active >= self.limit:
            self.refused += 1
            now = time.monotonic()
            if now - self._last_warning >= _LIMIT_LOG_EVERY:
                self._last_warning = now
                logger.warning(
                    "listener %s: refusing a connection, max_connections=%d reached "
                    "(%d refused so far); raise the limit or add workers",
                    listener,
                    self.limit,
                    self.refused,
                )
            return False
        self.active += 1
        return True

    def release(self) -> None:
        self.active -= 1

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task


@dataclass(frozen=True, slots=True, kw_only=True)
class Mirror:
    picker: balancer.Picker[upstreams.Target]
    percent: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    """An IR route with what serving it needs, built once per listener version."""

    route: proxy.HTTPRoute
    backends: balancer.Weighted[upstreams.Target]
    request_edits: http_filters.HeaderEdits | None = None
    response_edits: http_filters.HeaderEdits | None = None
    mirrors: tuple[Mirror, ...] = ()
    # The whole request (0: none): the route's own, else the listener's.
    timeout: float = 0.0
    # One attempt at a backend (0: none).
    backend_timeout: float = 0.0
    # Nothing to change in the request: it goes upstream as the client sent it.
    plain: bool = True
    # An endpoint of a backend chosen by weight (None when it has none available): the only
    # backend's picker itself when there is one, a call saved on every request.
    pick: Callable[[str], upstreams.Target | None]

    @property
    def prefix(self) -> str:
        """The PathPrefix the route matched ("/" for other matches), for ReplacePrefixMatch."""
        path = self.route.match.path
        return path.value if path.kind is proxy.PathMatchKind.PREFIX else "/"


def route_of(
    r: proxy.HTTPRoute,
    states: Mapping[str, upstreams.ClusterState],
    *,
    persistent: bool,
    http: proxy.HTTPOptions,
) -> Route:
    backends = balancer.Weighted(
        [(balancer.Picker([states[b.cluster]], persistent=persistent), b.weight)
         for b in r.backends],
        persistent=persistent,
    )  # fmt: skip
    mirrors = tuple(
        Mirror(picker=balancer.Picker([states[m.cluster]], persistent=False), percent=m.percent)
        for m in r.mirrors
        if m.percent > 0
    )
    request_edits = http_filters.HeaderEdits(r.request_headers) if r.request_headers else None
    return Route(
        route=r,
        backends=backends,
        request_edits=request_edits,
        response_edits=http_filters.HeaderEdits(r.response_headers) if r.response_headers else None,
        mirrors=mirrors,
        timeout=http.request_timeout_seconds if r.timeout_seconds is None else r.timeout_seconds,
        backend_timeout=r.backend_timeout_seconds or 0.0,
        plain=request_edits is None and r.rewrite is None and not mirrors,
        pick=backends.pickers[0].pick if len(backends.pickers) == 1 else backends.pick,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class ListenerContext:
    listener: proxy.Listener
    options: Options
    tracker: Tracker
    buffer: flow_control.ReadBuffer
    # The loop's clock, read on every chunk for idle timeouts.
    clock: Callable[[], float]
    # TCP and UDP: one picker over all clusters of the listener.
    picker: balancer.Picker[upstreams.Target] | None = None
    # HTTP: routes grouped into virtual hosts as Envoy does (`routing.RouteTable`).
    routes: routing.RouteTable[Route] | None = None
    http: proxy.HTTPOptions = field(default_factory=proxy.HTTPOptions)
    pool: http_upstream.Pool | None = None
    # HTTPS: the server context of each server name (a terminating listener's handshakes).
    certificates: tls_names.ServerNames[ssl.SSLContext] | None = None
    # TLS passthrough: the backends of each server name.
    sni: tls_names.ServerNames[balancer.Weighted[upstreams.Target]] | None = None

    @property
    def scheme(self) -> str:
        """What the client speaks: `https` on a terminating listener."""
        return "http" if self.certificates is None else "https"

    @property
    def name(self) -> str:
        return self.listener.name

    def route(
        self, host: str, target: str, method: bytes = b"GET", headers: routing.Headers = ()
    ) -> Route | None:
        """The first route of `host`'s virtual host whose match holds for the request."""
        if self.routes is None:
            return None
        return self.routes.match(host, target, method, headers)


class Handle:
    """What a listener's protocols share: the current context and the set of open connections."""

    __slots__ = ("conns", "ctx", "draining", "empty")

    def __init__(self, ctx: ListenerContext) -> None:
        self.ctx = ctx
        self.conns: set[Connection] = set()
        self.empty: asyncio.Event | None = None
        # Set when the listener drains: connections accepted from then on finish after their
        # first exchange (HTTP), as those open before.
        self.draining = False

    def add(self, conn: Connection) -> None:
        self.conns.add(conn)

    def discard(self, conn: Connection) -> None:
        self.conns.discard(conn)
        if not self.conns and self.empty is not None:
            self.empty.set()

    async def wait_empty(self, seconds: float) -> None:
        """Until every connection has closed, or `seconds` have passed."""
        if not self.conns:
            return
        self.empty = asyncio.Event()
        try:
            async with asyncio.timeout(seconds):
                await self.empty.wait()
        except TimeoutError:
            pass


class Connection(Protocol):
    def shutdown(self) -> None: ...
    def abort(self) -> None: ...


def build(
    listener: proxy.Listener,
    states: Mapping[str, upstreams.ClusterState],
    *,
    options: Options,
    tracker: Tracker,
    buffer: flow_control.ReadBuffer,
    clock: Callable[[], float],
    pool: http_upstream.Pool,
    secrets: Mapping[tuple[str, tls_keys.Alpn], ssl.SSLContext] | None = None,
) -> ListenerContext:
    """A context for `listener` whose clusters are all present in `states`, and the secrets it
    names in `secrets` (one missing there failed to load: its server names are refused)."""
    if listener.protocol is proxy.Protocol.TLS:
        persistent = listener.source_ip_persistence
        sni = tls_names.ServerNames(
            (r.server_names,
             balancer.Weighted([(balancer.Picker([states[b.cluster]], persistent=persistent),
                                 b.weight) for b in r.backends], persistent=persistent))
            for r in listener.sni_routes
        )  # fmt: skip
        return ListenerContext(
            listener=listener,
            options=options,
            tracker=tracker,
            buffer=buffer,
            clock=clock,
            sni=sni,
        )
    if listener.protocol is proxy.Protocol.HTTP:
        http = listener.http or proxy.HTTPOptions()
        routes = routing.RouteTable(
            listener.virtual_hosts,
            lambda r: route_of(r, states, persistent=listener.source_ip_persistence, http=http),
        )
        return ListenerContext(
            listener=listener,
            options=options,
            tracker=tracker,
            buffer=buffer,
            clock=clock,
            routes=routes,
            http=http,
            pool=pool,
            certificates=None if listener.tls is None else _certificates(listener, states, secrets),
        )
    cluster_states = [states[name] for name in listener.clusters]
    return ListenerContext(
        listener=listener,
        options=options,
        tracker=tracker,
        buffer=buffer,
        clock=clock,
        picker=balancer.Picker(cluster_states, persistent=listener.source_ip_persistence),
    )


def _certificates(
    listener: proxy.Listener,
    states: Mapping[str, upstreams.ClusterState],
    secrets: Mapping[tuple[str, tls_keys.Alpn], ssl.SSLContext] | None,
) -> tls_names.ServerNames[ssl.SSLContext]:
    assert listener.tls is not None
    alpn = tls_keys.alpn_offer(listener, lambda c: states[c].cluster.upstream_protocol)
    found = secrets or {}
    return tls_names.ServerNames(
        (c.server_names, found[(c.secret, alpn)])
        for c in listener.tls.certificates
        if (c.secret, alpn) in found
    )
