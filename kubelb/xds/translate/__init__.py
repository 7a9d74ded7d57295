"""Pure translation of one `ir.proxy.ProxyConfig` into Envoy v3 resources. No I/O, no clock.

`translate(config)` drops conflicting listeners (`proxy.drop_conflicting_listeners`), validates
the rest, then builds one module per Envoy concept: `listener` (TCP/UDP), `http` (HTTP
listeners), `cluster`, `endpoint`, `healthcheck`, `proxy_protocol`, `accesslog`; `balance`
decides which Envoy clusters exist. Output is deterministic: each tuple sorted by name, equal IR
in, byte-equal resources out. `render` turns the result into canonical JSON/YAML. Resources are
memoized per IR listener and backend (bounded), so the returned messages are shared: read-only.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from dataclasses import dataclass
from typing import Any

from kubelb.ir import proxy
from kubelb.xds.translate import balance, cluster, common, http, listener

logger = logging.getLogger(__name__)

TranslateError = common.TranslateError


@dataclass(frozen=True, slots=True)
class Resources:
    """Envoy resources for one node, each tuple sorted by resource name.

    `listeners` are envoy.config.listener.v3.Listener, `clusters` envoy.config.cluster.v3.Cluster,
    `endpoints` envoy.config.endpoint.v3.ClusterLoadAssignment (only for EDS clusters), `routes`
    envoy.config.route.v3.RouteConfiguration (one per HTTP listener, served by RDS).
    """

    listeners: tuple[Any, ...] = ()
    clusters: tuple[Any, ...] = ()
    endpoints: tuple[Any, ...] = ()
    routes: tuple[Any, ...] = ()


def translate(config: proxy.ProxyConfig) -> Resources:
    """Envoy resources for `config`. Raises TranslateError (all problems in one message) when the
    IR is inconsistent; listeners that conflict on a bind address are dropped, not errors."""
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
    return Resources(
        listeners=tuple(sorted(listeners, key=lambda r: r.name)),
        clusters=tuple(sorted(clusters, key=lambda r: r.name)),
        endpoints=tuple(sorted(endpoints, key=lambda r: r.cluster_name)),
        routes=tuple(sorted(routes, key=lambda r: r.name)),
    )


def clear_cache() -> None:
    """Forget every memoized resource (benchmarks measuring a cold translation)."""
    for cached in (
        _tcp_udp_listener,
        _http_listener,
        _route_configuration,
        _cluster,
        _load_assignment,
    ):
        cached.cache_clear()


def _listener(li: proxy.Listener, targets: dict[str, tuple[str, ...]]) -> Any:
    if li.protocol is proxy.Protocol.HTTP:
        # Without its routes (nor persistence, which only the routes carry): a route change
        # leaves the listener's message, and its packing in the snapshot, as it was.
        return _http_listener(dataclasses.replace(li, routes=(), source_ip_persistence=False))
    return _tcp_udp_listener(li, targets[li.name])


# Each resource depends only on its hashable, frozen IR inputs, so a tenant's unchanged listeners
# and clusters are not built again when one LoadBalancer changes, and the snapshot can keep their
# packed bytes (`Snapshot.from_resources(..., previous=...)`). Bounded: a few times the listeners
# of a large manager. The messages are shared between calls: never modify one.
_CACHE_SIZE = 8192


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _tcp_udp_listener(li: proxy.Listener, names: tuple[str, ...]) -> Any:
    if li.protocol is proxy.Protocol.UDP:
        (name,) = names
        return listener.build_udp_listener(li, name)
    return listener.build_tcp_listener(li, names)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _http_listener(li: proxy.Listener) -> Any:
    return http.build_http_listener(li)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _route_configuration(li: proxy.Listener) -> Any:
    return http.build_route_configuration(li)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _cluster(backend: balance.Backend, http_options: proxy.HTTPOptions | None) -> Any:
    return cluster.build_cluster(backend, http_options)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _load_assignment(backend: balance.Backend) -> Any:
    return cluster.build_load_assignment(backend)
