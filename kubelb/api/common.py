"""Types shared by LoadBalancer, Route and Addresses: upstream endpoints, addresses, ports.

`LoadBalancerEndpoints` is a group of addresses with a common set of ports: the upstream
endpoints are the Cartesian product addresses x ports. Addresses come inline or, when
`addresses_reference` is set, from the Addresses object of that name in the same namespace.
"""

from __future__ import annotations

from enum import StrEnum

import pydantic

from kubelb.api import meta


class Protocol(StrEnum):
    """IP protocol of a port. KubeLB supports TCP and UDP only."""

    TCP = "TCP"
    UDP = "UDP"


def _has_address(address: EndpointAddress) -> bool:
    return bool(address.ip) or bool(address.hostname)


class EndpointAddress(meta.CELValidated):
    """One upstream address: an IP or a DNS hostname. When both are set the IP wins."""

    cel_rules = (
        meta.CELRule(
            rule="(has(self.ip) && self.ip != '') || (has(self.hostname) && self.hostname != '')",
            message="either ip or hostname must be set",
            check=_has_address,
        ),
    )

    ip: str | None = None
    """The IP of this endpoint."""
    hostname: meta.EndpointHostname | None = None
    """The hostname of this endpoint (a DNS-1123 subdomain)."""

    @property
    def address(self) -> str:
        """What to connect to: the IP if set, else the hostname."""
        return self.ip or self.hostname or ""


class EndpointPort(meta.KubeModel):
    """One upstream port (for KubeLB's agent: the tenant Service's NodePort)."""

    name: meta.DNS1123Label | None = None
    """Name of this port; must match the name of the LoadBalancer port it serves. Optional only
    if one port is defined."""
    port: meta.PortNumber
    """The port number of the endpoint (1-65535)."""
    protocol: Protocol = meta.crd_default(Protocol.TCP)
    """The IP protocol for this port. Defaults to TCP."""


class LoadBalancerEndpoints(meta.KubeModel):
    """A group of addresses with a common set of ports; endpoints = addresses x ports."""

    name: str | None = None
    """Name of the endpoints."""
    addresses: tuple[EndpointAddress, ...] = pydantic.Field(default=(), min_length=1)
    """Addresses which offer the related ports."""
    addresses_reference: meta.ObjectReference | None = None
    """Reference to an Addresses object (same namespace, only the name is used). When set,
    `addresses` is ignored."""
    ports: tuple[EndpointPort, ...] = pydantic.Field(default=(), min_length=1)
    """Port numbers available on the related addresses. Ignored for Routes whose source is a
    Kubernetes resource."""
