"""The TenantState kind: what a tenant may read about the manager (`default` in its namespace).

Written by the manager's tenant controller; read by the agent and the CLI (version, edition,
whether L4 load balancing is disabled for the tenant). The spec is empty.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import pydantic

from kubelb.api import config, meta

DEFAULT_NAME = "default"


class TenantStateSpec(meta.KubeModel):
    """Desired state of a TenantState (empty)."""


class TenantStateLoadBalancer(meta.KubeModel):
    """L4 load-balancing state for the tenant."""

    disable: bool = False
    """True when the Tenant or the Config disables L4 load balancing."""


class TenantStateStatus(meta.KubeModel):
    """Observed state of a TenantState."""

    version: config.Version | None = None
    """Version of the KubeLB manager."""
    last_updated: meta.DateTime | None = None
    """When the manager last wrote this status."""
    conditions: tuple[meta.Condition, ...] = meta.conditions_field()
    """Latest observations."""
    load_balancer: TenantStateLoadBalancer = pydantic.Field(default_factory=TenantStateLoadBalancer)
    """L4 load-balancing state."""


class TenantState(meta.KubeObject):
    """TenantState is the Schema for the tenantstates API."""

    KIND: ClassVar[str] = "TenantState"

    api_version: Literal["kubelb.k8c.io/v1alpha1"] = "kubelb.k8c.io/v1alpha1"
    kind: Literal["TenantState"] = "TenantState"
    spec: TenantStateSpec = pydantic.Field(default_factory=TenantStateSpec)
    status: TenantStateStatus = pydantic.Field(default_factory=TenantStateStatus)
