"""Parse raw objects into API models by apiVersion/kind, and dump models back to raw objects.

Input: one decoded YAML/JSON document (a dict). Output: the typed model (`parse`) or the raw dict
(`dump`). Unknown fields survive the round trip. Every failure, including an unknown kind or a
document that is not a mapping, is an `APIValidationError` naming the object and field paths.
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar

import pydantic

from kubelb.api import (
    addresses,
    config,
    errors,
    loadbalancer,
    meta,
    route,
    syncsecret,
    tenant,
    tenantstate,
)
from kubelb.util import logsafe

logger = logging.getLogger(__name__)

T = TypeVar("T", bound=meta.KubeObject)

KubeLBObject = (
    loadbalancer.LoadBalancer
    | route.Route
    | addresses.Addresses
    | tenant.Tenant
    | tenantstate.TenantState
    | config.Config
    | syncsecret.SyncSecret
)

MODELS: tuple[type[meta.KubeObject], ...] = (
    loadbalancer.LoadBalancer,
    route.Route,
    addresses.Addresses,
    tenant.Tenant,
    tenantstate.TenantState,
    config.Config,
    syncsecret.SyncSecret,
)
KINDS: dict[str, type[meta.KubeObject]] = {cls.KIND: cls for cls in MODELS}


def parse(obj: Any) -> KubeLBObject:
    """Validate one raw object; dispatch on `apiVersion` and `kind`."""
    if not isinstance(obj, dict):
        raise errors.APIValidationError(
            [errors.FieldError("", f"expected an object (mapping), got {type(obj).__name__}")]
        )
    kind = obj.get("kind")
    api_version = obj.get("apiVersion")
    name = _display_name(obj)
    if api_version != meta.API_VERSION:
        reason = f'Unsupported value: "{api_version}": supported values: "{meta.API_VERSION}"'
        if api_version is None:
            reason = "Required value"
        raise errors.APIValidationError(
            [errors.FieldError("apiVersion", reason)],
            kind=kind if isinstance(kind, str) else "",
            name=name,
        )
    cls = KINDS.get(str(kind))
    if cls is None:
        supported = ", ".join(f'"{k}"' for k in sorted(KINDS))
        reason = f'Unsupported value: "{kind}": supported values: {supported}'
        if kind is None:
            reason = "Required value"
        raise errors.APIValidationError(
            [errors.FieldError("kind", reason)],
            kind=kind if isinstance(kind, str) else "",
            name=name,
        )
    return parse_as(cls, obj)  # type: ignore[return-value]


def parse_as(cls: type[T], obj: Any) -> T:
    """Validate one raw object as a given kind."""
    try:
        return cls.model_validate(obj)
    except pydantic.ValidationError as exc:
        name = _display_name(obj) if isinstance(obj, dict) else ""
        raise errors.from_pydantic(exc, kind=cls.KIND, name=name) from None


def dump(model: meta.KubeModel) -> dict[str, Any]:
    """The raw object: camelCase keys, only fields that were set, unknown fields included."""
    result: dict[str, Any] = model.model_dump(by_alias=True, exclude_unset=True, mode="json")
    return result


def _display_name(obj: dict[str, Any]) -> str:
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        return ""
    name, namespace = metadata.get("name"), metadata.get("namespace")
    if not isinstance(name, str):
        return ""
    shown = f"{namespace}/{name}" if isinstance(namespace, str) and namespace else name
    return logsafe.shown(shown)  # the name of an invalid object may be anything, of any size
