"""Data-plane-neutral IR: what one proxy node (a tenant, or the host in standalone mode) must serve.

Input: built by `kubelb.irbuild` from API objects. Output: consumed by `kubelb.xds.translate`
(Envoy) and `kubelb.dataplane` (the built-in Python proxy). Plain frozen data holding tuples, so
two IRs compare with `==` and nothing is ever copied defensively. Names derive from stable
identity, never from list positions, so an unrelated change never renames a listener or cluster.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum


class Protocol(StrEnum):
    TCP = "TCP"
    UDP = "UDP"
    HTTP = "HTTP"


class ProxyProtocol(StrEnum):
    """PROXY protocol header sent to upstream endpoints."""

    V2 = "v2"


class UpstreamProtocol(StrEnum):
    """How an HTTP listener talks to its upstream endpoints."""

    HTTP1 = "HTTP1"
    HTTP2 = "HTTP2"


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    """One upstream: an IP address or a DNS hostname, and a port."""

    address: str
    port: int

    @property
    def is_ip(self) -> bool:
        return is_ip(self.address)


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthCheck:
    """Active TCP connect health check. Defaults are upstream KubeLB's."""

    timeout_seconds: float = 5.0
    interval_seconds: float = 5.0
    unhealthy_threshold: int = 3
    healthy_threshold: int = 2
    no_traffic_interval_seconds: float = 5.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Cluster:
    """A set of equivalent upstream endpoints and how to reach them."""

    name: str
    protocol: Protocol
    endpoints: tuple[Endpoint, ...] = ()
    connect_timeout_seconds: float = 5.0
    # None disables active checks (always the case for UDP, which has no connect to check).
    health_check: HealthCheck | None = None
    proxy_protocol: ProxyProtocol | None = None
    upstream_protocol: UpstreamProtocol = UpstreamProtocol.HTTP1

    @property
    def uses_dns(self) -> bool:
        """Hostname endpoints are resolved by the data plane; IP-only clusters are static."""
        return any(not e.is_ip for e in self.endpoints)


@dataclass(frozen=True, slots=True, kw_only=True)
class HTTPRoute:
    """An HTTP routing rule: requests matching host and path prefix go to a cluster."""

    name: str
    cluster: str
    hostnames: tuple[str, ...] = ()  # empty matches every host
    path_prefix: str = "/"


@dataclass(frozen=True, slots=True, kw_only=True)
class HTTPOptions:
    """Limits and timeouts of an HTTP listener. Defaults are upstream KubeLB's."""

    max_request_headers_kb: int = 8192
    max_request_headers_count: int = 4096
    max_response_headers_kb: int = 8192
    idle_timeout_seconds: float = 3600.0
    stream_idle_timeout_seconds: float = 3600.0
    request_timeout_seconds: float = 0.0  # 0 disables the per-request timeout
    xff_num_trusted_hops: int = 1
    websocket: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class Listener:
    """A bound socket. TCP and UDP listeners forward to `clusters` (equal weights, one per endpoint
    entry); HTTP listeners route requests with `routes`.

    `source_ip_persistence` keeps each client source IP on one upstream endpoint by consistent
    hashing: over the endpoints of all `clusters` together (TCP, UDP), or within the cluster a
    request's route picks (HTTP). It belongs to what the client connects to, so the clusters of
    one listener can never disagree about it.
    """

    name: str
    address: str
    port: int
    protocol: Protocol
    clusters: tuple[str, ...] = ()
    routes: tuple[HTTPRoute, ...] = ()
    http: HTTPOptions | None = None
    source_ip_persistence: bool = False
    # Who asked for this listener, e.g. "tenant-a/my-lb": for errors and status, never for config.
    owner: str = ""

    @property
    def bind_key(self) -> tuple[str, int, str]:
        """Two listeners with the same key cannot both be bound (UDP and TCP may share a port)."""
        transport = "UDP" if self.protocol is Protocol.UDP else "TCP"
        return (self.address, self.port, transport)


@dataclass(frozen=True, slots=True, kw_only=True)
class ProxyConfig:
    """Everything one data-plane node serves. `node_id` is the xDS node id."""

    node_id: str
    listeners: tuple[Listener, ...] = ()
    clusters: tuple[Cluster, ...] = ()
    # Listeners removed by `drop_conflicting_listeners`, kept for metrics and status.
    dropped_listeners: tuple[Listener, ...] = field(default=(), compare=False)

    def cluster(self, name: str) -> Cluster:
        for c in self.clusters:
            if c.name == name:
                return c
        raise KeyError(name)

    def validate(self) -> list[str]:
        """All consistency errors at once (empty list when valid)."""
        errors: list[str] = []
        cluster_names = [c.name for c in self.clusters]
        errors.extend(f"duplicate cluster name {n!r}" for n in _duplicates(cluster_names))
        errors.extend(
            f"duplicate listener name {n!r}" for n in _duplicates(li.name for li in self.listeners)
        )
        known = set(cluster_names)
        for li in self.listeners:
            errors.extend(_listener_errors(li, known))
        for c in self.clusters:
            errors.extend(_cluster_errors(c))
        return errors


def drop_conflicting_listeners(config: ProxyConfig) -> ProxyConfig:
    """Keep the first listener (in name order) per bind key; later ones are dropped, not merged.

    A wildcard address (0.0.0.0, ::) overlaps every address of its family on the same port and
    transport; IPv4 and IPv6 never overlap (Envoy binds `::` IPv6-only). Addresses compare in
    canonical form, so `::1` and `0:0:0:0:0:0:0:1` are the same.

    Two owners asking for the same address and port must never take each other down, so the
    loser is reported and everything else keeps serving.
    """
    seen: set[tuple[str, int, str]] = set()
    # (port, transport, is IPv6) of every kept listener, so a wildcard checks in O(1).
    families: set[tuple[int, str, bool]] = set()
    kept: list[Listener] = []
    dropped: list[Listener] = []
    for li in sorted(config.listeners, key=lambda x: x.name):
        key = _canonical_bind_key(li)
        address, port, transport = key
        family = (port, transport, _is_v6(address))
        if (
            key in seen
            or _wildcard_key(key) in seen
            or (address in _WILDCARDS and family in families)
        ):
            dropped.append(li)
            continue
        seen.add(key)
        families.add(family)
        kept.append(li)
    if not dropped:
        return config
    used = {c for li in kept for c in li.clusters} | {r.cluster for li in kept for r in li.routes}
    return ProxyConfig(
        node_id=config.node_id,
        listeners=tuple(kept),
        clusters=tuple(c for c in config.clusters if c.name in used),
        dropped_listeners=(*config.dropped_listeners, *dropped),
    )


@functools.lru_cache(maxsize=65536)
def is_ip(address: str) -> bool:
    # Cached: translators ask about every endpoint several times per translation.
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


_WILDCARDS = ("0.0.0.0", "::")


def _canonical_bind_key(li: Listener) -> tuple[str, int, str]:
    address, port, transport = li.bind_key
    if is_ip(address):
        address = str(ipaddress.ip_address(address))
    return (address, port, transport)


def _is_v6(address: str) -> bool:
    return ":" in address


def _wildcard_key(key: tuple[str, int, str]) -> tuple[str, int, str]:
    address, port, transport = key
    return ("::" if _is_v6(address) else "0.0.0.0", port, transport)


def _listener_errors(li: Listener, clusters: set[str]) -> list[str]:
    errors: list[str] = []
    where = f"listener {li.name!r}"
    if not 1 <= li.port <= 65535:
        errors.append(f"{where}: port {li.port} is outside 1-65535")
    if not is_ip(li.address):
        errors.append(f"{where}: bind address {li.address!r} is not an IP address")
    if li.protocol is Protocol.HTTP:
        if not li.routes:
            errors.append(f"{where}: an HTTP listener needs at least one route")
        errors.extend(
            f"{where}: route {r.name!r} refers to unknown cluster {r.cluster!r}"
            for r in li.routes
            if r.cluster not in clusters
        )
    else:
        if not li.clusters:
            errors.append(f"{where}: a {li.protocol} listener needs at least one cluster")
        if li.routes:
            errors.append(f"{where}: only HTTP listeners have routes")
        errors.extend(
            f"{where}: refers to unknown cluster {c!r}" for c in li.clusters if c not in clusters
        )
    return errors


def _cluster_errors(c: Cluster) -> list[str]:
    errors: list[str] = []
    where = f"cluster {c.name!r}"
    errors.extend(
        f"{where}: endpoint port {e.port} is outside 1-65535"
        for e in c.endpoints
        if not 1 <= e.port <= 65535
    )
    if c.protocol is Protocol.UDP and c.health_check is not None:
        errors.append(f"{where}: UDP clusters cannot have a TCP health check")
    if c.protocol is Protocol.UDP and c.proxy_protocol is not None:
        errors.append(f"{where}: PROXY protocol is only supported on TCP")
    if c.connect_timeout_seconds <= 0:
        errors.append(f"{where}: connect timeout must be positive")
    return errors


def _duplicates(names: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    dups: list[str] = []
    for n in names:
        if n in seen and n not in dups:
            dups.append(n)
        seen.add(n)
    return dups
