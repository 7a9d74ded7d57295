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
from kubelb.ir import proxy
from kubelb.irbuild import endpointpolicy, ingress, loadbalancers, routebackends
from kubelb.util import naming

INGRESS = "Ingress"
GATEWAY = "Gateway"
HTTPROUTE = "HTTPRoute"
GRPCROUTE = "GRPCRoute"
INGRESS_DISABLED = "Ingress is disabled by the `ingress.disable` setting (Config or Tenant)"
GATEWAY_API_DISABLED = (
    "Gateway API is disabled by the `gatewayAPI.disable` setting (Config or Tenant)"
)


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


def listener_name(namespace: str, port: int) -> str:
    return naming.join(namespace, routebackends.L7_SEGMENT, str(port), "http")


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
) -> RoutesBuilt:
    """The HTTP listeners and clusters of tenant namespace `namespace`, bound at `address`.

    `listen_ports` maps a requested port (80 for Ingress, a Gateway listener's port) to the port
    the data plane binds (the manager's Kubernetes deployer allocates them); missing means the
    requested port itself. `taken_ports` are requested ports the tenant's L4 LoadBalancers
    hold on the same entry point. `addresses` holds Addresses keyed "namespace/name"; a Route's
    reference resolves in `namespace` only. `status_address` is the address the statuses
    report (default `address`), e.g. a Service's external IP when `address` binds inside a pod.
    """
    tenant = Tenant(
        namespace=namespace,
        address=address,
        status_address=status_address or address,
        listen_ports=dict(listen_ports or {}),
        taken_ports=frozenset(taken_ports),
        clusters=routebackends.Clusters(namespace, policy),
    )
    reports = {r.metadata.name or "": Report(tenant, r, addresses) for r in routes}
    ordered = sorted(reports.values(), key=lambda rep: rep.age)
    by_kind: dict[str, list[Report]] = {}
    for rep in ordered:
        by_kind.setdefault(rep.kind, []).append(rep)
    for kind, unknown in by_kind.items():
        if kind not in (INGRESS, GATEWAY, HTTPROUTE, GRPCROUTE):
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
    for rep in (*by_kind.get(GATEWAY, []), *by_kind.get(HTTPROUTE, []),
                *by_kind.get(GRPCROUTE, [])):  # fmt: skip
        rep.problem("Gateway API routes are not served yet")
    if ingresses:
        built = _ingress_listener(tenant, ingresses)
        if built is not None:
            listeners.append(built[0])
            listener_routes[built[0].name] = built[1]

    used = {c for li in listeners for c in li.route_clusters}
    piece = loadbalancers.Piece(
        key=piece_key(namespace),
        listeners=tuple(sorted(listeners, key=lambda li: li.name)),
        clusters=tenant.clusters.built(used),
        problems=(),
        refused=tuple(dict.fromkeys(m for rep in ordered for m in rep.refused)),
    )
    return RoutesBuilt(
        piece=piece,
        outcomes={name: rep.outcome() for name, rep in sorted(reports.items())},
        listener_routes=listener_routes,
    )


@dataclass
class Tenant:
    """What every part of the build reads about the tenant, and the clusters it gathers."""

    namespace: str
    address: str
    status_address: str
    listen_ports: Mapping[int, int]
    taken_ports: frozenset[int]
    clusters: routebackends.Clusters

    def listener(
        self, port: int, virtual_hosts: tuple[proxy.VirtualHost, ...], owner: str
    ) -> proxy.Listener:
        return proxy.Listener(
            name=listener_name(self.namespace, port),
            address=self.address,
            port=self.listen_ports.get(port, port),
            protocol=proxy.Protocol.HTTP,
            virtual_hosts=virtual_hosts,
            owner=owner,
        )

    def port_problem(self, port: int) -> str | None:
        listen = self.listen_ports.get(port, port)
        if not 1 <= listen <= 65535:
            return f"port {port}: {listen} is outside 1-65535"
        if port in self.taken_ports:
            return f"port {port} is used by a LoadBalancer of this tenant"
        return None


class Report:
    """One Route being built: its source and what its status will say."""

    def __init__(
        self,
        tenant: Tenant,
        route: api_route.Route,
        addresses: Mapping[str, api_addresses.Addresses],
    ) -> None:
        source = route.spec.source.kubernetes
        self.name = route.metadata.name or ""
        self.key = f"{tenant.namespace}/{self.name}"
        self.resource: Mapping[str, Any] = source.resource if source is not None else {}
        self.kind = str(self.resource.get("kind", ""))
        metadata = self.resource.get("metadata") or {}
        self.source_namespace = str(metadata.get("namespace") or "default")
        self.source_name = str(metadata.get("name") or "")
        created = metadata.get("creationTimestamp") or route.metadata.creation_timestamp or ""
        # Older first; then the source's namespace/name; the Route name breaks the last tie.
        self.age = (str(created), self.source_namespace, self.source_name, self.name)
        self.source_id = f"{self.source_namespace}/{self.source_name}"
        self.endpoints = routebackends.route_endpoints(route, tenant.namespace, addresses)
        self.problems: list[str] = list(self.endpoints.problems)
        self.refused: list[str] = []
        self.status: Mapping[str, Any] = {}
        if source is None:
            self.problem("spec.source.kubernetes is missing: nothing to serve")

    def problem(self, message: str) -> None:
        if message not in self.problems:
            self.problems.append(message)

    def resolve(
        self,
        ref: routebackends.BackendRef,
        upstream: proxy.UpstreamProtocol = proxy.UpstreamProtocol.HTTP1,
        *,
        tenant: Tenant,
    ) -> routebackends.Resolution:
        resolution = tenant.clusters.resolve(self.endpoints, ref, upstream)
        if resolution.problem is not None:
            self.problem(resolution.problem)
        self.refused.extend(m for m in resolution.refused if m not in self.refused)
        return resolution

    def outcome(self) -> RouteOutcome:
        return RouteOutcome(
            served_status=self.status, problems=tuple(self.problems), refused=tuple(self.refused)
        )


def address_status(address: str) -> dict[str, str]:
    return {"ip": address} if proxy.is_ip(address) else {"hostname": address}


def _ingress_listener(
    tenant: Tenant, reports: Sequence[Report]
) -> tuple[proxy.Listener, tuple[str, ...]] | None:
    """The port-80 listener of the tenant's Ingresses (oldest first): a host and path goes to
    the oldest Ingress claiming it; a later claim is reported on its own Ingress."""
    blocked = tenant.port_problem(ingress.PORT)
    owners: dict[tuple[str, str, str, bool], Report] = {}
    # (order key, hosts, route, report)
    entries: list[tuple[tuple[Any, ...], tuple[str, ...], proxy.HTTPRoute, Report]] = []
    for position, rep in enumerate(reports):
        parsed = ingress.parse(rep.resource)
        for message in parsed.problems:
            rep.problem(f"{message}: not served")
        if blocked is not None:
            rep.problem(f"{blocked}: the Ingress is not served")
            rep.status = {"loadBalancer": {}}
            continue
        for index, claim in enumerate(parsed.claims):
            holder = owners.get(claim.key)
            if holder is not None:
                whose = "an earlier rule" if holder is rep else f"Ingress {holder.source_id}"
                rep.problem(f"{claim.describe()} is already served by {whose}: not served")
                continue
            owners[claim.key] = rep
            order = (
                claim.default,
                claim.path.kind is not proxy.PathMatchKind.EXACT,
                -len(claim.path.value),
                position,
                index,
            )
            hosts = (claim.host,) if claim.host else ()
            entries.append((order, hosts, _ingress_route(tenant, rep, claim), rep))
    served = {id(rep) for *_, rep in entries}
    for rep in reports:
        if blocked is None:
            ip = [address_status(tenant.status_address)] if id(rep) in served else []
            rep.status = {"loadBalancer": {"ingress": ip}} if ip else {"loadBalancer": {}}
    if not entries:
        return None
    entries.sort(key=lambda e: e[0])
    owner = next(rep for rep in reports if id(rep) in served)
    listener = tenant.listener(
        ingress.PORT,
        proxy.group_by_hostname((hosts, route) for _, hosts, route, _ in entries),
        owner.key,
    )
    return listener, tuple(rep.name for rep in reports if id(rep) in served)


def _ingress_route(tenant: Tenant, rep: Report, claim: ingress.Claim) -> proxy.HTTPRoute:
    where = (
        (ingress.DEFAULT_BACKEND,)
        if claim.default
        else (claim.host or "*", claim.path.kind.value, claim.path.value)
    )
    name = naming.join("ingress", rep.source_namespace, rep.source_name, *where)
    assert claim.backend is not None
    resolved = rep.resolve(claim.backend, tenant=tenant)
    if resolved.cluster is None:
        rep.problem(f"{claim.describe()}: answers 503")
        return proxy.HTTPRoute(name=name, match=proxy.RouteMatch(path=claim.path),
                               direct_status=503)  # fmt: skip
    return proxy.HTTPRoute(
        name=name,
        match=proxy.RouteMatch(path=claim.path),
        backends=(proxy.WeightedCluster(cluster=resolved.cluster),),
    )
