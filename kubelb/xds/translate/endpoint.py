"""Endpoints of one Envoy cluster: a ClusterLoadAssignment, sent over EDS (IP-only clusters) or
inlined as `load_assignment` (STRICT_DNS clusters).

Endpoints are de-duplicated and sorted (IPs numerically, IPv4 before IPv6, then hostnames) so the
output never depends on the order the IR builder happened to list them in. When one Envoy cluster
stands for several IR clusters (see `balance.py`), endpoint weights give each IR cluster an equal
share of traffic however many endpoints it has.
"""

from __future__ import annotations

import functools
import ipaddress
import math
from collections.abc import Iterable, Sequence

from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from google.protobuf import wrappers_pb2

from kubelb.ir import proxy
from kubelb.xds.translate import common

# Upper bound for the per-member total weight when the exact least common multiple is too large;
# keeps every weight >= 1 and the locality sum far below Envoy's uint32 limit.
MAX_MEMBER_WEIGHT = 1_000_000


def sort_key(endpoint: proxy.Endpoint) -> tuple[int, int, bytes, int]:
    return (*_address_key(endpoint.address), endpoint.port)


@functools.lru_cache(maxsize=65536)
def _address_key(address: str) -> tuple[int, int, bytes]:
    host = common.normalize_host(address)
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return (1, 0, host.encode())
    return (0, ip.version, ip.packed)


def unique_sorted(endpoints: Iterable[proxy.Endpoint]) -> list[proxy.Endpoint]:
    seen: dict[tuple[str, int], proxy.Endpoint] = {}
    for e in endpoints:
        seen.setdefault((common.normalize_host(e.address), e.port), e)
    return sorted(seen.values(), key=sort_key)


def member_weights(counts: Sequence[int]) -> list[int]:
    """Weight of each endpoint of member i so that every non-empty member gets the same total.

    Exact (the least common multiple of the counts, divided by each count) when that stays small,
    else rounded from MAX_MEMBER_WEIGHT. Empty members get 0 (they have no endpoints to weigh).
    """
    nonzero = [c for c in counts if c > 0]
    if not nonzero:
        return [0 for _ in counts]
    total = math.lcm(*nonzero)
    if total > MAX_MEMBER_WEIGHT:
        return [max(1, round(MAX_MEMBER_WEIGHT / c)) if c else 0 for c in counts]
    return [total // c if c else 0 for c in counts]


def weighted_endpoints(
    members: Sequence[proxy.Cluster],
) -> list[tuple[proxy.Endpoint, int | None]]:
    """Endpoints of an Envoy cluster built from `members`, with a weight when there are several.

    An endpoint listed by two members is one host whose weight is the sum of both shares.
    """
    if len(members) == 1:
        return [(e, None) for e in unique_sorted(members[0].endpoints)]
    per_member = [unique_sorted(m.endpoints) for m in members]
    weights = member_weights([len(eps) for eps in per_member])
    summed: dict[tuple[str, int], tuple[proxy.Endpoint, int]] = {}
    for eps, weight in zip(per_member, weights, strict=True):
        for e in eps:
            key = (common.normalize_host(e.address), e.port)
            previous = summed.get(key)
            summed[key] = (e, weight + (previous[1] if previous else 0))
    ordered = sorted(summed.values(), key=lambda item: sort_key(item[0]))
    return [(e, w) for e, w in ordered]


def build_load_assignment(
    name: str, endpoints: Sequence[tuple[proxy.Endpoint, int | None]]
) -> endpoint_pb2.ClusterLoadAssignment:
    # Upstream addresses keep the default (TCP) protocol even for UDP: udp_proxy only reads the
    # IP and port, and Envoy documents endpoints that way.
    lb_endpoints = [_lb_endpoint(e, w) for e, w in endpoints]
    localities = [endpoint_components_pb2.LocalityLbEndpoints(lb_endpoints=lb_endpoints)]
    return endpoint_pb2.ClusterLoadAssignment(
        cluster_name=name, endpoints=localities if lb_endpoints else []
    )


def _lb_endpoint(e: proxy.Endpoint, weight: int | None) -> endpoint_components_pb2.LbEndpoint:
    lb = endpoint_components_pb2.LbEndpoint(
        endpoint=endpoint_components_pb2.Endpoint(address=common.socket_address(e.address, e.port))
    )
    if weight is not None:
        lb.load_balancing_weight.CopyFrom(wrappers_pb2.UInt32Value(value=weight))
    return lb
