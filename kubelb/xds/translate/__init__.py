"""Pure translation of one `ir.proxy.ProxyConfig` into Envoy v3 resources. No I/O, no clock.

`translate(config)` drops conflicting listeners (`proxy.drop_conflicting_listeners`), validates
the rest, then builds one module per Envoy concept: `listener` (TCP/UDP), `http` (HTTP
listeners), `cluster`, `endpoint`, `healthcheck`, `proxy_protocol`, `accesslog`; `balance`
decides which Envoy clusters exist. Output is deterministic: each tuple sorted by name, equal IR
in, byte-equal resources out. `render` turns the result into canonical JSON/YAML.
"""

from __future__ import annotations

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
    `endpoints` envoy.config.endpoint.v3.ClusterLoadAssignment (only for EDS clusters).
    """

    listeners: tuple[Any, ...] = ()
    clusters: tuple[Any, ...] = ()
    endpoints: tuple[Any, ...] = ()


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
    persistent = {b.name for b in plan.backends if b.cluster.source_ip_persistence}
    listeners = [_listener(li, plan.targets, persistent) for li in config.listeners]
    http_options = http.upstream_options(config)
    clusters = [cluster.build_cluster(b, http_options.get(b.name)) for b in plan.backends]
    endpoints = [cluster.build_load_assignment(b) for b in plan.backends if not b.uses_dns]
    return Resources(
        listeners=tuple(sorted(listeners, key=lambda r: r.name)),
        clusters=tuple(sorted(clusters, key=lambda r: r.name)),
        endpoints=tuple(sorted(endpoints, key=lambda r: r.cluster_name)),
    )


def _listener(li: proxy.Listener, targets: dict[str, tuple[str, ...]], persistent: set[str]) -> Any:
    if li.protocol is proxy.Protocol.HTTP:
        return http.build_http_listener(li, persistent)
    names = targets[li.name]
    # Hashing by source IP only matters when the chosen cluster runs Maglev.
    persistence = any(n in persistent for n in names)
    if li.protocol is proxy.Protocol.UDP:
        (name,) = names
        return listener.build_udp_listener(li, name, persistence=persistence)
    return listener.build_tcp_listener(li, names, persistence=persistence)
