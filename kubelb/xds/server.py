"""The ADS gRPC server (state of the world) that programs Envoy from a `SnapshotCache`.

Input: a `cache.SnapshotCache` (snapshots per node id) and Envoy's DiscoveryRequests. Output:
DiscoveryResponses, pushed in make-before-break order by `kubelb.xds.sotw`, plus hook calls
(`kubelb.xds.callbacks`) for metrics. One asyncio task per stream: it reads requests in a helper
task and wakes on every request and every snapshot change of its node id.

Keepalive (KubeLB #163, #532): the server pings idle connections and drops dead ones, permits
Envoy's own HTTP/2 pings, and bounds connection age with a per-server random jitter so Envoys
rebalance across control-plane replicas.

Both ADS flavours are served on one port: state of the world (`StreamAggregatedResources`,
bootstrap `api_type: GRPC`) and delta (`DeltaAggregatedResources`, `api_type: DELTA_GRPC`). They
share the ordering machine of `kubelb.xds.sotw`; a delta stream sends only what changed
(`kubelb.xds.delta`).

Authorisation: started with server `credentials` (mTLS, `kubelb.pki.serving`), the server serves
a stream only the node id its client certificate names (`kubelb.pki.identity`); a first request
for any other node is refused with PERMISSION_DENIED before anything is sent, and a client
without a certificate does not get past the handshake. Without credentials (plaintext, for
loopback only) every node id is served.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from kubelb.observe import server as observe_server
from kubelb.pki import identity
from kubelb.xds import cache, callbacks, delta, snapshot, sotw

logger = logging.getLogger(__name__)

CONTROL_PLANE_ID = "kubelb"


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerOptions:
    """gRPC transport settings. Defaults suit Envoy's bootstrap from `kubelb.envoy.bootstrap`."""

    keepalive_time_seconds: float = 30.0
    keepalive_timeout_seconds: float = 5.0
    # Envoy pings every 30 s (bootstrap); anything slower than this is accepted.
    min_client_ping_interval_seconds: float = 5.0
    # Chosen at random once per server in [min, max]; gRPC adds +-10% per connection.
    max_connection_age_seconds: tuple[float, float] = (10 * 3600.0, 12 * 3600.0)
    max_connection_age_grace_seconds: float = 60.0
    max_concurrent_streams: int = 1_000_000

    def grpc_options(self, rng: random.Random | None = None) -> list[tuple[str, int]]:
        low, high = self.max_connection_age_seconds
        age = (rng or random.Random()).uniform(low, high)
        return [
            ("grpc.keepalive_time_ms", _ms(self.keepalive_time_seconds)),
            ("grpc.keepalive_timeout_ms", _ms(self.keepalive_timeout_seconds)),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_pings_without_data", 0),
            (
                "grpc.http2.min_recv_ping_interval_without_data_ms",
                _ms(self.min_client_ping_interval_seconds),
            ),
            (
                "grpc.http2.min_ping_interval_without_data_ms",
                _ms(self.min_client_ping_interval_seconds),
            ),
            ("grpc.max_connection_age_ms", _ms(age)),
            ("grpc.max_connection_age_grace_ms", _ms(self.max_connection_age_grace_seconds)),
            ("grpc.max_concurrent_streams", self.max_concurrent_streams),
            # A second server on a port in use must fail, not silently share its connections.
            ("grpc.so_reuseport", 0),
        ]


def grpc_target(host: str, port: int) -> str:
    """gRPC's spelling of a listen address: it refuses an empty host, and a wildcard host makes
    it listen on every interface of both families (`[::]` falls back to IPv4 without IPv6)."""
    if not host:
        host = "::"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


class _Wake:
    """Queue marker: the node's snapshot changed, or the server is stopping."""


_SNAPSHOT_CHANGED = _Wake()
_END = _Wake()


class XdsServer:
    """`await start("127.0.0.1:8001")` ... `await stop()`; serves whatever the cache holds."""

    def __init__(
        self,
        snapshots: cache.SnapshotCache,
        *,
        hooks: Sequence[callbacks.Callbacks] = (),
        options: ServerOptions | None = None,
    ) -> None:
        self.cache = snapshots
        self.hooks: tuple[callbacks.Callbacks, ...] = (callbacks.MetricsCallbacks(), *hooks)
        self.options = options or ServerOptions()
        self.port: int | None = None
        self._server: grpc.aio.Server | None = None
        self._inboxes: dict[int, _Inbox] = {}
        self._ids = itertools.count(1)
        self._stopping = False
        self.mtls = False
        self.refused = 0  # streams refused: the certificate names another node, or none

    async def start(
        self, address: str, *, credentials: grpc.ServerCredentials | None = None
    ) -> int:
        """Listen on `address` (`HOST:PORT`, `:PORT` for every interface; port 0 picks a free
        one) and return the port. Raises `BindError` when the address cannot be bound.
        `credentials`: serve mTLS (client certificate required), each node to itself only."""
        host, port = observe_server.parse_address(address)
        # Bind once ourselves first: gRPC tells no reason for a failure, and logs its own line.
        if (error := observe_server.bind_error(host, port)) is not None:
            raise observe_server.BindError(
                observe_server.cannot_listen("xDS server", address, error)
            )
        server = grpc.aio.server(options=self.options.grpc_options())
        ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(_Servicer(self), server)
        try:
            if credentials is None:
                port = server.add_insecure_port(grpc_target(host, port))
            else:
                port = server.add_secure_port(grpc_target(host, port), credentials)
        except RuntimeError:  # gRPC's only word on a failed bind
            port = 0
        if port == 0:
            await server.stop(None)
            raise observe_server.BindError(observe_server.cannot_listen("xDS server", address))
        await server.start()
        self._server, self.port, self._stopping = server, port, False
        self.mtls = credentials is not None
        logger.info("xDS server listening on %s (%s)", observe_server.format_address(host, port),
                    "mTLS" if self.mtls else "plaintext")  # fmt: skip
        return port

    async def stop(self, grace: float | None = 5.0) -> None:
        """End every stream (Envoys keep their config and reconnect later), then stop."""
        if self._server is None:
            return
        self._stopping = True
        for inbox in self._inboxes.values():
            inbox.queue.put_nowait(_END)
        await self._server.stop(grace)
        self._server = None
        logger.info("xDS server stopped")

    async def serve_stream(
        self, requests: AsyncIterator[Any], context: Any, *, incremental: bool = False
    ) -> None:
        """Run one ADS stream (delta when `incremental`) until Envoy goes away or the server
        stops."""
        info = callbacks.StreamInfo(stream_id=next(self._ids), peer=context.peer())
        certified = _certified_node(context) if self.mtls else None
        if incremental:
            info.delta = delta.DeltaStreamState()
            info.state = info.delta.sotw
        inbox = _Inbox()
        self._inboxes[info.stream_id] = inbox
        reader = asyncio.create_task(
            _read(requests, inbox.queue), name=f"xds-read-{info.stream_id}"
        )
        registered = False
        try:
            self._call_hooks("on_stream_open", info, fatal=True)
            while not self._stopping:
                item = await inbox.queue.get()
                if item is _END:
                    break
                if item is _SNAPSHOT_CHANGED:
                    inbox.woken = False
                else:
                    if not registered:
                        registered = self._register(info, item, inbox, certified)
                    self._receive(info, item)
                await self._push(info, context)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            self._inboxes.pop(info.stream_id, None)
            if registered:
                self.cache.unregister(info)
            self._call_hooks("on_stream_closed", info)
            logger.info("xDS stream %d closed (node %r)", info.stream_id, info.node_id)

    def _register(
        self, info: callbacks.StreamInfo, request: Any, inbox: _Inbox, certified: str | None
    ) -> bool:
        if not request.node.id:
            raise _StreamError(grpc.StatusCode.INVALID_ARGUMENT, "first request has no node id")
        if self.mtls and request.node.id != certified:
            self.refused += 1
            logger.warning(
                "xDS stream %d from %s refused: node %r asked, its certificate names %r",
                info.stream_id, info.peer, request.node.id, certified,
            )  # fmt: skip
            raise _StreamError(
                grpc.StatusCode.PERMISSION_DENIED, "the client certificate names another node"
            )
        info.node_id = request.node.id
        self.cache.register(info, inbox.wake)
        logger.info(
            "xDS stream %d opened by node %r from %s", info.stream_id, info.node_id, info.peer
        )
        return True

    def _receive(self, info: callbacks.StreamInfo, request: Any) -> None:
        outcome = (info.delta or info.state).receive(request)
        self._call_hooks("on_request", info, request, outcome, fatal=True)
        kind = snapshot.SHORT_NAMES.get(request.type_url, request.type_url)
        if outcome is sotw.Outcome.NACK:
            nack = info.state.last_nack
            assert nack is not None
            self.cache.note_nack(info.node_id, nack)
            logger.warning(
                "Envoy %s (node %r) rejected %s version %s, keeping its last good config: %s",
                info.peer,
                info.node_id,
                kind,
                nack.version,
                nack.error_detail,
                extra={"tenant": info.node_id},
            )
        elif outcome is sotw.Outcome.ACK:
            self.cache.note_ack(info.node_id, request.type_url)
            self.cache.note_stream_ack(info)
            logger.debug("xDS stream %d: %s %s", info.stream_id, outcome, kind)
        elif outcome is sotw.Outcome.UNKNOWN_TYPE:
            logger.debug("xDS stream %d asked for unserved type %s", info.stream_id, kind)
        else:
            logger.debug("xDS stream %d: %s %s", info.stream_id, outcome, kind)

    async def _push(self, info: callbacks.StreamInfo, context: Any) -> None:
        snap = self.cache.get_snapshot(info.node_id) if info.node_id else None
        if snap is None:
            return
        if info.delta is not None:
            await self._push_delta(info, info.delta, snap, context)
            return
        for push in info.state.plan(snap):
            nonce = str(next(self._ids))
            response = sotw_response(push, nonce)
            await context.write(response)
            info.state.sent(push, nonce)
            self._call_hooks("on_response", info, response)
            logger.debug(
                "xDS stream %d: sent %d %s version %s%s",
                info.stream_id,
                len(push.resources),
                snapshot.SHORT_NAMES[push.type_url],
                push.version,
                f" (kept until listeners move: {', '.join(push.retained)})"
                if push.retained
                else "",
            )

    async def _push_delta(
        self,
        info: callbacks.StreamInfo,
        state: delta.DeltaStreamState,
        snap: snapshot.Snapshot,
        context: Any,
    ) -> None:
        for planned in state.plan(snap):
            if not isinstance(planned, delta.DeltaPush):
                state.held(planned)
                continue
            nonce = str(next(self._ids))
            response = delta_response(planned, nonce)
            await context.write(response)
            state.sent(planned, nonce)
            self._call_hooks("on_response", info, response)
            logger.debug(
                "xDS delta stream %d: sent %d %s, removed %d, version %s",
                info.stream_id,
                len(planned.resources),
                snapshot.SHORT_NAMES[planned.type_url],
                len(planned.removed),
                planned.push.version,
            )

    def _call_hooks(self, name: str, *args: Any, fatal: bool = False) -> None:
        for hook in self.hooks:
            try:
                getattr(hook, name)(*args)
            except Exception:
                if fatal:
                    raise
                logger.exception("xDS callback %s.%s failed", type(hook).__name__, name)


def sotw_response(push: sotw.Push, nonce: str) -> Any:
    """The DiscoveryResponse carrying `push`."""
    return discovery_pb2.DiscoveryResponse(
        version_info=push.version,
        type_url=push.type_url,
        nonce=nonce,
        resources=[r.packed for r in push.resources],
        control_plane=base_pb2.ControlPlane(identifier=CONTROL_PLANE_ID),
    )


def delta_response(planned: delta.DeltaPush, nonce: str) -> Any:
    """The DeltaDiscoveryResponse carrying `planned`; resource versions are content digests."""
    return discovery_pb2.DeltaDiscoveryResponse(
        system_version_info=planned.push.version,
        type_url=planned.type_url,
        nonce=nonce,
        resources=[
            discovery_pb2.Resource(name=r.name, version=r.digest, resource=r.packed)
            for r in planned.resources
        ],
        removed_resources=planned.removed,
        control_plane=base_pb2.ControlPlane(identifier=CONTROL_PLANE_ID),
    )


def _certified_node(context: Any) -> str | None:
    """The node id the peer's (verified) client certificate names, if any."""
    uris = context.auth_context().get("peer_uri") or ()
    return identity.node_of(u.decode("utf-8", "replace") for u in uris)


class _StreamError(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class _Inbox:
    """A stream's requests and wake-ups, in arrival order."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.woken = False

    def wake(self) -> None:
        # Coalesce: one pending wake-up is enough, the stream plans against the latest snapshot.
        if not self.woken:
            self.woken = True
            self.queue.put_nowait(_SNAPSHOT_CHANGED)


async def _read(requests: AsyncIterator[Any], inbox: asyncio.Queue[Any]) -> None:
    try:
        async for request in requests:
            inbox.put_nowait(request)
    except (grpc.RpcError, ConnectionError) as e:  # the peer went away: end the stream
        logger.debug("xDS stream read ended: %s", e)
    inbox.put_nowait(_END)


class _Servicer(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):  # type: ignore[misc]
    def __init__(self, server: XdsServer) -> None:
        self._server = server

    async def StreamAggregatedResources(self, request_iterator: Any, context: Any) -> None:
        try:
            await self._server.serve_stream(request_iterator, context)
        except _StreamError as e:
            await context.abort(e.code, str(e))

    async def DeltaAggregatedResources(self, request_iterator: Any, context: Any) -> None:
        try:
            await self._server.serve_stream(request_iterator, context, incremental=True)
        except _StreamError as e:
            await context.abort(e.code, str(e))
