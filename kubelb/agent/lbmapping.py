"""Pure mapping of a tenant LoadBalancer Service to its KubeLB LoadBalancer, as upstream's CCM
maps it, so an upstream agent and this one write the same objects.

Inputs: a raw Service (tenant cluster) and the agent's options. Outputs: `Mapping`, the desired
LoadBalancer as a raw object (or None with the reason it cannot exist yet) plus the ports that
were skipped and why; `needs_update(live, desired)`; `in_scope(service, ...)`.

The LoadBalancer is named by the Service UID in the tenant namespace, labelled with its origin
(name, namespace) and tenant, and carries the Service's annotations except kubectl's
last-applied-configuration. Each Service port becomes an LB port `{name, port, protocol}` and an
endpoint port `{name, nodePort, protocol}` of the one endpoint group `default`; unnamed ports are
named `<port>-<protocol lower>`. The endpoint addresses are the tenant's `Addresses/default`
(by reference) or, without the cloud provider, the Service's own load-balancer ingress inline.
`type` and `externalTrafficPolicy` are copied; sessionAffinity ClientIP -> persistence SourceIP.
It carries the manager's clean-up finalizer from the start.
"""

from __future__ import annotations

from collections.abc import Mapping as MappingABC
from dataclasses import dataclass
from typing import Any

from kubelb.api import addresses as api_addresses, finalizers, labels, loadbalancer, meta
from kubelb.kube import objects, writer

LOAD_BALANCER_CLASS = "kubelb"
ENDPOINTS_NAME = "default"
SUPPORTED_PROTOCOLS = ("TCP", "UDP")

# Reasons (Event reasons on the tenant Service) for a Service that cannot be mapped fully.
UNSUPPORTED_PROTOCOL = "UnsupportedProtocol"
NO_NODE_PORT = "NoNodePort"
NO_PORTS = "NoPorts"
WAITING_FOR_ADDRESS = "WaitingForServiceAddress"


@dataclass(frozen=True, slots=True)
class Problem:
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class Mapping:
    """The desired LoadBalancer (None: there must be none now, `blocker` says why) and the
    ports left out of it."""

    lb: objects.RawObject | None
    blocker: Problem | None = None
    skipped: tuple[Problem, ...] = ()


def in_scope(service: MappingABC[str, Any], *, use_loadbalancer_class: bool) -> bool:
    """True for a Service this agent serves: type LoadBalancer, and with
    `use_loadbalancer_class` only `loadBalancerClass: kubelb`."""
    spec = service.get("spec") or {}
    if spec.get("type") != "LoadBalancer":
        return False
    return not use_loadbalancer_class or spec.get("loadBalancerClass") == LOAD_BALANCER_CLASS


def port_name(port: MappingABC[str, Any]) -> str:
    name = str(port.get("name") or "")
    if name:
        return name.lower()
    return f"{port.get('port')}-{str(port.get('protocol') or 'TCP').lower()}"


def describe_port(port: MappingABC[str, Any]) -> str:
    return f"{port_name(port)} ({port.get('port')}/{port.get('protocol') or 'TCP'})"


def ingress_addresses(service: MappingABC[str, Any]) -> list[dict[str, str]]:
    """The Service's own `status.loadBalancer.ingress` as endpoint addresses (IP preferred)."""
    found: list[dict[str, str]] = []
    for item in objects.lookup(service, "status.loadBalancer.ingress") or ():
        if not isinstance(item, MappingABC):
            continue
        if item.get("ip"):
            found.append({"ip": str(item["ip"])})
        elif item.get("hostname"):
            found.append({"hostname": str(item["hostname"])})
    return found


def desired_load_balancer(
    service: MappingABC[str, Any], *, namespace: str, cloud_provider: bool = True
) -> Mapping:
    """The LoadBalancer for `service` in the tenant `namespace` (see the module docstring)."""
    spec = service.get("spec") or {}
    lb_ports: list[dict[str, Any]] = []
    endpoint_ports: list[dict[str, Any]] = []
    skipped: list[Problem] = []
    for port in spec.get("ports") or ():
        protocol = str(port.get("protocol") or "TCP")
        name = port_name(port)
        if protocol not in SUPPORTED_PROTOCOLS:
            skipped.append(
                Problem(
                    UNSUPPORTED_PROTOCOL,
                    f"port {describe_port(port)} skipped: KubeLB serves TCP and UDP only",
                )
            )
            continue
        if not port.get("nodePort"):
            skipped.append(
                Problem(
                    NO_NODE_PORT,
                    f"port {describe_port(port)} skipped: it has "
                    "no nodePort (spec.allocateLoadBalancerNodePorts is false?) "
                    "and KubeLB reaches Services through their NodePorts",
                )
            )
            continue
        lb_ports.append({"name": name, "port": port["port"], "protocol": protocol})
        endpoint_ports.append({"name": name, "port": port["nodePort"], "protocol": protocol})
    if not lb_ports:
        return Mapping(
            None, Problem(NO_PORTS, "the Service has no port KubeLB can serve"), tuple(skipped)
        )
    endpoints: dict[str, Any] = {"name": ENDPOINTS_NAME, "ports": endpoint_ports}
    if cloud_provider:
        endpoints["addressesReference"] = {"name": api_addresses.DEFAULT_NAME}
    else:
        inline = ingress_addresses(service)
        if not inline:
            return Mapping(
                None,
                Problem(
                    WAITING_FOR_ADDRESS,
                    "waiting for the Service's own "
                    "load balancer to publish an address in "
                    "status.loadBalancer.ingress (--enable-cloud-provider="
                    "false)",
                ),
                tuple(skipped),
            )
        endpoints["addresses"] = inline
    lb_spec: dict[str, Any] = {
        "endpoints": [endpoints],
        "ports": lb_ports,
        "type": spec.get("type") or "ClusterIP",
    }
    if spec.get("externalTrafficPolicy"):
        lb_spec["externalTrafficPolicy"] = spec["externalTrafficPolicy"]
    if spec.get("sessionAffinity") == "ClientIP":
        lb_spec["persistence"] = {"type": loadbalancer.PersistenceType.SOURCE_IP.value}
    annotations = {
        k: v for k, v in objects.annotations(service).items() if k != objects.LAST_APPLIED
    }
    lb = {
        "apiVersion": meta.API_VERSION,
        "kind": loadbalancer.LoadBalancer.KIND,
        "metadata": {
            "name": objects.uid(service),
            "namespace": namespace,
            "labels": origin_labels(service, namespace),
            "annotations": annotations,
            # The manager's clean-up finalizer, set at creation: the manager would add it as its
            # first write anyway, so this saves the API server a write and an event per
            # LoadBalancer. The manager still adds it to LoadBalancers created without it.
            "finalizers": [finalizers.CLEANUP],
        },
        "spec": lb_spec,
    }
    return Mapping(lb, None, tuple(skipped))


def origin_labels(service: MappingABC[str, Any], namespace: str) -> dict[str, str]:
    return {
        labels.ORIGIN_NAME: objects.name(service),
        labels.ORIGIN_NAMESPACE: objects.namespace(service),
        # Upstream's value: the tenant namespace (its "cluster name", prefix included).
        labels.TENANT: namespace,
    }


def origin_key(lb: MappingABC[str, Any]) -> objects.ObjectKey | None:
    """The tenant Service a LoadBalancer was made from (by its labels)."""
    lb_labels = objects.labels(lb)
    name, namespace = lb_labels.get(labels.ORIGIN_NAME), lb_labels.get(labels.ORIGIN_NAMESPACE)
    if not name or not namespace:
        return None
    return objects.ObjectKey(namespace, name)


def needs_update(live: MappingABC[str, Any], desired: MappingABC[str, Any]) -> bool:
    """True when `live` differs from `desired` in spec (order of lists aside), in annotations
    (exactly: a removed Service annotation is removed here too) or lacks a desired label."""
    live_labels = objects.labels(live)
    if any(live_labels.get(k) != v for k, v in objects.labels(desired).items()):
        return True
    if dict(objects.annotations(live)) != dict(objects.annotations(desired)):
        return True
    return not writer.equivalent(live.get("spec") or {}, desired.get("spec") or {})


def updated(live: objects.RawObject, desired: MappingABC[str, Any]) -> objects.RawObject:
    """`live` with the desired spec, annotations and labels (others' labels kept), ready to PUT
    with live's resourceVersion as the precondition."""
    live_meta = dict(objects.metadata(live))
    live_meta["labels"] = {**objects.labels(live), **objects.labels(desired)}
    live_meta["annotations"] = dict(objects.annotations(desired))
    return {**live, "metadata": live_meta, "spec": desired["spec"]}


def same_status(service_lb: Any, lb_lb: Any) -> bool:
    """Whether a Service's `status.loadBalancer` already shows the LoadBalancer's: order aside,
    and ignoring `ipMode: VIP`, which the API server fills in on Services (Kubernetes >= 1.29)."""
    return writer.equivalent(_without_default_ip_mode(service_lb),
                             _without_default_ip_mode(lb_lb))  # fmt: skip


def _without_default_ip_mode(status: Any) -> Any:
    if not isinstance(status, MappingABC):
        return {}
    ingress = [
        {k: v for k, v in item.items() if not (k == "ipMode" and v == "VIP")}
        if isinstance(item, MappingABC) else item
        for item in status.get("ingress") or ()
    ]  # fmt: skip
    return {**status, "ingress": ingress}


def with_hostname(lb_status: MappingABC[str, Any], hostname: Any) -> MappingABC[str, Any]:
    """The LoadBalancer's `status.loadBalancer` with its published hostname (`status.hostname`)
    on every ingress entry, as upstream's CCM shows it on the tenant's Service."""
    if not hostname or not isinstance(hostname, str):
        return lb_status
    ingress = [
        {**item, "hostname": hostname} if isinstance(item, MappingABC) else item
        for item in lb_status.get("ingress") or ()
    ]
    return {**lb_status, "ingress": ingress} if ingress else lb_status


def ingress_of(lb: MappingABC[str, Any] | None) -> list[Any]:
    if lb is None:
        return []
    return list(objects.lookup(lb, "status.loadBalancer.ingress") or ())


def ready_condition(lb: MappingABC[str, Any] | None) -> MappingABC[str, Any] | None:
    if lb is None:
        return None
    for condition in objects.lookup(lb, "status.conditions") or ():
        if isinstance(condition, MappingABC) and condition.get("type") == "Ready":
            return condition
    return None
