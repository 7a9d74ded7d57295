"""The SyncSecret kind: a Secret the agent copies from the tenant cluster to its namespace.

Shaped like a core Secret at the top level (no spec): `data` (base64), `stringData`, `type`,
`immutable`. The manager turns each SyncSecret into a core Secret named after its UID.
"""

from __future__ import annotations

import base64
import binascii
from enum import StrEnum
from typing import ClassVar, Literal

import pydantic

from kubelb.api import meta


def _check_base64(data: dict[str, str]) -> dict[str, str]:
    for key, value in data.items():
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"value of key {key!r} is not valid base64") from None
    return data


class SyncSecretPhase(StrEnum):
    PENDING = "Pending"
    SYNCED = "Synced"
    FAILED = "Failed"
    TERMINATING = "Terminating"


class SyncSecretStatus(meta.KubeModel):
    """Observed state of a SyncSecret."""

    observed_generation: meta.Int64 | None = None
    """The generation last reconciled."""
    phase: SyncSecretPhase | None = None
    """Pending, Synced, Failed or Terminating."""
    conditions: tuple[meta.Condition, ...] = meta.conditions_field()
    """Latest observations (type Synced)."""


class SyncSecret(meta.KubeObject):
    """SyncSecret is the Schema for the syncsecrets API."""

    KIND: ClassVar[str] = "SyncSecret"

    api_version: Literal["kubelb.k8c.io/v1alpha1"] = "kubelb.k8c.io/v1alpha1"
    kind: Literal["SyncSecret"] = "SyncSecret"
    immutable: bool | None = None
    """When true, the data cannot be updated."""
    data: dict[str, str] = pydantic.Field(
        default_factory=dict,
        json_schema_extra={"additionalProperties": {"type": "string", "format": "byte"}},
    )
    """Secret data, base64-encoded values."""
    string_data: dict[str, str] = pydantic.Field(default_factory=dict)
    """Write-only convenience: plain-text values merged into data."""
    type: str | None = None
    """Type of the Secret (e.g. kubernetes.io/tls)."""
    status: SyncSecretStatus = pydantic.Field(default_factory=SyncSecretStatus)

    @pydantic.field_validator("data")
    @classmethod
    def _data_is_base64(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_base64(value)

    def decoded(self) -> dict[str, bytes]:
        """data decoded, with stringData merged over it as the API server does."""
        out = {k: base64.b64decode(v) for k, v in self.data.items()}
        out.update({k: v.encode() for k, v in self.string_data.items()})
        return out
