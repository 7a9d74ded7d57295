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

from kubelb.ir import tls


class Protocol(StrEnum):
    TCP = "TCP"
    UDP = "UDP"
    HTTP = "HTTP"
    # TLS passthrough: connections routed by their SNI (`Listener.sni_routes`), not terminated.
    TLS = "TLS"


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
class UpstreamTLS:
    """TLS from the proxy to a cluster's endpoints. `sni` is sent as the server name (None: no
    SNI). With `verify`, the endpoint's chain must lead to `ca_pem` (PEM certificates, required:
    Envoy matches no name against system roots) and, when `sni` is set, its certificate must
    name `sni`; without `verify` any certificate is accepted. The CA bundle is inline: CA
    certificates are public, and both data planes then take the IR alone."""

    sni: str | None = None
    verify: bool = True
    ca_pem: str | None = None


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
    tls: UpstreamTLS | None = None  # None: plain text

    @property
    def uses_dns(self) -> bool:
        """Hostname endpoints are resolved by the data plane; IP-only clusters are static."""
        return any(not e.is_ip for e in self.endpoints)


class PathMatchKind(StrEnum):
    EXACT = "Exact"
    # Whole segments: `/a` matches `/a`, `/a/` and `/a/b`, never `/ab`.
    PREFIX = "PathPrefix"
    REGEX = "RegularExpression"


class ValueMatchKind(StrEnum):
    EXACT = "Exact"
    REGEX = "RegularExpression"


@dataclass(frozen=True, slots=True, kw_only=True)
class PathMatch:
    """A request path condition. A PREFIX value is `/` or has no trailing `/`; a REGEX must
    match the whole path (RE2 syntax: the subset both data planes agree on)."""

    kind: PathMatchKind = PathMatchKind.PREFIX
    value: str = "/"


@dataclass(frozen=True, slots=True, kw_only=True)
class HeaderMatch:
    """A request header condition. `name` is lower-case; a header sent on several lines holds
    when one line matches, each line compared whole (Envoy 1.40's behaviour)."""

    name: str
    value: str
    kind: ValueMatchKind = ValueMatchKind.EXACT


@dataclass(frozen=True, slots=True, kw_only=True)
class QueryParamMatch:
    """A query parameter condition; `name` is case-sensitive and the first occurrence counts."""

    name: str
    value: str
    kind: ValueMatchKind = ValueMatchKind.EXACT


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteMatch:
    """Every condition must hold (AND). The default matches every request."""

    path: PathMatch = PathMatch()
    headers: tuple[HeaderMatch, ...] = ()
    query_params: tuple[QueryParamMatch, ...] = ()
    method: str | None = None  # upper-case HTTP method


@dataclass(frozen=True, slots=True, kw_only=True)
class HeaderModifier:
    """Edits applied in this order: remove, then set (replaces), then add (appends).
    Header names are lower-case."""

    set: tuple[tuple[str, str], ...] = ()
    add: tuple[tuple[str, str], ...] = ()
    remove: tuple[str, ...] = ()


class PathRewriteKind(StrEnum):
    FULL = "ReplaceFullPath"
    # Replaces the part of the path the route's PREFIX match matched; only on such routes.
    PREFIX = "ReplacePrefixMatch"


@dataclass(frozen=True, slots=True, kw_only=True)
class PathRewrite:
    kind: PathRewriteKind
    value: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Redirect:
    """Answer with a redirect built from the request; None keeps the request's own part."""

    scheme: str | None = None
    hostname: str | None = None
    port: int | None = None
    path: PathRewrite | None = None
    status_code: int = 302


@dataclass(frozen=True, slots=True, kw_only=True)
class URLRewrite:
    """Rewrite the request before it goes upstream; None keeps the request's own part."""

    hostname: str | None = None
    path: PathRewrite | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class WeightedCluster:
    """A share of a route's requests: `weight` over the sum of the route's weights."""

    cluster: str
    weight: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class Mirror:
    """A copy of each request (every `percent`) goes to `cluster`; its answer is discarded."""

    cluster: str
    percent: float = 100.0


@dataclass(frozen=True, slots=True, kw_only=True)
class HTTPRoute:
    """One rule of a virtual host: when `match` holds, the route's action answers. The action is
    a redirect, else a fixed status (`direct_status`), else forwarding to `backends`. Filters
    (header edits, rewrite, mirrors) apply to forwarded requests; `response_headers` to every
    answer of the route."""

    name: str
    match: RouteMatch = RouteMatch()
    backends: tuple[WeightedCluster, ...] = ()
    request_headers: HeaderModifier | None = None
    response_headers: HeaderModifier | None = None
    rewrite: URLRewrite | None = None
    redirect: Redirect | None = None
    mirrors: tuple[Mirror, ...] = ()
    # e.g. 500 for a rule whose backends are all invalid (Gateway API).
    direct_status: int | None = None
    # The whole request; None uses the listener's `request_timeout_seconds`, 0 means none.
    timeout_seconds: float | None = None
    # One attempt at a backend; None means none beyond `timeout_seconds`.
    backend_timeout_seconds: float | None = None

    @property
    def clusters(self) -> tuple[str, ...]:
        """Every cluster the route sends to, mirrors included."""
        return (*(b.cluster for b in self.backends), *(m.cluster for m in self.mirrors))


@dataclass(frozen=True, slots=True, kw_only=True)
class VirtualHost:
    """The routes for a set of request hosts. A request's host selects one virtual host the way
    Envoy does: an exact domain, else the longest `*suffix`, else the longest `prefix*`, else
    `*`; a wildcard stands for at least one character. Domains are lower-case, without port,
    unique across a listener's virtual hosts. `routes` are in match order: the first whose match
    holds answers, none gives 404. Precedence (Gateway API's, Ingress') is the IR builder's."""

    name: str
    domains: tuple[str, ...]
    routes: tuple[HTTPRoute, ...]


WILDCARD_HOST = "*"


def group_by_hostname(
    entries: Iterable[tuple[tuple[str, ...], HTTPRoute]],
) -> tuple[VirtualHost, ...]:
    """Virtual hosts from routes that each name hosts (none: every host), keeping the given
    order: one per hostname holding its own routes and then the hostname-less ones as a
    fallback, and `*` holding the hostname-less routes (and those naming `*`)."""
    pairs = list(entries)
    catch_all = [r for hosts, r in pairs if not hosts]
    by_host: dict[str, list[HTTPRoute]] = {}
    for hosts, r in pairs:
        for host in dict.fromkeys(h.lower().rstrip(".") for h in hosts):
            by_host.setdefault(host, []).append(r)
    if catch_all:
        by_host.setdefault(WILDCARD_HOST, [])
    return tuple(
        VirtualHost(
            name=host,
            domains=(host,),
            routes=(*own, *(r for r in catch_all if r not in own)),
        )
        for host, own in sorted(by_host.items())
    )


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
class ServerCertificate:
    """The certificate (`ProxyConfig.secrets` entry named `secret`) presented to a client whose
    SNI is one of `server_names`: lower-case, exact or `*.suffix` (covering any number of
    labels). Empty `server_names`: the default, for any other SNI and for none."""

    server_names: tuple[str, ...]
    secret: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ListenerTLS:
    """TLS terminated on an HTTP listener (HTTPS). A handshake picks a certificate by SNI: an
    exact server name, else the longest `*.suffix` covering it, else the default; with none
    of these the handshake is refused. Requests then route by Host as on plain HTTP."""

    certificates: tuple[ServerCertificate, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class SNIRoute:
    """On a TLS (passthrough) listener: connections whose SNI is one of `server_names` (matched
    as `ServerCertificate`'s; empty: any other, and none) go to `backends` by weight."""

    name: str
    server_names: tuple[str, ...]
    backends: tuple[WeightedCluster, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Listener:
    """A bound socket. TCP and UDP listeners forward to `clusters` (equal weights, one per endpoint
    entry); HTTP listeners route requests with `virtual_hosts`.

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
    virtual_hosts: tuple[VirtualHost, ...] = ()
    http: HTTPOptions | None = None
    source_ip_persistence: bool = False
    # HTTP listeners only: terminate TLS (None: plain HTTP).
    tls: ListenerTLS | None = None
    # TLS (passthrough) listeners only, in no particular order (server names never overlap).
    sni_routes: tuple[SNIRoute, ...] = ()
    # Who asked for this listener, e.g. "tenant-a/my-lb": for errors and status, never for config.
    owner: str = ""

    @property
    def routes(self) -> tuple[HTTPRoute, ...]:
        """Every route of every virtual host (a route shared by hosts appears once per host)."""
        return tuple(r for vh in self.virtual_hosts for r in vh.routes)

    @property
    def route_clusters(self) -> tuple[str, ...]:
        """The clusters an HTTP listener's routes (or a TLS listener's SNI routes) send to,
        each once."""
        sni = (b.cluster for r in self.sni_routes for b in r.backends)
        return tuple(dict.fromkeys((*(c for r in self.routes for c in r.clusters), *sni)))

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
    # Key material the listeners' `tls` names (by `TLSSecret.name`); delivered by SDS.
    secrets: tuple[tls.TLSSecret, ...] = ()
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
        errors.extend(tls.config_errors(self.secrets, self.listeners))
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
    used = {c for li in kept for c in li.clusters} | {c for li in kept for c in li.route_clusters}
    named = {c.secret for li in kept if li.tls is not None for c in li.tls.certificates}
    return ProxyConfig(
        node_id=config.node_id,
        listeners=tuple(kept),
        clusters=tuple(c for c in config.clusters if c.name in used),
        secrets=tuple(s for s in config.secrets if s.name in named),
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
    if li.protocol is Protocol.TLS:
        errors.extend(_sni_route_errors(li, clusters))
    elif li.protocol is Protocol.HTTP:
        if not li.virtual_hosts:
            errors.append(f"{where}: an HTTP listener needs at least one virtual host")
        errors.extend(_virtual_host_errors(li, clusters))
    else:
        if not li.clusters:
            errors.append(f"{where}: a {li.protocol} listener needs at least one cluster")
        if li.virtual_hosts:
            errors.append(f"{where}: only HTTP listeners have virtual hosts")
        errors.extend(
            f"{where}: refers to unknown cluster {c!r}" for c in li.clusters if c not in clusters
        )
    if li.tls is not None and li.protocol is not Protocol.HTTP:
        errors.append(f"{where}: only HTTP listeners terminate TLS")
    if li.sni_routes and li.protocol is not Protocol.TLS:
        errors.append(f"{where}: only TLS listeners have SNI routes")
    return errors


def _virtual_host_errors(li: Listener, clusters: set[str]) -> list[str]:
    errors: list[str] = []
    where = f"listener {li.name!r}"
    errors.extend(
        f"{where}: duplicate virtual host name {n!r}"
        for n in _duplicates(vh.name for vh in li.virtual_hosts)
    )
    errors.extend(
        f"{where}: domain {d!r} is in several virtual hosts"
        for d in _duplicates(d for vh in li.virtual_hosts for d in vh.domains)
    )
    for vh in li.virtual_hosts:
        if not vh.domains:
            errors.append(f"{where}: virtual host {vh.name!r} has no domains")
        for r in vh.routes:
            errors.extend(f"{where}: route {r.name!r}: {e}" for e in _route_errors(r, clusters))
    return errors


def _route_errors(r: HTTPRoute, clusters: set[str]) -> list[str]:
    errors = [f"refers to unknown cluster {c!r}" for c in r.clusters if c not in clusters]
    actions = sum((bool(r.backends), r.redirect is not None, r.direct_status is not None))
    if actions != 1:
        errors.append("needs exactly one of backends, redirect and direct_status")
    if any(b.weight < 0 for b in r.backends):
        errors.append("backend weights must not be negative")
    if r.backends and not any(b.weight for b in r.backends):
        errors.append("at least one backend weight must be positive")
    if r.direct_status is not None and not 200 <= r.direct_status <= 599:
        errors.append(f"status {r.direct_status} is outside 200-599")
    if r.redirect is not None and r.redirect.status_code not in REDIRECT_CODES:
        errors.append(f"redirect status {r.redirect.status_code} is not one of {REDIRECT_CODES}")
    path = r.match.path
    if path.kind is PathMatchKind.PREFIX and (
        not path.value.startswith("/") or (path.value != "/" and path.value.endswith("/"))
    ):
        errors.append(f"path prefix {path.value!r} must start with `/` and not end with one")
    if path.kind is PathMatchKind.EXACT and not path.value.startswith("/"):
        errors.append(f"exact path {path.value!r} must start with `/`")
    rewrites = [x.path for x in (r.rewrite, r.redirect) if x is not None and x.path is not None]
    if any(p.kind is PathRewriteKind.PREFIX for p in rewrites) and (
        path.kind is not PathMatchKind.PREFIX
    ):
        errors.append("ReplacePrefixMatch needs a PathPrefix match")
    if any(t is not None and t < 0 for t in (r.timeout_seconds, r.backend_timeout_seconds)):
        errors.append("timeouts must not be negative")
    return errors


REDIRECT_CODES = (301, 302, 303, 307, 308)


def _sni_route_errors(li: Listener, clusters: set[str]) -> list[str]:
    where = f"listener {li.name!r}"
    errors = [] if li.sni_routes else [f"{where}: a TLS listener needs at least one SNI route"]
    errors.extend(tls.server_name_errors(where, [r.server_names for r in li.sni_routes]))
    for r in li.sni_routes:
        if not r.backends or not any(b.weight > 0 for b in r.backends):
            errors.append(f"{where}: SNI route {r.name!r} needs a backend of positive weight")
        errors.extend(
            f"{where}: SNI route {r.name!r} refers to unknown cluster {b.cluster!r}"
            for b in r.backends
            if b.cluster not in clusters
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
    if c.tls is not None and c.protocol is not Protocol.HTTP:
        errors.append(f"{where}: upstream TLS is only supported on HTTP clusters")
    if c.tls is not None and (c.tls.ca_pem is not None) != c.tls.verify:
        errors.append(f"{where}: upstream TLS verification needs a CA bundle, and only it")
    return errors


def _duplicates(names: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    dups: list[str] = []
    for n in names:
        if n in seen and n not in dups:
            dups.append(n)
        seen.add(n)
    return dups
