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
- Ingress: rules and default backend on port 80 of the L7 address; pathType Exact, Prefix
  (whole segments), ImplementationSpecific (as Prefix); a host's own rules before the host-less
  ones; within them Exact before Prefix, longer before shorter.
- Gateway (named `kubelb`, at most one per tenant): one HTTP listener per distinct listener port,
  listener hostnames restricting the routes attached to them.
- HTTPRoute / GRPCRoute: attached to the Gateway's listeners by parentRef (sectionName, port);
  matches, filters, weights and timeouts with Gateway API's precedence (hostname specificity, then
  Exact path, longest prefix, method, most headers, most query params, oldest route, name).
- A backend reference resolves to its Service copy's NodePort on every address of the Route's
  endpoints; an unknown backend gives 500 for its share (Gateway API), no route 404, no healthy
  backend 503.
- Conflicts stay local: a later Route claiming a host and path already served, or a port an L4
  LoadBalancer holds (`taken_ports`), is reported on that Route and changes nothing else.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubelb.api import addresses as api_addresses, route as api_route
from kubelb.irbuild import endpointpolicy, loadbalancers


@dataclass(frozen=True, slots=True)
class RouteSettings:
    """Config and Tenant gates, already merged (Tenant over Config) by the caller."""

    ingress_enabled: bool = True
    gateway_api_enabled: bool = True


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


@dataclass(frozen=True, slots=True)
class RoutesBuilt:
    piece: loadbalancers.Piece
    # Route name (the source object's UID) -> its outcome, for every Route given.
    outcomes: Mapping[str, RouteOutcome] = field(default_factory=dict)


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
) -> RoutesBuilt:
    """The HTTP listeners and clusters of tenant namespace `namespace`, bound at `address`.

    `listen_ports` maps a requested port (80 for Ingress, a Gateway listener's port) to the port
    the data plane binds (the manager's Kubernetes deployer allocates them); missing means the
    requested port itself. `addresses` holds Addresses keyed "namespace/name"; a Route's
    reference resolves in `namespace` only.
    """
    raise NotImplementedError("Layer 7 routes are being built on the l7-irbuild branch")
