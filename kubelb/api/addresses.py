"""The Addresses kind: the upstream addresses (Ready node IPs or hostnames) of one tenant.

Written by the agent's node controller as `Addresses/default` in the tenant namespace; read by
LoadBalancer and Route endpoints that set `addressesReference`.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import pydantic

from kubelb.api import common, meta

DEFAULT_NAME = "default"


class AddressesSpec(meta.KubeModel):
    """The addresses of a tenant's upstream endpoints."""

    addresses: tuple[common.EndpointAddress, ...] = pydantic.Field(default=(), min_length=1)
    """Addresses of the tenant's Ready nodes."""


class AddressesStatus(meta.KubeModel):
    """Observed state of Addresses (empty upstream)."""


class Addresses(meta.KubeObject):
    """Addresses is the Schema for the addresses API."""

    KIND: ClassVar[str] = "Addresses"

    api_version: Literal["kubelb.k8c.io/v1alpha1"] = "kubelb.k8c.io/v1alpha1"
    kind: Literal["Addresses"] = "Addresses"
    spec: AddressesSpec
    status: AddressesStatus = pydantic.Field(default_factory=AddressesStatus)
