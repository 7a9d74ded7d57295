"""The management Service `envoy-<lb>` of a LoadBalancer, and the LoadBalancer's status. Pure.

Input: a LoadBalancer, its allocated Envoy listener ports, the effective tenant settings and the
live Service (if any). Output: raw Service and status dicts for the writer. The Service receives
the external address (from MetalLB, a cloud, or the process deployer) and targets the tenant's
Envoy pods on the allocated ports; its status is copied back into the LoadBalancer's status,
from which the agent copies it to the tenant's Service.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubelb.api import common as api_common, labels, loadbalancer as api_lb, ports as api_ports
from kubelb.manager import effective as tenant_effective, propagation
from kubelb.util import naming

SERVICE_PREFIX = "envoy-"
# Service types with external traffic, the only ones externalTrafficPolicy applies to.
_EXTERNAL_TYPES = (api_lb.ServiceType.LOAD_BALANCER, api_lb.ServiceType.NODE_PORT)


def service_name(lb_name: str) -> str:
    return naming.truncate(f"{SERVICE_PREFIX}{lb_name}")


def envoy_selector(tenant_namespace: str) -> dict[str, str]:
    """Labels of the tenant's Envoy pods (upstream: app.kubernetes.io/name=<tenant-ns>)."""
    return {labels.APP_NAME: tenant_namespace}


def service_port_name(port: api_lb.LoadBalancerPort) -> str:
    if port.name:
        return port.name
    return f"{port.port}-{str(port.protocol).lower()}"


def desired_service(
    lb: api_lb.LoadBalancer,
    listen_ports: Mapping[api_ports.PortKey, int],
    effective: tenant_effective.Effective,
    live: Mapping[str, Any] | None,
    *,
    node_ports: bool = True,
    selector: bool = True,
    recorded: str | None = None,
) -> dict[str, Any]:
    """The Service as it should be; third-party annotations and allocated nodePorts on `live`
    are kept, so another controller's work on the Service is never undone. `node_ports=False`
    asks for no NodePorts on a LoadBalancer Service (the process deployer: nothing routes
    through nodes, and each Service would hold NodePorts from a cluster-wide range of ~2,700).
    `selector=False` sets `spec.selector` to None (the process deployer: no Envoy pods to
    select, and a selector makes kube-controller-manager write an Endpoints and an
    EndpointSlice per Service); None rather than absent, so that a Service which still has
    the selector differs from the desired one and is updated (the apply then drops it).
    The propagated annotations come with their record (`propagation.with_record`; `recorded`:
    the live Service's), so one the LoadBalancer or the settings drop is removed by the apply."""
    namespace = lb.metadata.namespace or ""
    live_meta = (live or {}).get("metadata", {})
    live_spec = (live or {}).get("spec", {})
    live_node_ports = {
        (p.get("name"), p.get("protocol", api_common.Protocol.TCP)): p.get("nodePort")
        for p in live_spec.get("ports", [])
    }
    annotations = dict(live_meta.get("annotations") or {})
    propagated = propagation.propagate(lb.metadata.annotations or {}, effective.annotations,
                                       "service")  # fmt: skip
    annotations.update(propagation.with_record(propagated, recorded))
    ports = []
    for port in lb.spec.ports:
        name = service_port_name(port)
        entry: dict[str, Any] = {
            "name": name,
            "port": port.port,
            "protocol": str(port.protocol),
            "targetPort": listen_ports[api_ports.port_key(port)],
        }
        node_port = live_node_ports.get((name, str(port.protocol)))
        if node_port:
            entry["nodePort"] = node_port
        ports.append(entry)
    spec: dict[str, Any] = {
        "type": lb.spec.type,
        "selector": envoy_selector(namespace) if selector else None,
        "ports": sorted(ports, key=lambda p: (p["name"], p["protocol"])),
    }
    if lb.spec.external_traffic_policy and lb.spec.type in _EXTERNAL_TYPES:
        spec["externalTrafficPolicy"] = str(lb.spec.external_traffic_policy)
    if not node_ports and lb.spec.type == api_lb.ServiceType.LOAD_BALANCER:
        spec["allocateLoadBalancerNodePorts"] = False
    if effective.load_balancer_class and lb.spec.type == api_lb.ServiceType.LOAD_BALANCER:
        spec["loadBalancerClass"] = effective.load_balancer_class
    lb_labels = lb.metadata.labels or {}
    service_labels = {
        **dict(live_meta.get("labels") or {}),
        labels.APP_NAME: namespace,
        labels.MANAGED_BY: labels.MANAGED_BY_VALUE,
        labels.LB_NAME: lb.metadata.name or "",
        labels.LB_NAMESPACE: namespace,
    }
    for key in (labels.ORIGIN_NAME, labels.ORIGIN_NAMESPACE):
        if key in lb_labels:
            service_labels[key] = lb_labels[key]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": service_name(lb.metadata.name or ""),
            "namespace": namespace,
            "labels": service_labels,
            "annotations": annotations,
        },
        "spec": spec,
    }


def desired_status_service_ports(
    lb: api_lb.LoadBalancer, listen_ports: Mapping[api_ports.PortKey, int]
) -> list[dict[str, Any]]:
    """`status.service.ports`: the Service ports plus the endpoint port each forwards to.

    Paired as the IR builder pairs them (`api_ports.pair`, KubeLB #91): the first endpoints
    entry that pairs a port gives its `upstreamTargetPort` (0 when none does). This list
    doubles as the persisted port allocation.
    """
    out = []
    for position, port in enumerate(lb.spec.ports):
        upstream = api_ports.upstream_port(port, position, lb.spec.endpoints)
        out.append(
            {
                "name": service_port_name(port),
                "port": port.port,
                "protocol": str(port.protocol),
                "targetPort": listen_ports[api_ports.port_key(port)],
                "upstreamTargetPort": upstream if upstream is not None else 0,
            }
        )
    return sorted(out, key=lambda p: (p["name"], p["protocol"]))


def recorded_ports(lb: api_lb.LoadBalancer) -> dict[api_ports.PortKey, int]:
    """The allocation persisted in the LB's status, keyed like `api_ports.port_key`."""
    # By name and protocol: a TCP and a UDP port may share a name.
    by_service_port = {
        (service_port_name(p), str(p.protocol)): api_ports.port_key(p) for p in lb.spec.ports
    }
    out: dict[api_ports.PortKey, int] = {}
    for p in lb.status.service.ports:
        key = by_service_port.get((p.name or "", str(p.protocol)))
        target = p.target_port
        if key is not None and isinstance(target, int):
            out[key] = target
    return out
