"""Each deployer's answer for a tenant's L7 entry point, the management Service
`envoy-<tenant-ns>-l7`: which ports Envoy binds for the requested ports, and where.

Pool deployers (process, standalone host): Envoy shares the host, so each requested port is bound
as it is, on the address the pool wrote into the Service's status. Kubernetes: Envoy pods bind
every interface on a port allocated for the tenant, kept in the Service's targetPorts (the
record a restart reads back), from a range below the LoadBalancers' (`manager.ports`), so the two
never meet; clients reach the Service's external address.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from kubelb.manager import infrastructure, ports

# Below the LoadBalancers' listener ports (10000 up), above the privileged ones.
L7_RANGE = (1024, ports.RANGE_START)
_OWNER = "l7"


def same_ports(requested: Collection[int]) -> dict[int, int]:
    return {p: p for p in requested}


def pool_entry(service: Mapping[str, Any] | None) -> infrastructure.RouteEntry | None:
    """The address the pool wrote into the Service's status, bound as it is."""
    ip = next(iter(_ingress(service)), None)
    return infrastructure.RouteEntry(ip, ip) if ip else None


def allocated_ports(
    requested: Collection[int], service: Mapping[str, Any] | None
) -> dict[int, int]:
    """Envoy pods' port for each requested port: the Service's targetPort when it has one, else
    a free one chosen from the port's number, stable across restarts."""
    recorded = {(str(p), "TCP"): t for p, t in _target_ports(service).items()}
    wanted = {_OWNER: [(str(p), "TCP") for p in requested]}
    allocation = ports.allocate(wanted, {_OWNER: recorded}, start=L7_RANGE[0], end=L7_RANGE[1])
    return {int(key[0]): port for key, port in allocation.ports[_OWNER].items()}


def cluster_entry(service: Mapping[str, Any] | None) -> infrastructure.RouteEntry | None:
    """Every interface of the Envoy pods, on the Service's targetPorts; reported at the
    Service's external address once it has one."""
    external = next(iter(_ingress(service)), None)
    if not external:
        return None
    return infrastructure.RouteEntry("0.0.0.0", external, _target_ports(service))


def _ingress(service: Mapping[str, Any] | None) -> list[str]:
    status = (service or {}).get("status") or {}
    entries = (status.get("loadBalancer") or {}).get("ingress") or ()
    return [str(e.get("ip") or e.get("hostname")) for e in entries
            if isinstance(e, dict) and (e.get("ip") or e.get("hostname"))]  # fmt: skip


def _target_ports(service: Mapping[str, Any] | None) -> dict[int, int]:
    out = {}
    for p in ((service or {}).get("spec") or {}).get("ports") or ():
        if isinstance(p, dict) and isinstance(p.get("port"), int):
            target = p.get("targetPort")
            if isinstance(target, int):
                out[int(p["port"])] = target
    return out
