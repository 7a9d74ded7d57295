"""From an L7 source object (Ingress, Gateway, HTTPRoute, GRPCRoute) to the Route the agent
writes for it, and back: pure functions and the per-kind adapter contract.

Inputs: the tenant object, the Service copies for it (`kubelb.agent.servicecopies`). Outputs:
the desired Route (name = source UID, in `tenant-<name>`; labels origin-name, origin-ns,
origin-resource-kind `Kind.group`, managed-by; the manager's clean-up finalizer;
spec.endpoints `[{name: default, addressesReference: {name: default}}]`;
spec.source.kubernetes.resource = the stripped source, .services = the copies), whether a
live Route needs an update, and the served status the manager reports in
`status.resources.route.status`.

`SourceKind` is what each kind adds to the generic loop (`kubelb.agent.routes`): its filter,
the Services it references, what it cannot serve, and how the served status lands on it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping as MappingABC, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from kubelb.api import finalizers, labels, meta, route as api_route
from kubelb.kube import objects, resources, writer

# Gateway API condition types a problem can turn False, and the reason for a missing Service.
ACCEPTED = "Accepted"
RESOLVED_REFS = "ResolvedRefs"
BACKEND_NOT_FOUND = "BackendNotFound"
# A ClusterIP backend whose `<name>-nodeport` twin name a user's Service already has.
TWIN_NAME_TAKEN = "NodePortServiceNameTaken"
# The manager's condition on a Route: the generated object was applied.
RESOURCE_APPLIED = "ResourceAppliedSuccessfully"
DEFAULT_ENDPOINTS: tuple[dict[str, Any], ...] = (
    {"name": "default", "addressesReference": {"name": "default"}},
)


@dataclass(frozen=True, slots=True)
class Problem:
    """Why (part of) a source cannot be served. `condition` names the Gateway API condition
    it turns False (kinds with conditions); every problem is also an Event."""

    reason: str
    message: str
    condition: str | None = None


class SourceKind(Protocol):
    """One L7 kind in the generic source-to-Route loop."""

    @property
    def resource(self) -> resources.Resource: ...

    @property
    def metric(self) -> str:
        """ingress, gateway, httproute or grpcroute: names its metrics."""
        ...

    def in_scope(self, obj: objects.RawObject) -> bool:
        """Ours to serve (class, parent); objects out of scope are never touched."""
        ...

    def backends(self, obj: objects.RawObject) -> list[objects.ObjectKey]:
        """The Services it references, in order of appearance, without duplicates."""
        ...

    def problems(self, obj: objects.RawObject) -> list[Problem]:
        """What it asks for that cannot be served (unsupported filters, backend kinds)."""
        ...

    def status(
        self, obj: objects.RawObject, served: MappingABC[str, Any] | None,
        problems: Sequence[Problem],
    ) -> writer.StatusMutator:  # fmt: skip
        """The tenant object's status from the served one (None: not served yet) and the
        problems found."""
        ...

    def cleared(self, status: dict[str, Any]) -> dict[str, Any]:
        """The status without what the agent wrote (the object left our scope)."""
        ...


def kind_label(resource: resources.Resource) -> str:
    """Upstream's origin-resource-kind value, e.g. `Ingress.networking.k8s.io`."""
    return f"{resource.kind}.{resource.group}" if resource.group else resource.kind


def stripped(obj: MappingABC[str, Any], resource: resources.Resource) -> dict[str, Any]:
    """What a Route embeds of a tenant object: type meta, name, namespace, labels, annotations
    (without kubectl's last-applied copy), uid and spec; no status, owners or volatile metadata,
    so our own status writes never change the Route."""
    out_meta = objects.embedded_metadata(obj)
    return {
        "apiVersion": resource.api_version,
        "kind": resource.kind,
        "metadata": out_meta,
        "spec": copy.deepcopy(obj.get("spec") or {}),
    }


def route_labels(obj: MappingABC[str, Any], resource: resources.Resource) -> dict[str, str]:
    return {
        labels.ORIGIN_NAME: objects.name(obj),
        labels.ORIGIN_NAMESPACE: objects.namespace(obj),
        labels.ORIGIN_RESOURCE_KIND: kind_label(resource),
        labels.MANAGED_BY: labels.MANAGED_BY_VALUE,
    }


def desired_route(
    obj: MappingABC[str, Any],
    resource: resources.Resource,
    *,
    namespace: str,
    services: Sequence[MappingABC[str, Any]],
) -> objects.RawObject:
    return {
        "apiVersion": meta.API_VERSION,
        "kind": api_route.Route.KIND,
        "metadata": {
            "name": objects.uid(obj),
            "namespace": namespace,
            "labels": route_labels(obj, resource),
            # The manager's clean-up finalizer, set at creation (as on a LoadBalancer): the
            # manager would add it as its first write anyway. It still adds it to a Route
            # created without it (an upstream agent's).
            "finalizers": [finalizers.CLEANUP],
        },
        "spec": {
            "endpoints": [dict(e) for e in DEFAULT_ENDPOINTS],
            "source": {
                "kubernetes": {
                    "resource": stripped(obj, resource),
                    "services": [copy.deepcopy(dict(s)) for s in services],
                }
            },
        },
    }


def origin_key(route: MappingABC[str, Any]) -> objects.ObjectKey | None:
    """The tenant object a Route was made from (by its labels)."""
    route_labels_ = objects.labels(route)
    name = route_labels_.get(labels.ORIGIN_NAME)
    namespace = route_labels_.get(labels.ORIGIN_NAMESPACE)
    if not name or not namespace:
        return None
    return objects.ObjectKey(namespace, name)


def origin_index_value(kind: str, key: objects.ObjectKey) -> str:
    return f"{kind}/{key}"


def origin_index(route: MappingABC[str, Any]) -> list[str]:
    """Indexer: Routes filed under `<Kind.group>/<origin ns>/<origin name>`."""
    key = origin_key(route)
    kind = objects.labels(route).get(labels.ORIGIN_RESOURCE_KIND)
    return [origin_index_value(kind, key)] if key is not None and kind else []


def needs_update(live: MappingABC[str, Any], desired: MappingABC[str, Any]) -> bool:
    """True when the live Route lacks a desired label or its spec differs (order of lists
    aside; the embedded objects compared whole)."""
    live_labels = objects.labels(live)
    if any(live_labels.get(k) != v for k, v in objects.labels(desired).items()):
        return True
    return not writer.equivalent(live.get("spec") or {}, desired.get("spec") or {})


def updated(live: objects.RawObject, desired: MappingABC[str, Any]) -> objects.RawObject:
    """`live` with the desired spec and labels (others' labels kept), to PUT with live's
    resourceVersion as the precondition."""
    live_meta = dict(objects.metadata(live))
    live_meta["labels"] = {**objects.labels(live), **objects.labels(desired)}
    return {**live, "metadata": live_meta, "spec": copy.deepcopy(desired["spec"])}


def refusal(route: MappingABC[str, Any] | None) -> Problem | None:
    """Why the manager did not apply the Route (its ResourceAppliedSuccessfully condition is
    False: disabled by Config or Tenant, a conflict...), or None. When the manager served
    nothing of it (no generated object's status to copy: disabled, no Gateway to attach to)
    the refusal turns Accepted False, so the source's own conditions say why too; otherwise
    the served status already holds the finer conditions."""
    if route is None:
        return None
    condition_type = ACCEPTED if served_status(route) is None else None
    for condition in objects.lookup(route, "status.resources.route.conditions") or ():
        if (
            isinstance(condition, MappingABC)
            and condition.get("type") == RESOURCE_APPLIED
            and condition.get("status") == meta.ConditionStatus.FALSE
        ):
            return Problem(
                str(condition.get("reason") or "RouteNotApplied"),
                str(condition.get("message") or "KubeLB did not apply the Route"),
                condition_type,
            )
    return None


def served_status(route: MappingABC[str, Any] | None) -> MappingABC[str, Any] | None:
    """The generated object's status the manager reports (`status.resources.route.status`)."""
    if route is None:
        return None
    value = objects.lookup(route, "status.resources.route.status")
    return value if isinstance(value, MappingABC) and value else None
