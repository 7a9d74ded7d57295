"""Pure translation of one `ir.proxy.ProxyConfig` into Envoy v3 resources. No I/O, no clock.

`translate(config)` drops conflicting listeners (`proxy.drop_conflicting_listeners`), validates
the rest, then builds one module per Envoy concept: `listener` (TCP/UDP), `http` (HTTP
listeners), `tls` (HTTPS filter chains, passthrough listeners, SDS secrets), `cluster`,
`endpoint`, `healthcheck`, `proxy_protocol`, `accesslog`; `balance`
decides which Envoy clusters exist. Output is deterministic: each tuple sorted by name, equal IR
in, byte-equal resources out. `render` turns the result into canonical JSON/YAML. Resources are
memoized per IR listener and backend (bounded) as `Sealed` resources: serialized bytes, not
messages, which a large manager would otherwise hold twice over. `sealed(config)` hands those out
as they are (for `kubelb.xds.snapshot`); `translate(config)` parses them back into fresh messages.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2
from google.protobuf import any_pb2

from kubelb.ir import proxy, tls as ir_tls
from kubelb.xds.translate import balance, cluster, common, http, listener, tls

logger = logging.getLogger(__name__)

TranslateError = common.TranslateError


@dataclass(frozen=True, slots=True)
class Resources:
    """Envoy resources for one node, each tuple sorted by resource name.

    `listeners` are envoy.config.listener.v3.Listener, `clusters` envoy.config.cluster.v3.Cluster,
    `endpoints` envoy.config.endpoint.v3.ClusterLoadAssignment (only for EDS clusters), `routes`
    envoy.config.route.v3.RouteConfiguration (one per HTTP listener, served by RDS): messages
    from `translate`, `Sealed` resources from `sealed`.
    """

    listeners: tuple[Any, ...] = ()
    clusters: tuple[Any, ...] = ()
    endpoints: tuple[Any, ...] = ()
    routes: tuple[Any, ...] = ()
    # envoy.extensions.transport_sockets.tls.v3.Secret, served by SDS (TLS listeners name them).
    secrets: tuple[Any, ...] = ()


_TYPE_PREFIX = "type.googleapis.com/"
_EDS = 3  # envoy.config.cluster.v3.Cluster.DiscoveryType.EDS


@dataclass(frozen=True, slots=True)
class Sealed:
    """One resource as it goes on the wire: its deterministic serialization and a digest of it.

    Holds no message: a protobuf message costs several times its serialized size, and the
    memoized resources of a large manager live as long as it does.
    """

    name: str
    type_url: str
    value: bytes
    digest: str
    eds_name: str | None  # for an EDS cluster: the ClusterLoadAssignment it subscribes to

    @classmethod
    def of(cls, message: Any) -> Sealed:
        value = message.SerializeToString(deterministic=True)
        return cls(
            name=resource_name(message),
            type_url=_TYPE_PREFIX + message.DESCRIPTOR.full_name,
            value=value,
            digest=hashlib.sha256(value).hexdigest()[:16],
            eds_name=eds_name(message) if message.DESCRIPTOR.name == "Cluster" else None,
        )

    @property
    def packed(self) -> any_pb2.Any:
        """A new `Any` holding the bytes, for a response (not kept: see the class)."""
        return any_pb2.Any(type_url=self.type_url, value=self.value)

    def message(self, message_type: Any) -> Any:
        return message_type.FromString(self.value)


def resource_name(message: Any) -> str:
    """ClusterLoadAssignment is named by `cluster_name`, everything else by `name`."""
    name = (
        message.cluster_name if hasattr(message, "cluster_name") else getattr(message, "name", "")
    )
    if not isinstance(name, str) or not name:
        raise TranslateError(f"{type(message).__name__} without a name")
    return name


def eds_name(cluster: Any) -> str | None:
    """The ClusterLoadAssignment an EDS cluster subscribes to; None for other clusters."""
    if cluster.type != _EDS:
        return None
    return str(cluster.eds_cluster_config.service_name or cluster.name)


def translate(config: proxy.ProxyConfig) -> Resources:
    """Envoy resources for `config`, as messages of their own (the caller may modify them).
    Raises TranslateError (all problems in one message) when the IR is inconsistent; listeners
    that conflict on a bind address are dropped, not errors."""
    resources = sealed(config)
    return Resources(
        listeners=tuple(r.message(listener_pb2.Listener) for r in resources.listeners),
        clusters=tuple(r.message(cluster_pb2.Cluster) for r in resources.clusters),
        endpoints=tuple(r.message(endpoint_pb2.ClusterLoadAssignment) for r in resources.endpoints),
        routes=tuple(r.message(route_pb2.RouteConfiguration) for r in resources.routes),
        secrets=tuple(r.message(secret_pb2.Secret) for r in resources.secrets),
    )


def sealed(config: proxy.ProxyConfig) -> Resources:
    """As `translate`, but each resource a shared, memoized `Sealed` instead of a message."""
    config = proxy.drop_conflicting_listeners(config)
    for li in config.dropped_listeners:
        logger.warning(
            "dropping listener %s (%s:%d/%s, owner %r): another listener binds the same address",
            li.name, li.address, li.port, li.protocol, li.owner,
        )  # fmt: skip
    errors = config.validate()
    if errors:
        raise TranslateError("; ".join(errors))
    plan = balance.plan(config)
    listeners = [_listener(li, plan.targets) for li in config.listeners]
    http_options = http.upstream_options(config)
    clusters = [_cluster(b, http_options.get(b.name)) for b in plan.backends]
    endpoints = [_load_assignment(b) for b in plan.backends if not b.uses_dns]
    routes = [
        _route_configuration(li) for li in config.listeners if li.protocol is proxy.Protocol.HTTP
    ]
    secrets = [_secret(s) for s in config.secrets]
    return Resources(
        listeners=tuple(sorted(listeners, key=lambda r: r.name)),
        clusters=tuple(sorted(clusters, key=lambda r: r.name)),
        endpoints=tuple(sorted(endpoints, key=lambda r: r.name)),
        routes=tuple(sorted(routes, key=lambda r: r.name)),
        secrets=tuple(sorted(secrets, key=lambda r: r.name)),
    )


def clear_cache() -> None:
    """Forget every memoized resource (benchmarks measuring a cold translation)."""
    for cached in (
        _tcp_udp_listener,
        _http_listener,
        _passthrough_listener,
        _route_configuration,
        _cluster,
        _load_assignment,
        _secret,
    ):
        cached.cache_clear()


def _listener(li: proxy.Listener, targets: dict[str, tuple[str, ...]]) -> Sealed:
    if li.protocol is proxy.Protocol.HTTP:
        # Without its routes (nor persistence, which only the routes carry): a route change
        # leaves the listener's message, and its packing in the snapshot, as it was.
        bare = dataclasses.replace(li, virtual_hosts=(), source_ip_persistence=False)
        return _http_listener(bare)
    if li.protocol is proxy.Protocol.TLS:
        return _passthrough_listener(li)
    return _tcp_udp_listener(li, targets[li.name])


# Each resource depends only on its hashable, frozen IR inputs, so a tenant's unchanged listeners
# and clusters are not built again when one LoadBalancer changes, and the snapshot can keep their
# digests (the snapshot keeps the very `Sealed` objects). Bounded: a few times the listeners of a
# large manager.
_CACHE_SIZE = 8192


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _tcp_udp_listener(li: proxy.Listener, names: tuple[str, ...]) -> Sealed:
    if li.protocol is proxy.Protocol.UDP:
        (name,) = names
        return Sealed.of(listener.build_udp_listener(li, name))
    return Sealed.of(listener.build_tcp_listener(li, names))


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _http_listener(li: proxy.Listener) -> Sealed:
    return Sealed.of(http.build_http_listener(li))


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _passthrough_listener(li: proxy.Listener) -> Sealed:
    return Sealed.of(tls.build_passthrough_listener(li))


# Key material: memoized like the rest (a few KiB each), so an unchanged secret keeps its digest.
@functools.lru_cache(maxsize=_CACHE_SIZE)
def _secret(secret: ir_tls.TLSSecret) -> Sealed:
    return Sealed.of(tls.build_secret(secret))


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _route_configuration(li: proxy.Listener) -> Sealed:
    return Sealed.of(http.build_route_configuration(li))


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _cluster(backend: balance.Backend, http_options: proxy.HTTPOptions | None) -> Sealed:
    return Sealed.of(cluster.build_cluster(backend, http_options))


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _load_assignment(backend: balance.Backend) -> Sealed:
    return Sealed.of(cluster.build_load_assignment(backend))
