"""The Config kind: manager-wide settings, plus the settings blocks Tenant reuses.

Only the Config named `default` in the manager's namespace is read (a controller rule, not a
schema rule: see `CONFIG_NAME`). When it is absent the built-in defaults below apply (shared
topology, 3 Envoy replicas). A Tenant overrides Config field by field: what the Tenant sets
wins, what it leaves unset comes from Config (precedence lives in `kubelb.manager.settings`).
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from typing import ClassVar, Literal

import pydantic

from kubelb.api import errors, meta

CONFIG_NAME = "default"

# Envoy's limits when headerLimits leaves a field unset.
DEFAULT_MAX_REQUEST_HEADERS_KB = 8192
DEFAULT_MAX_REQUEST_HEADERS_COUNT = 4096
DEFAULT_MAX_RESPONSE_HEADERS_KB = 8192


class AnnotatedResource(StrEnum):
    """Keys of `defaultAnnotations`: the kinds of generated objects, or all of them."""

    ALL = "all"
    SERVICE = "service"
    INGRESS = "ingress"
    GATEWAY = "gateway"
    HTTPROUTE = "httproute"
    GRPCROUTE = "grpcroute"
    TCPROUTE = "tcproute"
    UDPROUTE = "udproute"
    TLSROUTE = "tlsroute"


class AnnotationSettings(meta.KubeModel):
    """Which annotations propagate from tenant objects to generated objects (inline in specs)."""

    propagated_annotations: dict[str, str] | None = None
    """Annotation keys (globs) allowed to propagate, each with a comma-separated list of
    allowed values; an empty value allows any value."""
    propagate_all_annotations: bool | None = None
    """Propagate every annotation; propagatedAnnotations is then ignored."""
    denied_annotations: tuple[str, ...] | None = None
    """Annotation keys (globs) never propagated."""
    default_annotations: dict[str, dict[str, str]] | None = None
    """Annotations set on generated objects when absent, keyed by resource kind (see
    AnnotatedResource); the key `all` applies to every kind."""


class LoadBalancerSettings(meta.KubeModel):
    """Settings for L4 LoadBalancers."""

    class_name: str | None = pydantic.Field(default=None, alias="class")
    """loadBalancerClass of the management Services."""
    disable: bool = False
    """Disable L4 load balancing."""
    allowed_endpoint_cidrs: tuple[str, ...] | None = pydantic.Field(
        default=None, alias="allowedEndpointCIDRs"
    )
    """CIDRs tenant endpoints may name; empty or unset: any address no deny names. The most
    specific CIDR of both lists that contains an address decides (deny wins a tie). In a
    Tenant: replaces the Config's list when set."""
    denied_endpoint_cidrs: tuple[str, ...] | None = pydantic.Field(
        default=None, alias="deniedEndpointCIDRs"
    )
    """CIDRs tenant endpoints may not name, besides the manager's built-in ones (Kubernetes
    deployer: loopback, link-local and the management cluster's Service and Pod CIDRs). The
    hub's own sockets are refused whatever these lists say. In a Tenant: replaces the Config's
    list when set."""

    @pydantic.field_validator("allowed_endpoint_cidrs", "denied_endpoint_cidrs")
    @classmethod
    def _cidrs(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for cidr in value or ():
            try:
                ipaddress.ip_network(cidr)
            except ValueError as exc:
                raise ValueError(f"{cidr!r} is not a CIDR: {exc}") from None
        return value


class IngressSettings(meta.KubeModel):
    """Settings for Ingress Routes."""

    class_name: str | None = pydantic.Field(default=None, alias="class")
    """ingressClassName of the generated Ingresses."""
    disable: bool = False
    """Disable Ingress Routes."""


class GatewayAPISettings(meta.KubeModel):
    """Settings for Gateway API Routes."""

    class_name: str | None = pydantic.Field(default=None, alias="class")
    """gatewayClassName of the generated Gateways."""
    default_gateway: meta.ObjectReference | None = None
    """Gateway that generated HTTPRoutes (e.g. for LoadBalancer hostnames) attach to."""
    disable: bool = False
    """Disable Gateway API Routes."""


class CertificatesSettings(meta.KubeModel):
    """Certificate automation settings."""

    default_cluster_issuer: str | None = None
    """cert-manager ClusterIssuer used when a resource names none."""


class Version(meta.KubeModel):
    """Version of the KubeLB manager."""

    git_version: str | None = None
    git_commit: str | None = None
    build_date: str | None = None
    edition: str | None = None


class Topology(StrEnum):
    """Envoy deployment topology. dedicated and global are deprecated and behave as shared."""

    SHARED = "shared"
    DEDICATED = "dedicated"
    GLOBAL = "global"


# The topology every tenant runs with, and the metrics' topology label: a Config naming a
# deprecated topology (dedicated, global) still gets one Envoy workload per tenant, as with shared.
TOPOLOGY = Topology.SHARED

TOPOLOGY_RULE = meta.CELRule(
    rule="self == oldSelf || (self == 'shared' && (oldSelf == 'dedicated' || oldSelf == 'global'))",
    message="topology is immutable; the only allowed change is from dedicated or global "
    "(deprecated) to shared",
    check=lambda change: (
        change[0] == change[1]
        or (change[1] == Topology.SHARED and change[0] in (Topology.DEDICATED, Topology.GLOBAL))
    ),
)


class GracefulShutdown(meta.KubeModel):
    """How Envoy drains on shutdown."""

    disabled: bool = False
    """Disable graceful shutdown."""
    drain_timeout: meta.Duration = meta.crd_default("60s")
    """Maximum time to wait for connections to drain; less than the termination grace period."""
    min_drain_duration: meta.Duration = meta.crd_default("5s")
    """Minimum time to wait before checking the connection count."""
    termination_grace_period_seconds: meta.Int64 = meta.crd_default(300, ge=30)
    """Grace period for pod termination; greater than drainTimeout."""


class OverloadManager(meta.KubeModel):
    """Envoy overload manager limits."""

    enabled: bool = False
    max_active_downstream_connections: meta.Int64 | None = pydantic.Field(default=None, ge=0)
    """Maximum number of active downstream connections."""
    max_heap_size_bytes: meta.Int64 | None = pydantic.Field(default=None, ge=0)
    """Maximum heap size; on reaching it Envoy stops accepting connections."""


class PodMonitor(meta.KubeModel):
    """Prometheus PodMonitor for the Envoy pods."""

    enabled: bool = False


class HeaderLimits(meta.KubeModel):
    """HTTP header limits; unset fields use Envoy's maximums."""

    max_request_headers_kb: meta.Int32 | None = pydantic.Field(default=None, ge=1, le=8192)
    """Maximum request headers size in KiB."""
    max_request_headers_count: meta.Int32 | None = pydantic.Field(default=None, ge=1)
    """Maximum number of request headers."""
    max_response_headers_kb: meta.Int32 | None = pydantic.Field(default=None, ge=1, le=8192)
    """Maximum response headers size in KiB."""


class EnvoyProxy(meta.KubeModel):
    """How the Envoy proxies are deployed."""

    topology: Topology = meta.crd_default(
        Topology.SHARED, json_schema_extra=meta.cel_schema(TOPOLOGY_RULE)
    )
    """Deployment topology. Only shared is supported; dedicated and global are deprecated."""
    use_daemonset: bool = False
    """Run Envoy as a DaemonSet; replicas is then ignored."""
    replicas: meta.Int32 = meta.crd_default(3, ge=1)
    """Number of Envoy replicas (ignored for a DaemonSet)."""
    single_pod_per_node: bool = False
    """Spread Envoy pods across nodes."""
    node_selector: dict[str, str] = pydantic.Field(default_factory=dict)
    """Node labels Envoy pods must run on."""
    tolerations: tuple[meta.Unstructured, ...] = ()
    """Tolerations of the Envoy pods (core Toleration objects)."""
    resources: meta.Unstructured | None = None
    """Resource requirements of the Envoy container (core ResourceRequirements)."""
    affinity: meta.Unstructured | None = None
    """Affinity of the Envoy pods (core Affinity)."""
    graceful_shutdown: GracefulShutdown = pydantic.Field(default_factory=GracefulShutdown)
    """Graceful shutdown of Envoy pods."""
    overload_manager: OverloadManager = pydantic.Field(default_factory=OverloadManager)
    """Envoy overload manager."""
    pod_monitor: PodMonitor = pydantic.Field(default_factory=PodMonitor)
    """PodMonitor for Envoy metrics."""
    header_limits: HeaderLimits = pydantic.Field(default_factory=HeaderLimits)
    """HTTP header limits."""

    @property
    def effective_topology(self) -> Topology:
        """Deprecated topologies behave as shared."""
        return Topology.SHARED


class ConfigDNSSettings(meta.KubeModel):
    """DNS automation settings for LoadBalancer hostnames."""

    wildcard_domain: str | None = None
    """Base domain for generated LoadBalancer hostnames."""
    allow_explicit_hostnames: bool = False
    """Allow LoadBalancers to request an explicit spec.hostname."""
    use_dns_annotations: bool = pydantic.Field(default=False, alias="useDNSAnnotations")
    """Add external-dns annotations to hostname objects."""
    use_certificate_annotations: bool = False
    """Add cert-manager annotations to hostname objects."""
    allowed_domains: tuple[str, ...] | None = None
    """Domains LoadBalancer hostnames must fall under (kubelb addition, after upstream EE's
    Tenant allowedDomains): `*` stands for one label, `**` for any number; unset: any."""


class ConfigSpec(AnnotationSettings):
    """Desired state of the Config."""

    envoy_proxy: EnvoyProxy = pydantic.Field(default_factory=EnvoyProxy)
    """Desired state of the Envoy proxies."""
    load_balancer: LoadBalancerSettings = pydantic.Field(default_factory=LoadBalancerSettings)
    ingress: IngressSettings = pydantic.Field(default_factory=IngressSettings)
    gateway_api: GatewayAPISettings = pydantic.Field(
        default_factory=GatewayAPISettings, alias="gatewayAPI"
    )
    dns: ConfigDNSSettings = pydantic.Field(default_factory=ConfigDNSSettings)
    certificates: CertificatesSettings = pydantic.Field(default_factory=CertificatesSettings)


class ConfigStatus(meta.KubeModel):
    """Observed state of the Config."""

    version: Version | None = None
    """Version of the manager that last reconciled the Config."""


class Config(meta.KubeObject):
    """Config is the object that represents the Config for the KubeLB management controller."""

    KIND: ClassVar[str] = "Config"

    api_version: Literal["kubelb.k8c.io/v1alpha1"] = "kubelb.k8c.io/v1alpha1"
    kind: Literal["Config"] = "Config"
    spec: ConfigSpec = pydantic.Field(default_factory=ConfigSpec)
    status: ConfigStatus = pydantic.Field(default_factory=ConfigStatus)


def check_update(old: Config, new: Config) -> None:
    """Transition rules the API server checks on update (CEL with oldSelf)."""
    before, after = old.spec.envoy_proxy.topology, new.spec.envoy_proxy.topology
    if not TOPOLOGY_RULE.check((before, after)):
        reason = f'Invalid value: "{after}": {TOPOLOGY_RULE.message}'
        raise errors.APIValidationError(
            [errors.FieldError("spec.envoyProxy.topology", reason)], kind="Config", name=new.name
        )
