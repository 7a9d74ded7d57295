"""What a tenant's Routes ask of its L7 entry point, the management Service
`envoy-<tenant-ns>-l7`. Pure: no I/O.

Which ports it needs (80 for Ingress, each listener port of the Gateway `kubelb`), which source
kinds the Config and Tenant let it serve (`ingress.disable`, `gatewayAPI.disable`: either
disables), which ports other management Services already hold at its address (`taken_ports`),
and the Service itself, shaped as the infrastructure says (`infrastructure.ServiceShape`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from kubelb.api import config as api_config, labels, route as api_route, tenant as api_tenant
from kubelb.irbuild import routes as irroutes
from kubelb.kube import objects
from kubelb.manager import infrastructure, lbservice
from kubelb.util import naming

# On the entry Service, besides the management Services' labels (an empty lb-name: no
# LoadBalancer owns it).
ENTRY_LABEL = labels.L7_ENTRY
INGRESS_PORT = 80
GATEWAY_NAME = "kubelb"  # the one Gateway a tenant may have (upstream CE)
GATEWAY_API_KINDS = frozenset({"Gateway", "HTTPRoute", "GRPCRoute", "TLSRoute"})


def entry_service_name(namespace: str) -> str:
    return naming.truncate(f"{lbservice.SERVICE_PREFIX}{namespace}-l7")


def route_settings(
    config: api_config.Config | None, tenant: api_tenant.Tenant | None
) -> irroutes.RouteSettings:
    envoy = (config.spec if config is not None else api_config.ConfigSpec()).envoy_proxy
    return irroutes.RouteSettings(
        ingress_enabled=disabled_by("Ingress", config, tenant) is None,
        gateway_api_enabled=disabled_by("HTTPRoute", config, tenant) is None,
        http=irroutes.http_options(envoy),
    )


def disabled_by(
    kind: str, config: api_config.Config | None, tenant: api_tenant.Tenant | None
) -> str | None:
    """Why Routes of source `kind` are not served ("the Tenant (spec.ingress.disable)"), or
    None when they are."""
    field = "gatewayAPI" if kind in GATEWAY_API_KINDS else "ingress" if kind == "Ingress" else None
    if field is None:
        return None
    for who, obj in (("Config", config), ("Tenant", tenant)):
        settings = None
        if obj is not None:
            settings = obj.spec.gateway_api if field == "gatewayAPI" else obj.spec.ingress
        if settings is not None and settings.disable:
            return f"the {who} (spec.{field}.disable)"
    return None


def source_of(route: api_route.Route) -> Mapping[str, Any]:
    source = route.spec.source.kubernetes
    return source.resource if source is not None else {}


def enabled(kind: Any, settings: irroutes.RouteSettings) -> bool:
    if kind == "Ingress":
        return settings.ingress_enabled
    return kind in GATEWAY_API_KINDS and settings.gateway_api_enabled


def requested_ports(
    namespace: str, routes: Sequence[api_route.Route], settings: irroutes.RouteSettings
) -> tuple[int, ...]:
    """The ports the tenant's entry needs: 80 for Ingress, the served Gateway's HTTP listener
    ports (as the builder decides which Gateway and listeners it serves)."""
    return tuple(sorted(irroutes.requested_ports(namespace, routes, settings)))


def desired_entry_service(
    namespace: str,
    listen: Mapping[int, int],
    shape: infrastructure.ServiceShape,
    load_balancer_class: str | None,
    *,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The tenant's L7 entry Service: each requested port to the port Envoy binds for it;
    `annotations`: external-dns's, for the LoadBalancer hostnames it serves."""
    ports = [{"name": f"http-{port}", "port": port, "protocol": "TCP", "targetPort": target}
             for port, target in sorted(listen.items())]  # fmt: skip
    spec: dict[str, Any] = {
        "type": "LoadBalancer",
        "selector": lbservice.envoy_selector(namespace) if shape.selector else None,
        "ports": ports,
    }
    if not shape.node_ports:
        spec["allocateLoadBalancerNodePorts"] = False
    if load_balancer_class:
        spec["loadBalancerClass"] = load_balancer_class
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": entry_service_name(namespace),
            "namespace": namespace,
            "labels": {
                labels.APP_NAME: namespace,
                labels.MANAGED_BY: labels.MANAGED_BY_VALUE,
                labels.LB_NAME: "",
                labels.LB_NAMESPACE: namespace,
                ENTRY_LABEL: "true",
            },
            **({"annotations": dict(annotations)} if annotations else {}),
        },
        "spec": spec,
    }


def taken_ports(
    services: Iterable[objects.RawObject], address: str | None, entry_name: str, namespace: str
) -> frozenset[int]:
    """Ports other management Services hold at `address` (the LoadBalancers' listeners there;
    None: wherever they are)."""
    taken: set[int] = set()
    for svc in services:
        if objects.name(svc) == entry_name and objects.namespace(svc) == namespace:
            continue
        status = svc.get("status") or {}
        ingress = (status.get("loadBalancer") or {}).get("ingress") or ()
        if address is not None and not any(
            isinstance(e, dict) and address in (e.get("ip"), e.get("hostname")) for e in ingress
        ):
            continue
        for port in (svc.get("spec") or {}).get("ports") or ():
            if isinstance(port, dict) and isinstance(port.get("port"), int):
                taken.add(int(port["port"]))
    return frozenset(taken)
