"""What a tenant's Routes ask of its L7 entry point, the management Service
`envoy-<tenant-ns>-l7`. Pure: no I/O.

Which ports it needs (80 for Ingress, each listener port of the Gateway `kubelb`), which source
kinds the Config and Tenant let it serve (`ingress.disable`, `gatewayAPI.disable`: either
disables), which ports other management Services already hold at its address (`taken_ports`),
and the Service itself, shaped as the infrastructure says (`infrastructure.ServiceShape`), with
its annotations (`entry_annotations`): kubelb's own (external-dns's), those the Config's and
Tenant's annotation settings let through from the served Routes' sources (filtered as upstream
filters the object it generates for each kind: `ingress`, `gateway`, `httproute`, `grpcroute`),
the oldest Route keeping a key that several set to different values (the others are told), then
the default annotations of those kinds, of `service` and of `all`. The keys kubelb sets there
(external-dns's included) are recorded on the Service (`propagation.RECORD`, as on the
LoadBalancers' Services: `propagation.with_record`), so a key no Route asks for any more, or
external-dns's once no hostname is served, is removed by the next apply while annotations
others set stay.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubelb.api import config as api_config, labels, route as api_route, tenant as api_tenant
from kubelb.irbuild import routes as irroutes
from kubelb.kube import objects
from kubelb.manager import effective, infrastructure, lbservice, propagation
from kubelb.util import naming

# On the entry Service, besides the management Services' labels (an empty lb-name: no
# LoadBalancer owns it).
ENTRY_LABEL = labels.L7_ENTRY
INGRESS_PORT = 80
GATEWAY_NAME = "kubelb"  # the one Gateway a tenant may have (upstream CE)
GATEWAY_API_KINDS = frozenset({"Gateway", "HTTPRoute", "GRPCRoute", "TLSRoute"})
# Upstream's resource names in the annotation settings, by source kind.
ANNOTATION_KINDS = {"Ingress": "ingress", "Gateway": "gateway", "HTTPRoute": "httproute",
                    "GRPCRoute": "grpcroute", "TLSRoute": "tlsroute"}  # fmt: skip
KUBELB_HOLDER = "KubeLB (external-dns's records of the tenant's LoadBalancer hostnames)"


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
    `annotations`: `entry_annotations`."""
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


@dataclass(frozen=True, slots=True)
class EntryAnnotations:
    annotations: dict[str, str]
    problems: Mapping[str, tuple[str, ...]]  # by Route name: the annotations it was refused


def entry_annotations(
    namespace: str,
    routes: Sequence[api_route.Route],
    settings: irroutes.RouteSettings,
    policy: effective.AnnotationPolicy,
    fixed: Mapping[str, str],
    recorded: str | None,
) -> EntryAnnotations:
    """The entry Service's annotations: `fixed` (kubelb's own), then what `policy` lets through
    from each served Route's source, oldest Route first (a key an older Route or kubelb holds
    with another value is refused to the newer: its problem), then the defaults of the served
    kinds, `service` and `all` for keys still unset, and the record of all these keys
    (`propagation.with_record`; `recorded`: the live Service's record, so that the keys it
    names and kubelb no longer sets are removed by the apply). `routes`: the tenant's own
    Routes (not the in-memory ones of its LoadBalancers' hostnames)."""
    service = entry_service_name(namespace)
    claims, kinds = [], []
    for route in sorted(routes, key=_age):
        source = source_of(route)
        kind = str(source.get("kind") or "")
        if kind not in ANNOTATION_KINDS or not enabled(kind, settings):
            continue
        kinds.append(ANNOTATION_KINDS[kind])
        meta = source.get("metadata") or {}
        asked = {str(k): str(v) for k, v in (meta.get("annotations") or {}).items()}
        name = route.metadata.name or ""
        holder = f"Route {name} ({kind} {meta.get('namespace')}/{meta.get('name')})"
        claims.append(propagation.Claim(name, holder, propagation.permitted(asked, policy)))
    merged = propagation.merge(claims, fixed, KUBELB_HOLDER)
    out = merged.annotations
    for key, value in propagation.defaults(policy, *dict.fromkeys(kinds), "service").items():
        out.setdefault(key, value)
    out = propagation.with_record(out, recorded)
    problems = {
        name: tuple(f"annotation {r.key}={_shown(r.value)} is not set on the tenant's L7 entry "
                    f"(Service {service}): {r.holder} set it to {_shown(r.held)} first"
                    for r in refused)
        for name, refused in merged.refused.items()
    }  # fmt: skip
    return EntryAnnotations(out, problems)


def _age(route: api_route.Route) -> tuple[str, str]:
    """Oldest first (RFC 3339 UTC timestamps sort as text), then by name."""
    return (route.metadata.creation_timestamp or "", route.metadata.name or "")


def _shown(value: str, limit: int = 80) -> str:
    return repr(value if len(value) <= limit else f"{value[:limit]}...")


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
