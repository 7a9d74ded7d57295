"""The Route kind: one L7 source object (Ingress, Gateway, HTTPRoute, GRPCRoute) of a tenant.

spec: the upstream endpoints (the agent sets one entry referencing `Addresses/default`) and
the source: the full embedded Kubernetes object plus copies of the Services it references.
Both are kept verbatim (unstructured). status: per-Service and per-route `ResourceState`s
holding the raw status JSON of the objects the manager generated.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import pydantic

from kubelb.api import common, meta


def _embedded_object() -> dict[str, pydantic.JsonValue]:
    return {"type": "object", meta.PRESERVE_UNKNOWN: True, meta.EMBEDDED_RESOURCE: True}


class KubernetesSource(meta.KubeModel):
    """A Kubernetes object as the source of a Route, with the Services it references."""

    resource: dict[str, Any] = pydantic.Field(json_schema_extra=_embedded_object())
    """The source object (Ingress, Gateway, HTTPRoute or GRPCRoute), embedded whole."""
    services: tuple[dict[str, Any], ...] = pydantic.Field(
        default=(), json_schema_extra={"items": _embedded_object()}
    )
    """Copies of the tenant Services the source references, with their NodePorts."""

    @pydantic.field_validator("resource")
    @classmethod
    def _resource_has_type_meta(cls, value: dict[str, Any]) -> dict[str, Any]:
        missing = [k for k in ("apiVersion", "kind") if not value.get(k)]
        if missing:
            raise ValueError(f"embedded object must set {' and '.join(missing)}")
        _check_names(value)
        return value

    @pydantic.field_validator("services")
    @classmethod
    def _services_are_named(cls, value: tuple[dict[str, Any], ...]) -> tuple[dict[str, Any], ...]:
        for service in value:
            _check_names(service)
        return value

    @property
    def resource_kind(self) -> str:
        return str(self.resource.get("kind", ""))


def _check_names(obj: dict[str, Any]) -> None:
    """An embedded object's name and namespace obey Kubernetes' rules: the tenant writes the
    Route, so nothing proves its cluster's API server ever saw them."""
    metadata = obj.get("metadata")
    if metadata is None:
        return
    if not isinstance(metadata, dict):
        raise ValueError("embedded metadata must be an object")
    meta.ObjectMeta.model_validate(
        {k: metadata[k] for k in ("name", "namespace", "generateName") if k in metadata}
    )


class RouteSource(meta.KubeModel):
    """Where a Route comes from."""

    kubernetes: KubernetesSource | None = None
    """A Kubernetes object."""


class RouteSpec(meta.KubeModel):
    """Desired state of a Route."""

    endpoints: tuple[common.LoadBalancerEndpoints, ...] = pydantic.Field(min_length=1)
    """Sets of addresses and ports that comprise an exposed user service on a cluster."""
    source: RouteSource = pydantic.Field(default_factory=RouteSource)
    """The route's source."""


class ResourceState(meta.KubeModel):
    """State of one object the manager generated for a Route."""

    api_version: str | None = None
    """API version of the generated object."""
    kind: str | None = None
    """Kind of the generated object."""
    name: str | None = None
    """Name of the origin object."""
    namespace: str | None = None
    """Namespace of the origin object."""
    generated_name: str | None = None
    """Name of the generated object in the management cluster."""
    status: meta.Unstructured | None = None
    """The generated object's status, as raw JSON."""
    conditions: tuple[meta.Condition, ...] = meta.conditions_field()
    """Whether the object was applied."""


class RouteServiceState(ResourceState):
    """State of one generated Service of a Route."""

    ports: tuple[meta.ServicePort, ...] = ()
    """Ports of the generated Service, with the allocated targetPort."""


class RouteResourcesStatus(meta.KubeModel):
    """The objects generated for a Route."""

    source: str | None = None
    """Unused upstream; kept for compatibility."""
    services: dict[str, RouteServiceState] = pydantic.Field(default_factory=dict)
    """Generated Services keyed by `<origin namespace>/<origin name>`."""
    route: ResourceState | None = None
    """The generated Ingress, Gateway, HTTPRoute or GRPCRoute."""


class RouteStatus(meta.KubeModel):
    """Observed state of a Route."""

    resources: RouteResourcesStatus = pydantic.Field(default_factory=RouteResourcesStatus)
    """The generated objects and their state."""


class Route(meta.KubeObject):
    """Route is the object that represents a route in the cluster."""

    KIND: ClassVar[str] = "Route"

    api_version: Literal["kubelb.k8c.io/v1alpha1"] = "kubelb.k8c.io/v1alpha1"
    kind: Literal["Route"] = "Route"
    spec: RouteSpec
    status: RouteStatus = pydantic.Field(default_factory=RouteStatus)
