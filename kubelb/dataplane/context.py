"""What every connection of a listener needs, bundled once per listener version.

Input: the IR listener, its clusters' live state and the data plane's `Options`. Output: a frozen
`ListenerContext` that protocols keep for their whole life (so a config change only affects new
connections), and the process-wide `Tracker` that enforces `max_connections` and owns the few
tasks the hot path starts (upstream connects), so that closing the data plane can wait for them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from kubelb.dataplane import balancer, flow_control, http_upstream, routing, upstreams
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
class Route:
    route: proxy.HTTPRoute
    picker: balancer.Picker[upstreams.Target]


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

    @property
    def name(self) -> str:
        return self.listener.name

    def route(self, host: str, path: str) -> Route | None:
        """The route of `host`'s virtual host whose path prefix accepts the request."""
        return self.routes.match(host, path) if self.routes is not None else None


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
) -> ListenerContext:
    """A context for `listener` whose clusters are all present in `states`."""
    if listener.protocol is proxy.Protocol.HTTP:
        routes = routing.RouteTable(
            listener.virtual_hosts,
            lambda r: Route(
                route=r,
                picker=balancer.Picker(
                    # Weighted backends are not served yet: the first takes every request.
                    [states[b.cluster] for b in r.backends[:1]],
                    persistent=listener.source_ip_persistence,
                ),
            ),
        )
        return ListenerContext(
            listener=listener,
            options=options,
            tracker=tracker,
            buffer=buffer,
            clock=clock,
            routes=routes,
            http=listener.http or proxy.HTTPOptions(),
            pool=pool,
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
