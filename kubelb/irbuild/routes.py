"""Route objects -> a tenant's IR HTTP listeners and clusters. Pure: no I/O, no clock.

Input: every Route of one tenant (each embeds an Ingress, Gateway, HTTPRoute or GRPCRoute in
`spec.source.kubernetes.resource`, plus copies of the Services it references, with their
NodePorts), the tenant's `Addresses` objects by name (or endpoints given inline in
`spec.endpoints`, as standalone files do), the tenant's L7 bind address and where each requested
port listens, and the settings that gate Ingress and Gateway API.

Output: a `RoutesBuilt`: one `loadbalancers.Piece` holding the tenant's HTTP listeners and
clusters (assembled beside its L4 pieces into one `ProxyConfig`), and per Route the status the
manager writes back (`RouteOutcome`: the served object's status in upstream's shape, which the
agent copies onto the tenant's object, and the problems that kept part of it from being served).

Semantics (kubelb's own realisation: the tenant's Envoy routes the requests itself):
- Ingress: rules and default backend on port 80 of the L7 address, and on 443 over HTTPS for
  the hosts of its `tls` entries (`routetls` resolves their Secrets); pathType Exact, Prefix
  (whole segments), ImplementationSpecific (as Prefix); a host's own rules before the host-less
  ones; within them Exact before Prefix, longer before shorter.
- Gateway (named `kubelb`, at most one per tenant): one HTTP listener per distinct listener port,
  listener hostnames restricting the routes attached to them.
- HTTPRoute / GRPCRoute: attached to the Gateway's listeners by parentRef (sectionName, port);
  matches, filters, weights and timeouts with Gateway API's precedence (hostname specificity, then
  Exact path, longest prefix, method, most headers, most query params, oldest route, name).
- A backend reference resolves to its Service copy's NodePort on every address of the Route's
  endpoints (`routebackends`); no route 404, no healthy backend 503. An Ingress path to an
  unknown Service answers 503; a Gateway API rule with no resolvable backend answers 500, and
  an unresolvable share of a split fails on an endpoint-less cluster (503: the IR has no
  weighted fixed answer) while the other shares keep their weights.
- Conflicts stay local: a later Route claiming a host and path already served, or a port an L4
  LoadBalancer holds (`taken_ports`), is reported on that Route and changes nothing else. Port
  80 goes to the older of the tenant's Ingresses and its Gateway; the other is told.

Modules: `ingress` (Ingress claims and the port-80 listener), `gatewayapi` (the Gateway, route
attachment, virtual hosts, statuses), `gatewayroutes` (rules -> IR routes), `routeprecedence`
(hostnames and match order), `routebackends` (references -> clusters), `routecontext` (what
they share).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubelb.api import addresses as api_addresses, config as api_config, route as api_route
from kubelb.ir import proxy
from kubelb.irbuild import (
    endpointpolicy,
    gatewayapi,
    ingress,
    loadbalancers,
    routebackends,
    routecontext,
    routetls,
)

INGRESS = "Ingress"
GATEWAY = "Gateway"
HTTPROUTE = "HTTPRoute"
GRPCROUTE = "GRPCRoute"
TLSROUTE = "TLSRoute"
INGRESS_DISABLED = "Ingress is disabled by the `ingress.disable` setting (Config or Tenant)"
GATEWAY_API_DISABLED = (
    "Gateway API is disabled by the `gatewayAPI.disable` setting (Config or Tenant)"
)


@dataclass(frozen=True, slots=True)
class RouteSettings:
    """Config and Tenant gates, already merged (Tenant over Config) by the caller."""

    ingress_enabled: bool = True
    gateway_api_enabled: bool = True
    # Limits and timeouts of every HTTP listener (None: the IR's defaults); see `http_options`.
    http: proxy.HTTPOptions | None = None


def http_options(envoy: api_config.EnvoyProxy) -> proxy.HTTPOptions | None:
    """The HTTP listener options Config's `envoyProxy` asks for (its header limits), None
    when it asks for nothing but the defaults."""
    limits = envoy.header_limits
    if (
        limits.max_request_headers_kb,
        limits.max_request_headers_count,
        limits.max_response_headers_kb,
    ) == (None, None, None):
        return None
    default = proxy.HTTPOptions()
    return dataclasses.replace(
        default,
        max_request_headers_kb=limits.max_request_headers_kb or default.max_request_headers_kb,
        max_request_headers_count=(
            limits.max_request_headers_count or default.max_request_headers_count
        ),
        max_response_headers_kb=limits.max_response_headers_kb or default.max_response_headers_kb,
    )


@dataclass(frozen=True, slots=True)
class RouteOutcome:
    """What one Route's status says.

    `served_status` is the raw status of the object the Route embeds, in upstream's shape:
    Ingress `{"loadBalancer": {"ingress": [{"ip": ...}]}}`; Gateway `{"addresses": [...],
    "conditions": [Accepted, Programmed], "listeners": [...]}`; HTTPRoute and GRPCRoute
    `{"parents": [{"parentRef": ..., "controllerName": ..., "conditions": [Accepted,
    ResolvedRefs]}]}`. Conditions carry no `observedGeneration` (the agent sets the tenant
    object's) and no `lastTransitionTime` (the writer keeps it stable).
    """

    served_status: Mapping[str, Any]
    # Empty when every part of the Route is served (ResourceAppliedSuccessfully True).
    problems: tuple[str, ...] = ()
    # Endpoints the policy refused, one message each (left out of the clusters, as for L4).
    refused: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RoutesBuilt:
    piece: loadbalancers.Piece
    # Route name (the source object's UID) -> its outcome, for every Route given.
    outcomes: Mapping[str, RouteOutcome] = field(default_factory=dict)
    # Listener name -> the Routes it serves (a dropped listener concerns all of them).
    listener_routes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def piece_key(namespace: str) -> str:
    """The key of a tenant's routes piece; no LoadBalancer is named `L7` (upper case)."""
    return f"{namespace}/{routebackends.L7_SEGMENT}"


listener_name = routecontext.listener_name


def build_tenant_routes(
    namespace: str,
    routes: Sequence[api_route.Route],
    addresses: Mapping[str, api_addresses.Addresses],
    *,
    address: str,
    listen_ports: Mapping[int, int] | None = None,
    taken_ports: Collection[int] = (),
    settings: RouteSettings = RouteSettings(),
    policy: endpointpolicy.EndpointPolicy | None = None,
    status_address: str | None = None,
    ca_bundles: Mapping[str, str] | None = None,
    certificates: routetls.Certificates = routetls.NONE,
) -> RoutesBuilt:
    """The HTTP listeners and clusters of tenant namespace `namespace`, bound at `address`.

    `listen_ports` maps a requested port (80 for Ingress, a Gateway listener's port) to the port
    the data plane binds (the manager's Kubernetes deployer allocates them); missing means the
    requested port itself. `taken_ports` are requested ports the tenant's L4 LoadBalancers
    hold on the same entry point. `addresses` holds Addresses keyed "namespace/name"; a Route's
    reference resolves in `namespace` only. `status_address` is the address the statuses
    report (default `address`), e.g. a Service's external IP when `address` binds inside a pod.
    `ca_bundles` maps "namespace/name" of a tenant Secret to its `ca.crt`, for HTTPS backends
    that verify (`backendtls`; the caller finds the synced Secrets by their origin labels).
    `certificates`: the tenant's Secrets that TLS references may name (`routetls.index`).
    """
    tenant = routecontext.Tenant(
        namespace=namespace,
        address=address,
        status_address=status_address or address,
        listen_ports=dict(listen_ports or {}),
        taken_ports=frozenset(taken_ports),
        clusters=routebackends.Clusters(namespace, policy, dict(ca_bundles or {})),
        http=settings.http,
        certificates=certificates,
    )
    reports = {r.metadata.name or "": routecontext.Report(tenant, r, addresses) for r in routes}
    ordered = sorted(reports.values(), key=lambda rep: rep.age)
    by_kind: dict[str, list[routecontext.Report]] = {}
    for rep in ordered:
        by_kind.setdefault(rep.kind, []).append(rep)
    for kind, unknown in by_kind.items():
        if kind not in (INGRESS, GATEWAY, HTTPROUTE, GRPCROUTE, TLSROUTE):
            for rep in unknown:
                rep.problem(f"kind {kind!r} is not supported")

    listeners: list[proxy.Listener] = []
    listener_routes: dict[str, tuple[str, ...]] = {}
    ingresses = by_kind.get(INGRESS, [])
    if ingresses and not settings.ingress_enabled:
        for rep in ingresses:
            rep.problem(INGRESS_DISABLED)
            rep.status = {"loadBalancer": {}}
        ingresses = []
    gateways = by_kind.get(GATEWAY, [])
    attachable = sorted(
        (*by_kind.get(HTTPROUTE, []), *by_kind.get(GRPCROUTE, []), *by_kind.get(TLSROUTE, [])),
        key=lambda rep: rep.age,
    )
    if not settings.gateway_api_enabled:
        _disable_gateway_api([*gateways, *attachable])
        gateways, attachable = [], []
    # Ports 80 (and 443 with TLS) go to the older of the Ingresses and the Gateway; the other
    # is told.
    ingress_blocked: str | None = None
    gateway_blocked: dict[int, str] = {}
    gateway = gatewayapi.served_gateway(gateways)
    shared: set[int] = set()
    if gateway is not None and ingresses:
        shared = _ingress_ports(ingresses) & gatewayapi.http_ports(gateway)
    if gateway is not None and shared:
        if ingresses[0].age < gateway.age:
            gateway_blocked.update(
                (p, f"port {p} is used by the tenant's Ingresses") for p in shared
            )
        else:
            ports = ", ".join(str(p) for p in sorted(shared))
            ingress_blocked = f"port {ports} is used by Gateway {gateway.source_id}"
    if ingresses:
        built_ingress = ingress.listener(tenant, ingresses, ingress_blocked)
        if built_ingress is not None:
            listeners.append(built_ingress[0])
            listener_routes[built_ingress[0].name] = built_ingress[1]
            https = ingress.https_listener(tenant, ingresses, built_ingress[0])
            if https is not None:
                listeners.append(https)
                listener_routes[https.name] = built_ingress[1]
    if gateways or attachable:
        built_gateway = gatewayapi.build(
            tenant, gateways, attachable, blocked_ports=gateway_blocked
        )
        listeners.extend(built_gateway.listeners)
        listener_routes.update(built_gateway.listener_routes)

    used = {c for li in listeners for c in li.route_clusters}
    named = {c.secret for li in listeners if li.tls is not None for c in li.tls.certificates}
    piece = loadbalancers.Piece(
        key=piece_key(namespace),
        listeners=tuple(sorted(listeners, key=lambda li: li.name)),
        clusters=tenant.clusters.built(used),
        problems=(),
        refused=tuple(dict.fromkeys(m for rep in ordered for m in rep.refused)),
        secrets=tuple(tenant.secrets[n] for n in sorted(named)),
    )
    return RoutesBuilt(
        piece=piece,
        outcomes={name: _outcome(rep) for name, rep in sorted(reports.items())},
        listener_routes=listener_routes,
    )


def requested_ports(
    namespace: str,
    routes: Sequence[api_route.Route],
    settings: RouteSettings = RouteSettings(),
) -> frozenset[int]:
    """The ports the tenant's HTTP listeners ask for (80 for Ingresses, the served Gateway's
    HTTP listener ports), for a caller that must place them before building (the Kubernetes
    deployer allocates their `listen_ports`). A port a conflict later refuses is included."""
    tenant = routecontext.Tenant(
        namespace=namespace,
        address="0.0.0.0",
        status_address="0.0.0.0",
        listen_ports={},
        taken_ports=frozenset(),
        clusters=routebackends.Clusters(namespace),
    )
    reports = sorted((routecontext.Report(tenant, r, {}) for r in routes), key=lambda r: r.age)
    ports: set[int] = set()
    ingresses = [rep for rep in reports if rep.kind == INGRESS]
    if settings.ingress_enabled and ingresses:
        ports.update(_ingress_ports(ingresses))
    if settings.gateway_api_enabled:
        gateway = gatewayapi.served_gateway([rep for rep in reports if rep.kind == GATEWAY])
        if gateway is not None:
            ports.update(p for p in gatewayapi.http_ports(gateway) if 1 <= p <= 65535)
    return frozenset(ports)


def _ingress_ports(reports: Sequence[routecontext.Report]) -> set[int]:
    """80, and 443 when an Ingress asks for TLS."""
    ports = {ingress.PORT}
    for rep in reports:
        tls_given = (rep.resource.get("spec") or {}).get("tls")
        if tls_given:
            ports.add(ingress.TLS_PORT)
    return ports


def _disable_gateway_api(reports: Sequence[routecontext.Report]) -> None:
    for rep in reports:
        rep.problem(GATEWAY_API_DISABLED)
        if rep.kind == GATEWAY:
            rep.status = {
                "conditions": [
                    routecontext.condition("Accepted", False, "Invalid", GATEWAY_API_DISABLED),
                    routecontext.condition("Programmed", False, "Invalid", GATEWAY_API_DISABLED),
                ]
            }
        else:
            rep.status = {
                "parents": [
                    {
                        "parentRef": dict(ref),
                        "controllerName": gatewayapi.CONTROLLER_NAME,
                        "conditions": [
                            routecontext.condition(
                                "Accepted", False, "NoMatchingParent", GATEWAY_API_DISABLED
                            )
                        ],
                    }
                    for ref in gatewayapi.parent_refs(rep)
                ]
            }


def _outcome(rep: routecontext.Report) -> RouteOutcome:
    return RouteOutcome(
        served_status=rep.status, problems=tuple(rep.problems), refused=tuple(rep.refused)
    )
