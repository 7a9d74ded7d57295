"""The LoadBalancer kind: one L4 load balancer (upstream: a tenant Service of type LoadBalancer).

spec: the upstream endpoints (addresses x ports), the exposed ports, an optional hostname,
the management Service type, externalTrafficPolicy and source-IP persistence.
status: the ingress points, the exposed ports paired with their upstream ports (this doubles as
the persisted port allocation), the hostname state and, a kubelb addition, conditions that say
why a LoadBalancer is not (yet) serving.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar, Literal

import pydantic

from kubelb.api import common, meta


class ServiceType(StrEnum):
    """Types of the management Service that `spec.type` names."""

    CLUSTER_IP = "ClusterIP"
    NODE_PORT = "NodePort"
    LOAD_BALANCER = "LoadBalancer"


class ExternalTrafficPolicy(StrEnum):
    CLUSTER = "Cluster"
    LOCAL = "Local"


class PersistenceType(StrEnum):
    """Session persistence: SourceIP pins a client IP to one upstream."""

    SOURCE_IP = "SourceIP"


class Persistence(meta.KubeModel):
    """Session persistence. Omitted means no stickiness."""

    type: PersistenceType | None = None
    """Persistence type. Only SourceIP is supported."""


class LoadBalancerPort(meta.KubeModel):
    """A port exposed by the load balancer."""

    name: meta.DNS1123Label | None = None
    """Name of this port within the service (a DNS_LABEL); matched against the endpoint ports'
    names. Optional if only one port is defined."""
    protocol: common.Protocol = meta.crd_default(common.Protocol.TCP)
    """The IP protocol for this port. Defaults to TCP."""
    port: meta.PortNumber
    """The port that will be exposed by the LoadBalancer (1-65535)."""


class LoadBalancerSpec(meta.KubeModel):
    """Desired state of a LoadBalancer."""

    endpoints: tuple[common.LoadBalancerEndpoints, ...] = pydantic.Field(min_length=1)
    """Sets of addresses and ports that comprise an exposed user service on a cluster."""
    ports: tuple[LoadBalancerPort, ...] = ()
    """Ports exposed by the load balancer service (layer 4)."""
    hostname: meta.Hostname | None = None
    """Domain name at which the load balancer will be reachable, exposed with TLS."""
    type: str = meta.crd_default(ServiceType.CLUSTER_IP.value)
    """Type of the management Service: ClusterIP, NodePort or LoadBalancer. Defaults to
    ClusterIP."""
    external_traffic_policy: ExternalTrafficPolicy | None = None
    """externalTrafficPolicy copied to the management Service: Cluster or Local."""
    persistence: Persistence | None = None
    """Session persistence; omitted means none."""

    @property
    def source_ip_persistence(self) -> bool:
        return self.persistence is not None and self.persistence.type == PersistenceType.SOURCE_IP


class LoadBalancerServicePort(meta.ServicePort):
    """A management Service port and the upstream (endpoint) port it maps to."""

    upstream_target_port: meta.Int32
    """The endpoint port (upstream: the tenant NodePort) this port forwards to."""


class ServiceStatus(meta.KubeModel):
    """Ports of the management Service."""

    ports: tuple[LoadBalancerServicePort, ...] = ()


class HostnameStatus(meta.KubeModel):
    """State of the hostname resources."""

    hostname: str | None = None
    """The hostname of the load balancer."""
    tls_enabled: bool | None = None
    """True when a certificate is served for the hostname."""
    dns_record_created: bool | None = None
    """True when a DNS record exists for the hostname."""


class LoadBalancerStatus(meta.KubeModel):
    """Observed state of a LoadBalancer."""

    load_balancer: meta.CoreLoadBalancerStatus = pydantic.Field(
        default_factory=meta.CoreLoadBalancerStatus
    )
    """Current status of the load balancer: its ingress points."""
    service: ServiceStatus = pydantic.Field(default_factory=ServiceStatus)
    """Current status of the load balancer's Service."""
    hostname: HostnameStatus | None = None
    """Status of the hostname resources."""
    conditions: tuple[meta.Condition, ...] = meta.conditions_field()
    """Why the load balancer is or is not serving (kubelb addition to upstream's status)."""


class LoadBalancer(meta.KubeObject):
    """LoadBalancer is the Schema for the loadbalancers API."""

    KIND: ClassVar[str] = "LoadBalancer"

    api_version: Literal["kubelb.k8c.io/v1alpha1"] = "kubelb.k8c.io/v1alpha1"
    kind: Literal["LoadBalancer"] = "LoadBalancer"
    spec: LoadBalancerSpec
    status: LoadBalancerStatus = pydantic.Field(default_factory=LoadBalancerStatus)
