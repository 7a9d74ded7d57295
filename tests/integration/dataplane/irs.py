"""IR builders for data-plane tests: listeners on free 127.0.0.1 ports in front of backends."""

from __future__ import annotations

import socket
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from kubelb.ir import proxy
from tests.integration.dataplane import backends


class HasPort(Protocol):
    port: int


def endpoints(servers: Sequence[HasPort]) -> tuple[proxy.Endpoint, ...]:
    return tuple(proxy.Endpoint(address="127.0.0.1", port=s.port) for s in servers)


def l4(
    protocol: proxy.Protocol, servers: Sequence[HasPort], *, port: int | None = None,
    name: str = "l4", source_ip_persistence: bool = False, **cluster: Any,
) -> proxy.ProxyConfig:  # fmt: skip
    kind = socket.SOCK_DGRAM if protocol is proxy.Protocol.UDP else socket.SOCK_STREAM
    return proxy.ProxyConfig(
        node_id="test",
        listeners=(
            proxy.Listener(
                name=name, address="127.0.0.1", port=port or backends.free_port(kind),
                protocol=protocol, clusters=(f"{name}-c",),
                source_ip_persistence=source_ip_persistence,
            ),
        ),
        clusters=(
            proxy.Cluster(
                name=f"{name}-c", protocol=protocol, endpoints=endpoints(servers), **cluster
            ),
        ),
    )  # fmt: skip


def http(
    routes: Sequence[tuple[str, Sequence[HasPort], tuple[str, ...], str]], *,
    port: int | None = None, options: proxy.HTTPOptions | None = None,
    source_ip_persistence: bool = False, **cluster: Any,
) -> proxy.ProxyConfig:  # fmt: skip
    """`routes`: (cluster name, servers, hostnames, path prefix) in any order."""
    return proxy.ProxyConfig(
        node_id="test",
        listeners=(
            proxy.Listener(
                name="web", address="127.0.0.1", port=port or backends.free_port(),
                protocol=proxy.Protocol.HTTP, http=options,
                source_ip_persistence=source_ip_persistence,
                virtual_hosts=simple_virtual_hosts((c, h, p) for c, _, h, p in routes),
            ),
        ),
        clusters=tuple(
            proxy.Cluster(name=c, protocol=proxy.Protocol.HTTP, endpoints=endpoints(s), **cluster)
            for c, s, _, _ in routes
        ),
    )  # fmt: skip


def simple_virtual_hosts(
    routes: Iterable[tuple[str, tuple[str, ...], str]],
) -> tuple[proxy.VirtualHost, ...]:
    """(cluster, hostnames, path prefix) in any order: longest prefix first, as for an Ingress."""
    return proxy.group_by_hostname(
        (
            hosts,
            proxy.HTTPRoute(
                name=f"r-{c}",
                match=proxy.RouteMatch(path=proxy.PathMatch(value=prefix)),
                backends=(proxy.WeightedCluster(cluster=c),),
            ),
        )
        for c, hosts, prefix in sorted(routes, key=lambda r: (-len(r[2]), r[0]))
    )


def address(config: proxy.ProxyConfig, index: int = 0) -> tuple[str, int]:
    li = config.listeners[index]
    return (li.address, li.port)


def l7(
    routes: Sequence[proxy.HTTPRoute | tuple[str, Sequence[proxy.HTTPRoute]]],
    clusters: dict[str, Sequence[HasPort]], *, options: proxy.HTTPOptions | None = None,
    port: int | None = None, source_ip_persistence: bool = False, **cluster: Any,
) -> proxy.ProxyConfig:  # fmt: skip
    """An HTTP listener with `routes` in match order: bare routes on the `*` virtual host, or
    (domain, routes) pairs each making a virtual host; `clusters` maps names to backends."""
    hosts: dict[str, list[proxy.HTTPRoute]] = {}
    for entry in routes:
        domain, rs = entry if isinstance(entry, tuple) else (proxy.WILDCARD_HOST, [entry])
        hosts.setdefault(domain, []).extend(rs)
    return proxy.ProxyConfig(
        node_id="test",
        listeners=(
            proxy.Listener(
                name="web", address="127.0.0.1", port=port or backends.free_port(),
                protocol=proxy.Protocol.HTTP, http=options,
                source_ip_persistence=source_ip_persistence,
                virtual_hosts=tuple(
                    proxy.VirtualHost(name=d, domains=(d,), routes=tuple(rs))
                    for d, rs in hosts.items()
                ),
            ),
        ),
        clusters=tuple(
            proxy.Cluster(name=c, protocol=proxy.Protocol.HTTP, endpoints=endpoints(s), **cluster)
            for c, s in clusters.items()
        ),
    )  # fmt: skip


def to(*clusters: str | tuple[str, int]) -> tuple[proxy.WeightedCluster, ...]:
    """Backends: cluster names (weight 1) or (name, weight) pairs."""
    return tuple(
        proxy.WeightedCluster(cluster=c) if isinstance(c, str)
        else proxy.WeightedCluster(cluster=c[0], weight=c[1])
        for c in clusters
    )  # fmt: skip
