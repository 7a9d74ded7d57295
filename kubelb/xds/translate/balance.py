"""Which Envoy clusters to emit and what each TCP/UDP listener forwards to.

Most IR clusters map one to one onto an Envoy cluster, and a TCP listener with several IR
clusters (one per LoadBalancer endpoint entry) spreads connections with `weighted_clusters` of
equal weights. Two cases cannot be expressed that way, so the listener's clusters are merged into
one Envoy cluster named `<listener>-merged`, whose endpoint weights give each IR cluster an equal
share (see `endpoint.member_weights`):

- UDP: `udp_proxy` routes a session to exactly one cluster (its `Route` action has no weighted
  form), so a second endpoint entry would otherwise be ignored.
- TCP with source-IP persistence: `weighted_clusters` picks a cluster at random per connection,
  which would break stickiness across entries; one Maglev ring over all endpoints keeps it.

Member clusters are emitted on their own only when something else refers to them directly. A
backend runs Maglev (`persistent`) when a listener with source-IP persistence forwards or routes
to it, so that the listener's source-IP hash has a ring to pick from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kubelb.ir import proxy
from kubelb.xds.translate import common, endpoint

MERGED_SUFFIX = "-merged"


@dataclass(frozen=True, slots=True)
class Backend:
    """One Envoy cluster: options from `cluster` (synthetic when merged) and weighted endpoints."""

    cluster: proxy.Cluster
    endpoints: tuple[tuple[proxy.Endpoint, int | None], ...]
    merged: bool = False
    persistent: bool = False

    @property
    def name(self) -> str:
        return self.cluster.name

    @property
    def uses_dns(self) -> bool:
        return any(not e.is_ip for e, _ in self.endpoints)


@dataclass(frozen=True, slots=True)
class Plan:
    backends: tuple[Backend, ...]
    # Listener name -> Envoy cluster names it forwards to (several means equal weights).
    targets: dict[str, tuple[str, ...]]


def plan(config: proxy.ProxyConfig) -> Plan:
    by_name = {c.name: c for c in config.clusters}
    targets: dict[str, tuple[str, ...]] = {}
    merged: list[Backend] = []
    direct: set[str] = set()
    merged_members: set[str] = set()
    persistent: set[str] = set()
    for li in config.listeners:
        if li.protocol in (proxy.Protocol.HTTP, proxy.Protocol.TLS):
            direct.update(li.route_clusters)
            if li.source_ip_persistence:
                persistent.update(li.route_clusters)
            continue
        names = sorted(dict.fromkeys(li.clusters))
        members = [by_name[n] for n in names]
        if len(members) > 1 and needs_merge(li):
            backend = merge(li, members)
            if backend.name in by_name:
                raise common.TranslateError(
                    f"listener {li.name!r}: merged cluster name {backend.name!r} is already "
                    "an IR cluster name"
                )
            merged.append(backend)
            merged_members.update(names)
            targets[li.name] = (backend.name,)
        else:
            direct.update(names)
            targets[li.name] = tuple(names)
            if li.source_ip_persistence:
                persistent.update(names)
    referenced = direct | merged_members
    singles = [
        Backend(
            cluster=c,
            endpoints=tuple(endpoint.weighted_endpoints([c])),
            persistent=c.name in persistent,
        )
        for c in config.clusters
        if c.name in direct or c.name not in referenced
    ]
    backends = sorted([*singles, *merged], key=lambda b: b.name)
    return Plan(backends=tuple(backends), targets=targets)


def needs_merge(li: proxy.Listener) -> bool:
    """Several clusters behind `li` must become one Envoy cluster (see the module docstring)."""
    return li.protocol is proxy.Protocol.UDP or li.source_ip_persistence


def merge(li: proxy.Listener, members: Sequence[proxy.Cluster]) -> Backend:
    """One cluster for all `members`. Entries of one LoadBalancer share their options; where
    they differ the safer choice wins (the longest connect timeout, the first health check and
    PROXY protocol setting in name order). It runs Maglev when the listener is persistent."""
    health_checks = [m.health_check for m in members if m.health_check is not None]
    proxy_protocols = [m.proxy_protocol for m in members if m.proxy_protocol is not None]
    synthetic = proxy.Cluster(
        name=f"{li.name}{MERGED_SUFFIX}",
        protocol=li.protocol,
        endpoints=tuple(e for m in members for e in m.endpoints),
        connect_timeout_seconds=max(m.connect_timeout_seconds for m in members),
        health_check=health_checks[0] if health_checks else None,
        proxy_protocol=proxy_protocols[0] if proxy_protocols else None,
    )
    return Backend(
        cluster=synthetic,
        endpoints=tuple(endpoint.weighted_endpoints(members)),
        merged=True,
        persistent=li.source_ip_persistence,
    )
