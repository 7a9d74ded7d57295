"""Pure translation of one `ir.proxy.ProxyConfig` into Envoy v3 resources. No I/O, no clock."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Resources:
    """Envoy resources for one node, each tuple sorted by resource name.

    `listeners` are envoy.config.listener.v3.Listener, `clusters` envoy.config.cluster.v3.Cluster,
    `endpoints` envoy.config.endpoint.v3.ClusterLoadAssignment (only for EDS clusters).
    """

    listeners: tuple[Any, ...] = ()
    clusters: tuple[Any, ...] = ()
    endpoints: tuple[Any, ...] = ()
