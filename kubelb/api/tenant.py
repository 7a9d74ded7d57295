"""The Tenant kind (cluster-scoped) and the tenant <-> namespace naming rule.

A Tenant `X` owns namespace `tenant-X`, where its agent writes LoadBalancers, Routes, Addresses
and SyncSecrets. Tenant settings override Config; unset (None) means inherit from Config.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar, Literal

import pydantic

from kubelb.api import config, meta

NAMESPACE_PREFIX = "tenant-"


def namespace_for(tenant_name: str) -> str:
    """The tenant's namespace in the management cluster."""
    return f"{NAMESPACE_PREFIX}{tenant_name}"


def tenant_name_for(namespace: str) -> str:
    """The tenant owning a namespace (the `tenant-` prefix stripped)."""
    return namespace.removeprefix(NAMESPACE_PREFIX)


class TenantEnvoyProxy(meta.KubeModel):
    """Per-tenant Envoy overrides."""

    replicas: meta.Int32 | None = pydantic.Field(default=None, ge=1)
    """Number of Envoy replicas for this tenant."""
    resources: meta.Unstructured | None = None
    """Resource requirements of this tenant's Envoy container (core ResourceRequirements)."""


class TenantDNSSettings(meta.KubeModel):
    """Per-tenant DNS settings; unset fields inherit from Config."""

    wildcard_domain: str | None = None
    """Base domain for generated LoadBalancer hostnames."""
    allow_explicit_hostnames: bool | None = None
    """Allow LoadBalancers to request an explicit spec.hostname."""
    use_dns_annotations: bool | None = pydantic.Field(default=None, alias="useDNSAnnotations")
    """Add external-dns annotations to hostname objects."""
    use_certificate_annotations: bool | None = None
    """Add cert-manager annotations to hostname objects."""
    allowed_domains: tuple[str, ...] | None = None
    """Domains LoadBalancer hostnames must fall under (`*` one label, `**` any number);
    replaces the Config's list when set."""


class TenantSpec(config.AnnotationSettings):
    """Desired state of a Tenant."""

    envoy_proxy: TenantEnvoyProxy = pydantic.Field(default_factory=TenantEnvoyProxy)
    load_balancer: config.LoadBalancerSettings = pydantic.Field(
        default_factory=config.LoadBalancerSettings
    )
    ingress: config.IngressSettings = pydantic.Field(default_factory=config.IngressSettings)
    gateway_api: config.GatewayAPISettings = pydantic.Field(
        default_factory=config.GatewayAPISettings, alias="gatewayAPI"
    )
    dns: TenantDNSSettings = pydantic.Field(default_factory=TenantDNSSettings)
    certificates: config.CertificatesSettings = pydantic.Field(
        default_factory=config.CertificatesSettings
    )


class TenantPhase(StrEnum):
    PENDING = "Pending"
    READY = "Ready"
    FAILED = "Failed"
    TERMINATING = "Terminating"


class TenantStatus(meta.KubeModel):
    """Observed state of a Tenant."""

    observed_generation: meta.Int64 | None = None
    """The generation last reconciled."""
    phase: TenantPhase | None = None
    """Pending, Ready, Failed or Terminating."""
    conditions: tuple[meta.Condition, ...] = meta.conditions_field()
    """Latest observations (type Ready)."""


class Tenant(meta.KubeObject):
    """Tenant is the Schema for the tenants API (cluster-scoped)."""

    KIND: ClassVar[str] = "Tenant"

    api_version: Literal["kubelb.k8c.io/v1alpha1"] = "kubelb.k8c.io/v1alpha1"
    kind: Literal["Tenant"] = "Tenant"
    spec: TenantSpec = pydantic.Field(default_factory=TenantSpec)
    status: TenantStatus = pydantic.Field(default_factory=TenantStatus)

    @property
    def namespace_name(self) -> str:
        """The tenant's namespace (`tenant-<name>`)."""
        return namespace_for(self.name)
