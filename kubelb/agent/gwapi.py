"""Gateway, HTTPRoute and GRPCRoute (gateway.networking.k8s.io/v1) as L7 sources.

Gateway: in scope when named `kubelb` (upstream CE serves one Gateway per tenant) and, with
`--use-gateway-class`, of class `kubelb`; it references no Services. Its status is the served
one: addresses, conditions and listeners, every condition's observedGeneration rewritten to the
tenant Gateway's own generation; a Gateway the manager refused and served nothing of (disabled
by Config or Tenant) is Accepted and Programmed False with the manager's reason, no addresses.

HTTPRoute, GRPCRoute: in scope when their one parentRef names the Gateway `kubelb` (upstream CE:
a route with several parents is not served). Backends: the
Service backendRefs and RequestMirror targets, at rule and backend level, in the ref's namespace
or the route's. Status: `parents` for our parentRefs only (other controllers' entries are kept),
each with the parentRef as the tenant wrote it and the served conditions with the route's own
generation; what the agent finds itself (an unknown backend, an unsupported filter or backend
kind) turns Accepted or ResolvedRefs False with its reason, whatever was served, and so does
a refusal of the manager's that served nothing (disabled, no Gateway `kubelb` served to attach to).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping as MappingABC, Sequence
from typing import Any

from kubelb.agent import routemapping
from kubelb.api import meta
from kubelb.kube import objects, resources, writer

GATEWAY_NAME = "kubelb"
CLASS_NAME = "kubelb"
GROUP = "gateway.networking.k8s.io"
# Named in the parents the agent writes before the manager reported any.
CONTROLLER_NAME = "kubelb.k8c.io/gateway-controller"

ACCEPTED = routemapping.ACCEPTED
RESOLVED_REFS = routemapping.RESOLVED_REFS
PROGRAMMED = "Programmed"
UNSUPPORTED_VALUE = "UnsupportedValue"
INVALID_KIND = "InvalidKind"

HTTP_FILTERS = frozenset({"RequestHeaderModifier", "ResponseHeaderModifier", "RequestRedirect",
                          "URLRewrite", "RequestMirror"})  # fmt: skip
GRPC_FILTERS = frozenset({"RequestHeaderModifier", "ResponseHeaderModifier", "RequestMirror"})


def rewritten(conditions: Any, generation: int | None, previous: Any = ()) -> list[dict[str, Any]]:
    """Conditions with observedGeneration set to `generation` (the tenant object's) and a
    lastTransitionTime, which Gateway API requires and the manager leaves out: the served one,
    else `previous`'s (the tenant's current conditions) while the status stays, else now."""
    before = {c.get("type"): c for c in previous or () if isinstance(c, MappingABC)}
    out = []
    for condition in conditions or ():
        if isinstance(condition, MappingABC):
            item = dict(condition)
            if generation is not None:
                item["observedGeneration"] = generation
            if not item.get("lastTransitionTime"):
                old = before.get(item.get("type"))
                same = old is not None and old.get("status") == item.get("status")
                item["lastTransitionTime"] = (
                    old.get("lastTransitionTime") if same and old else None
                ) or meta.rfc3339()
            out.append(item)
    return out


def upsert_condition(
    conditions: list[dict[str, Any]], previous: Any, *, type: str, status: str, reason: str,
    message: str, generation: int | None,
) -> list[dict[str, Any]]:  # fmt: skip
    """`conditions` with `type` set; lastTransitionTime kept from `previous` (the tenant's
    current conditions) while the status stays, so an unchanged problem writes nothing."""
    before = next((c for c in previous or () if isinstance(c, MappingABC)
                   and c.get("type") == type), None)  # fmt: skip
    when = before.get("lastTransitionTime") if before and before.get("status") == status else None
    condition: dict[str, Any] = {
        "type": type,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": when or meta.rfc3339(),
    }
    if generation is not None:
        condition["observedGeneration"] = generation
    return [*(c for c in conditions if c.get("type") != type), condition]


class GatewayKind:
    resource = resources.GATEWAYS
    metric = "gateway"

    def __init__(self, *, use_gateway_class: bool = True) -> None:
        self.use_gateway_class = use_gateway_class

    def in_scope(self, obj: objects.RawObject) -> bool:
        if objects.name(obj) != GATEWAY_NAME:
            return False
        return not self.use_gateway_class or (
            objects.lookup(obj, "spec.gatewayClassName") == CLASS_NAME
        )

    def backends(self, obj: objects.RawObject) -> list[objects.ObjectKey]:
        return []

    def problems(self, obj: objects.RawObject) -> list[routemapping.Problem]:
        return []

    def status(
        self, obj: objects.RawObject, served: MappingABC[str, Any] | None,
        problems: Sequence[routemapping.Problem],
    ) -> writer.StatusMutator:  # fmt: skip
        generation = objects.generation(obj)

        def mutate(status: dict[str, Any]) -> dict[str, Any]:
            if served is None:
                return self._refused(status, problems, generation)
            out = dict(status)
            if "addresses" in served:
                out["addresses"] = served["addresses"]
            out["conditions"] = rewritten(
                served.get("conditions"), generation, status.get("conditions")
            )
            listeners_before = {
                item.get("name"): item.get("conditions")
                for item in status.get("listeners") or ()
                if isinstance(item, MappingABC)
            }
            out["listeners"] = [
                {**listener, "conditions": rewritten(
                    listener.get("conditions"), generation,
                    listeners_before.get(listener.get("name")),
                )}
                for listener in served.get("listeners") or () if isinstance(listener, MappingABC)
            ]  # fmt: skip
            return out

        return mutate

    def cleared(self, status: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in status.items() if k not in ("addresses", "listeners")} | {
            "conditions": []
        }

    def _refused(self, status: dict[str, Any], problems: Sequence[routemapping.Problem],
                 generation: int | None) -> dict[str, Any]:  # fmt: skip
        """Nothing served: a refusal (disabled by Config or Tenant) makes the Gateway neither
        Accepted nor Programmed, without addresses; no refusal leaves the status alone."""
        refused = [p for p in problems if p.condition == ACCEPTED]
        if not refused:
            return status
        conditions: list[dict[str, Any]] = []
        for type_ in (ACCEPTED, PROGRAMMED):
            conditions = upsert_condition(
                conditions, status.get("conditions"), type=type_, status="False",
                reason=refused[0].reason, message="; ".join(p.message for p in refused),
                generation=generation,
            )  # fmt: skip
        return self.cleared(status) | {"conditions": conditions}


class RouteKind:
    """HTTPRoute or GRPCRoute: the two differ in the filters they may use."""

    def __init__(self, resource: resources.Resource, metric: str,
                 filters: frozenset[str]) -> None:  # fmt: skip
        self.resource = resource
        self.metric = metric
        self.filters = filters

    def in_scope(self, obj: objects.RawObject) -> bool:
        refs = _parent_refs(obj)
        return len(refs) == 1 and serves(refs[0])

    def backends(self, obj: objects.RawObject) -> list[objects.ObjectKey]:
        namespace = objects.namespace(obj)
        keys = (objects.ObjectKey(ref.get("namespace") or namespace, str(ref["name"]))
                for ref in _backend_refs(obj) if _is_service(ref) and ref.get("name"))  # fmt: skip
        return list(dict.fromkeys(keys))

    def problems(self, obj: objects.RawObject) -> list[routemapping.Problem]:
        kinds = dict.fromkeys(f.get("type") for f in _filters(obj))
        out = [
            routemapping.Problem(UNSUPPORTED_VALUE, f"filter {kind} is not supported", ACCEPTED)
            for kind in kinds
            if kind not in self.filters
        ]
        for ref in _backend_refs(obj):
            if not _is_service(ref):
                group = ref.get("group") or "core"
                out.append(routemapping.Problem(
                    INVALID_KIND,
                    f"backendRef {ref.get('kind')}.{group}/{ref.get('name')}: only Services "
                    "are supported",
                    RESOLVED_REFS,
                ))  # fmt: skip
        return out

    def status(
        self, obj: objects.RawObject, served: MappingABC[str, Any] | None,
        problems: Sequence[routemapping.Problem],
    ) -> writer.StatusMutator:  # fmt: skip
        generation = objects.generation(obj)
        ours = [ref for ref in _parent_refs(obj) if serves(ref)]
        served_parents = [p for p in (served or {}).get("parents") or ()
                          if isinstance(p, MappingABC)]  # fmt: skip

        def mutate(status: dict[str, Any]) -> dict[str, Any]:
            current = [p for p in status.get("parents") or () if isinstance(p, MappingABC)]
            kept = [p for p in current if not any(same_parent(p.get("parentRef"), r) for r in ours)]
            parents = []
            for ref in ours:
                match = _find_parent(served_parents, ref)
                previous = _find_parent(current, ref)
                conditions = rewritten(
                    match.get("conditions") if match else (),
                    generation,
                    previous.get("conditions") if previous else (),
                )
                for type_ in (ACCEPTED, RESOLVED_REFS):
                    found = [p for p in problems if p.condition == type_]
                    if found:
                        conditions = upsert_condition(
                            conditions, previous.get("conditions") if previous else (),
                            type=type_, status="False", reason=found[0].reason,
                            message="; ".join(p.message for p in found), generation=generation,
                        )  # fmt: skip
                if not conditions:
                    continue
                controller = (match or {}).get("controllerName") or CONTROLLER_NAME
                parents.append({"parentRef": dict(ref), "controllerName": controller,
                                "conditions": conditions})  # fmt: skip
            return {**status, "parents": kept + parents}

        return mutate

    def cleared(self, status: dict[str, Any]) -> dict[str, Any]:
        """Without the parent entries for the Gateway kubelb (ours, now stale)."""
        parents = [p for p in status.get("parents") or ()
                   if not (isinstance(p, MappingABC) and serves(p.get("parentRef")))]  # fmt: skip
        return {**status, "parents": parents}


def serves(ref: Any) -> bool:
    """A parentRef to the Gateway `kubelb`."""
    return (isinstance(ref, MappingABC) and ref.get("name") == GATEWAY_NAME
            and (ref.get("kind") or "Gateway") == "Gateway"
            and (ref.get("group") or GROUP) == GROUP)  # fmt: skip


def same_parent(a: Any, b: Any) -> bool:
    """The same parentRef, namespace aside (the manager names its own)."""
    if not isinstance(a, MappingABC) or not isinstance(b, MappingABC):
        return False
    return all(a.get(k) == b.get(k) for k in ("name", "sectionName", "port"))


def _find_parent(parents: Sequence[MappingABC[str, Any]],
                 ref: MappingABC[str, Any]) -> MappingABC[str, Any] | None:  # fmt: skip
    return next((p for p in parents if same_parent(p.get("parentRef"), ref)), None)


def _parent_refs(obj: MappingABC[str, Any]) -> list[MappingABC[str, Any]]:
    refs = objects.lookup(obj, "spec.parentRefs") or ()
    return [r for r in refs if isinstance(r, MappingABC)]


def _rules(obj: MappingABC[str, Any]) -> Iterator[MappingABC[str, Any]]:
    for rule in objects.lookup(obj, "spec.rules") or ():
        if isinstance(rule, MappingABC):
            yield rule


def _filters(obj: MappingABC[str, Any]) -> Iterator[MappingABC[str, Any]]:
    """Every filter, at rule and at backend level."""
    for rule in _rules(obj):
        lists = [rule.get("filters")]
        lists.extend(b.get("filters") for b in rule.get("backendRefs") or ()
                     if isinstance(b, MappingABC))  # fmt: skip
        for filters in lists:
            for item in filters or ():
                if isinstance(item, MappingABC):
                    yield item


def _backend_refs(obj: MappingABC[str, Any]) -> Iterator[MappingABC[str, Any]]:
    """backendRefs, then each rule's RequestMirror targets (rule and backend level)."""
    for rule in _rules(obj):
        for ref in rule.get("backendRefs") or ():
            if isinstance(ref, MappingABC):
                yield ref
    for item in _filters(obj):
        target = objects.lookup(item, "requestMirror.backendRef")
        if item.get("type") == "RequestMirror" and isinstance(target, MappingABC):
            yield target


def _is_service(ref: MappingABC[str, Any]) -> bool:
    return (ref.get("kind") or "Service") == "Service" and not ref.get("group")


def http_route_kind() -> RouteKind:
    return RouteKind(resources.HTTP_ROUTES, "httproute", HTTP_FILTERS)


def grpc_route_kind() -> RouteKind:
    return RouteKind(resources.GRPC_ROUTES, "grpcroute", GRPC_FILTERS)
