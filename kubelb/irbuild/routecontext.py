"""What every part of a tenant's Route build shares: the tenant (`Tenant`: where its HTTP
listeners bind, which ports are taken, the clusters gathered so far) and one `Report` per Route
(its source object, endpoints, age, problems and the status it will get). Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubelb.api import addresses as api_addresses, annotations as keys, route as api_route
from kubelb.ir import proxy, tls
from kubelb.irbuild import routebackends, routetls
from kubelb.util import naming


def listener_name(namespace: str, port: int) -> str:
    return naming.join(namespace, routebackends.L7_SEGMENT, str(port), "http")


@dataclass
class Tenant:
    """What every part of the build reads about the tenant, and the clusters it gathers."""

    namespace: str
    address: str
    status_address: str
    listen_ports: Mapping[int, int]
    taken_ports: frozenset[int]
    clusters: routebackends.Clusters
    http: proxy.HTTPOptions | None = None
    certificates: routetls.Certificates = routetls.NONE
    # The secrets certificates resolved to so far, by IR name.
    secrets: dict[str, tls.TLSSecret] = field(default_factory=dict)

    def listener(
        self,
        port: int,
        virtual_hosts: tuple[proxy.VirtualHost, ...],
        owner: str,
        tls: proxy.ListenerTLS | None = None,
    ) -> proxy.Listener:
        return proxy.Listener(
            name=listener_name(self.namespace, port),
            address=self.address,
            port=self.listen_ports.get(port, port),
            protocol=proxy.Protocol.HTTP,
            virtual_hosts=virtual_hosts,
            http=self.http,
            tls=tls,
            owner=owner,
        )

    def passthrough(
        self, port: int, routes: tuple[proxy.SNIRoute, ...], owner: str
    ) -> proxy.Listener:
        return proxy.Listener(
            name=naming.join(self.namespace, routebackends.L7_SEGMENT, str(port), "tls"),
            address=self.address,
            port=self.listen_ports.get(port, port),
            protocol=proxy.Protocol.TLS,
            sni_routes=routes,
            owner=owner,
        )

    def certificate(self, namespace: str, name: str) -> str | tls.TLSSecret:
        """The secret a TLS reference names (kept for the piece), or why it cannot serve."""
        resolved = self.certificates.resolve(namespace, name)
        if not isinstance(resolved, str):
            self.secrets[resolved.name] = resolved
        return resolved

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
        notes = metadata.get("annotations")
        # An Ingress's ask for TLS (or gRPC) to all its backends (`backendtls`).
        self.backend_protocol = (
            str(notes.get(keys.NGINX_BACKEND_PROTOCOL) or "") or None
            if self.kind == "Ingress" and isinstance(notes, Mapping)
            else None
        )
        self.endpoints = routebackends.route_endpoints(route, tenant.namespace, addresses)
        self.problems: list[str] = list(self.endpoints.problems)
        self.refused: list[str] = []
        self.status: Mapping[str, Any] = {}
        if source is None:
            self.problem("spec.source.kubernetes is missing: nothing to serve")

    def malformed(self, error: Exception) -> None:
        self.problem(f"the embedded {self.kind or 'object'} is malformed ({error!r}): not served")

    def problem(self, message: str) -> None:
        if message not in self.problems:
            self.problems.append(message)

    def resolve(
        self,
        ref: routebackends.BackendRef,
        upstream: proxy.UpstreamProtocol = proxy.UpstreamProtocol.HTTP1,
        *,
        tenant: Tenant,
        tcp: bool = False,
    ) -> routebackends.Resolution:
        """The reference's cluster (the caller reports why there is none); records the
        endpoints the policy refused."""
        resolution = tenant.clusters.resolve(
            self.endpoints, ref, upstream, backend_protocol=self.backend_protocol, tcp=tcp
        )
        self.refused.extend(m for m in resolution.refused if m not in self.refused)
        return resolution


def address_status(address: str) -> dict[str, str]:
    return {"ip": address} if proxy.is_ip(address) else {"hostname": address}


# What reading an embedded object of the wrong shape raises (a list where a mapping belongs ...).
MALFORMED = (AttributeError, TypeError, ValueError, KeyError)


def condition(kind: str, status: bool, reason: str, message: str) -> dict[str, str]:
    """A status condition as upstream writes it, without observedGeneration and
    lastTransitionTime (the agent and the status writer own those)."""
    return {
        "type": kind,
        "status": "True" if status else "False",
        "reason": reason,
        "message": message,
    }
