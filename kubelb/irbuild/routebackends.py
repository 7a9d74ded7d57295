"""A Route's backend references -> IR clusters. Pure: no I/O, no clock.

A reference names a tenant Service (namespace, name) and one of its ports (number or name). It
resolves to the Service copy the Route embeds: the agent sends ClusterIP Services as a
`<svc>-nodeport` twin labelled with the original's name and namespace, other Services as they
are. The upstream endpoints are every address of the Route's `spec.endpoints` (its Addresses
reference, resolved in the tenant namespace only, or its inline addresses) at that port's
NodePort, each admitted by the endpoint policy as Layer 4 endpoints are.

One cluster per (Service, port, upstream protocol), named from that identity, whichever Routes
use it: several Routes of a tenant pointing at one Service share its cluster, and its endpoints
are the union of what each of them gives.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubelb.api import addresses as api_addresses, labels, route as api_route
from kubelb.ir import proxy
from kubelb.irbuild import backendtls, endpointpolicy
from kubelb.util import naming

# Not a valid Kubernetes name (upper case), so never the name of a LoadBalancer whose listeners
# and clusters are named `<namespace>/<lb>/...`.
L7_SEGMENT = "L7"


@dataclass(frozen=True, slots=True)
class BackendRef:
    """A Service port, by number or (Ingress only) by name."""

    namespace: str
    name: str
    port: int | str | None

    def __str__(self) -> str:
        port = "" if self.port is None else f" port {self.port}"
        return f"Service {self.namespace}/{self.name}{port}"


@dataclass(frozen=True, slots=True)
class RouteEndpoints:
    """What a Route contributes to every cluster it resolves: its Service copies and addresses."""

    source_namespace: str
    services: tuple[Mapping[str, Any], ...]
    addresses: tuple[str, ...]
    problems: tuple[str, ...] = ()


def route_endpoints(
    route: api_route.Route,
    tenant_namespace: str,
    addresses: Mapping[str, api_addresses.Addresses],
) -> RouteEndpoints:
    source = route.spec.source.kubernetes
    resource = source.resource if source is not None else {}
    metadata = resource.get("metadata") or {}
    problems: list[str] = []
    found: list[str] = []
    for index, entry in enumerate(route.spec.endpoints):
        entry_id = entry.name or str(index)
        if entry.addresses_reference is not None and entry.addresses_reference.name:
            ref = entry.addresses_reference.name
            obj = addresses.get(f"{tenant_namespace}/{ref}")
            if obj is None:
                problems.append(f"endpoints {entry_id!r}: Addresses {ref!r} not found")
                continue
            given = obj.spec.addresses
        else:
            given = entry.addresses
        # When both are set the IP wins, as upstream does.
        found.extend(a for e in given if (a := e.ip or e.hostname))
    return RouteEndpoints(
        source_namespace=str(metadata.get("namespace") or "default"),
        services=tuple(source.services if source is not None else ()),
        addresses=tuple(dict.fromkeys(found)),
        problems=tuple(problems),
    )


@dataclass(frozen=True, slots=True)
class Resolution:
    """A resolved reference's cluster, or why there is none (`reason` a Gateway API one)."""

    cluster: str | None
    problem: str | None = None
    reason: str = ""
    refused: tuple[str, ...] = ()


BACKEND_NOT_FOUND = "BackendNotFound"


@dataclass
class Clusters:
    """The clusters of one tenant's routes, gathered while its Routes are resolved."""

    tenant_namespace: str
    policy: endpointpolicy.EndpointPolicy | None = None
    # "namespace/name" of a tenant Secret -> its `ca.crt` (HTTPS backends that Verify).
    ca_bundles: Mapping[str, str] = field(default_factory=dict)
    _endpoints: dict[str, set[proxy.Endpoint]] = field(default_factory=dict)
    _upstream: dict[str, proxy.UpstreamProtocol] = field(default_factory=dict)
    _tls: dict[str, proxy.UpstreamTLS] = field(default_factory=dict)
    _placeholders: set[str] = field(default_factory=set)
    _tcp: set[str] = field(default_factory=set)  # TLS passthrough: plain TCP clusters

    def unresolved(self) -> str:
        """A cluster without endpoints for the share of a route whose backend is invalid: its
        requests fail (503) while the other shares keep their weights."""
        name = naming.join(self.tenant_namespace, L7_SEGMENT, "unresolved")
        self._endpoints.setdefault(name, set())
        self._upstream[name] = proxy.UpstreamProtocol.HTTP1
        self._placeholders.add(name)
        return name

    def resolve(
        self,
        endpoints: RouteEndpoints,
        ref: BackendRef,
        upstream: proxy.UpstreamProtocol = proxy.UpstreamProtocol.HTTP1,
        *,
        backend_protocol: str | None = None,
        tcp: bool = False,
    ) -> Resolution:
        """`backend_protocol`: the Ingress's backend-protocol annotation (`backendtls`).
        `tcp`: a TCP cluster (TLS passthrough: the client's TLS goes through untouched), named
        apart from the Service port's HTTP clusters."""
        service = find_service(endpoints.services, ref.namespace, ref.name)
        if service is None:
            return Resolution(
                None, f"Service {ref.namespace}/{ref.name} is not known", BACKEND_NOT_FOUND
            )
        if ref.port is None:
            return Resolution(None, f"{ref}: a port is required", "UnsupportedValue")
        port = find_port(service, ref.port)
        if port is None:
            return Resolution(None, f"{ref} has no such port", BACKEND_NOT_FOUND)
        number, node_port = port
        if not isinstance(node_port, int) or not 1 <= node_port <= 65535:
            return Resolution(None, f"{ref} has no NodePort", BACKEND_NOT_FOUND)
        if tcp:
            name = naming.join(self.tenant_namespace, L7_SEGMENT, ref.namespace, ref.name,
                               str(number), "tcp")  # fmt: skip
            self._tcp.add(name)
        else:
            tls = backendtls.ask(
                service, find_port_entry(service, number), ref.namespace,
                backend_protocol=backend_protocol, ca_bundles=self.ca_bundles,
            )  # fmt: skip
            if tls.problem is not None:
                return Resolution(None, f"{ref}: {tls.problem}", "UnsupportedValue")
            if tls.http2:
                upstream = proxy.UpstreamProtocol.HTTP2
            # With TLS, a cluster of its own: another Route may reach the same port without it.
            name = cluster_name(self.tenant_namespace, ref.namespace, ref.name, number, upstream,
                                tls=tls.tls is not None)  # fmt: skip
            if tls.tls is not None:
                self._tls[name] = tls.tls
        admitted: list[proxy.Endpoint] = []
        refused: list[str] = []
        for address in endpoints.addresses:
            why = None if self.policy is None else self.policy.refusal(address, node_port)
            if why is None:
                admitted.append(proxy.Endpoint(address=address, port=node_port))
            else:
                refused.append(why)
        self._endpoints.setdefault(name, set()).update(admitted)
        self._upstream[name] = upstream
        return Resolution(name, refused=tuple(refused))

    def built(self, used: Iterable[str]) -> tuple[proxy.Cluster, ...]:
        """The clusters among `used`, in name order."""
        return tuple(
            proxy.Cluster(
                name=name,
                protocol=proxy.Protocol.TCP if name in self._tcp else proxy.Protocol.HTTP,
                endpoints=tuple(sorted(self._endpoints[name], key=lambda e: (e.address, e.port))),
                health_check=None if name in self._placeholders else proxy.HealthCheck(),
                upstream_protocol=self._upstream[name],
                tls=self._tls.get(name),
            )
            for name in sorted(set(used))
            if name in self._endpoints
        )


def cluster_name(
    tenant_namespace: str,
    service_namespace: str,
    service: str,
    port: int,
    upstream: proxy.UpstreamProtocol,
    *,
    tls: bool = False,
) -> str:
    return naming.join(
        tenant_namespace, L7_SEGMENT, service_namespace, service, str(port),
        upstream.value.lower(), *(("tls",) if tls else ()),
    )  # fmt: skip


def find_service(
    services: Sequence[Mapping[str, Any]], namespace: str, name: str
) -> Mapping[str, Any] | None:
    """The copy of Service `namespace/name`: its NodePort twin (by origin labels) first."""
    for service in services:
        metadata = _mapping(service.get("metadata"))
        origin = _mapping(metadata.get("labels"))
        if origin.get(labels.ORIGIN_NAME) == name and (
            origin.get(labels.ORIGIN_NAMESPACE, metadata.get("namespace")) == namespace
        ):
            return service
    for service in services:
        metadata = _mapping(service.get("metadata"))
        if metadata.get("name") == name and metadata.get("namespace", namespace) == namespace:
            return service
    return None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def find_port_entry(service: Mapping[str, Any], number: int) -> Mapping[str, Any]:
    """The `spec.ports` entry of port `number` (empty when there is none)."""
    ports = _mapping(service.get("spec")).get("ports")
    for p in ports if isinstance(ports, list) else ():
        if _mapping(p).get("port") == number:
            return _mapping(p)
    return {}


def find_port(service: Mapping[str, Any], port: int | str) -> tuple[int, Any] | None:
    """(Service port number, its nodePort) for a port given by number or name."""
    ports = _mapping(service.get("spec")).get("ports")
    for p in ports if isinstance(ports, list) else ():
        number = _mapping(p).get("port")
        if not isinstance(number, int):
            continue
        if (isinstance(port, int) and number == port) or (
            isinstance(port, str) and p.get("name") == port
        ):
            return number, p.get("nodePort")
    return None
