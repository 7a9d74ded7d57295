"""A Route's status as the manager writes it. Pure.

`status.resources.route`: the served object's apiVersion, kind, name and namespace, the name
upstream would give the object it generates, its status as upstream's controllers would write
it (`served_status`, from the builder), and a `ResourceAppliedSuccessfully` condition: True
`InstallationSuccessful` "Success", or False `InstallationFailed` with what kept it from being
served. `status.resources.services`: one entry per embedded Service, with the same condition and
its ports, each `targetPort` the port Envoy sends to (the Service's NodePort, kubelb's analogue of
the Envoy port upstream allocates for the Service it generates).
Each condition's lastTransitionTime is kept while its status holds, so rewriting an unchanged
status is no change (and no API write). `only_counts_differ` tells a new status that changes
nothing but a Gateway's `attachedRoutes` counts (one the Route controller may coalesce).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubelb.api import conditions, meta
from kubelb.kube import writer
from kubelb.util import naming


@dataclass(frozen=True, slots=True)
class RouteVerdict:
    """What one Route's status says."""

    served_status: Mapping[str, Any]
    problems: tuple[str, ...]


def desired_status(
    status: dict[str, Any],
    resource: Mapping[str, Any],
    services: Sequence[Mapping[str, Any]],
    verdict: RouteVerdict,
    generation: int | None,
    now: str | None = None,
) -> dict[str, Any]:
    """`status` with `resources.route` and `resources.services` as `verdict` says (each
    condition's lastTransitionTime kept unless its status flips). Pure."""
    previous = status.get("resources") if isinstance(status.get("resources"), dict) else {}
    previous = previous or {}
    old_route = previous.get("route") if isinstance(previous.get("route"), dict) else {}
    metadata = resource.get("metadata") or {}
    kind = str(resource.get("kind") or "")
    name, namespace = str(metadata.get("name") or ""), str(metadata.get("namespace") or "")
    route_state = {
        "apiVersion": str(resource.get("apiVersion") or ""),
        "kind": kind,
        "name": name,
        "namespace": namespace,
        "generatedName": generated_name(kind, namespace, name),
        "status": dict(verdict.served_status),
        "conditions": _applied(old_route.get("conditions") if old_route else None, verdict,
                               generation, now),
    }  # fmt: skip
    old_services = previous.get("services") if isinstance(previous.get("services"), dict) else {}
    service_states = {}
    for svc in services:
        svc_meta = svc.get("metadata") or {}
        svc_name, svc_ns = str(svc_meta.get("name") or ""), str(svc_meta.get("namespace") or "")
        key = f"{svc_ns}/{svc_name}"
        old = (old_services or {}).get(key)
        service_states[key] = {
            "apiVersion": "v1",
            "kind": "Service",
            "name": svc_name,
            "namespace": svc_ns,
            "generatedName": svc_name,
            "ports": _ports(svc),
            "conditions": _applied(old.get("conditions") if isinstance(old, dict) else None,
                                   verdict, generation, now),
        }  # fmt: skip
    return {**status, "resources": {**previous, "route": route_state,
                                    "services": service_states}}  # fmt: skip


def only_counts_differ(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """True when status `new` differs from `old` in nothing but its served object's listeners'
    `attachedRoutes` (a Gateway counting the Routes attached to it). Pure."""
    if writer.equivalent(old, new):
        return False
    before = {li.get("name"): li for li in _listeners(old)}
    aligned = copy.deepcopy(dict(new))
    for listener in _listeners(aligned):
        previous = before.get(listener.get("name"))
        if previous is None:
            return False
        listener["attachedRoutes"] = previous.get("attachedRoutes")
    return writer.equivalent(old, aligned)


def _listeners(status: Mapping[str, Any]) -> list[dict[str, Any]]:
    served = ((status.get("resources") or {}).get("route") or {}).get("status") or {}
    found = served.get("listeners") if isinstance(served, dict) else None
    return [li for li in found or () if isinstance(li, dict)]


def _ports(service: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The Service's ports that have a NodePort, targetPort = that NodePort."""
    out = []
    for port in (service.get("spec") or {}).get("ports") or ():
        if not isinstance(port, Mapping) or not isinstance(port.get("port"), int):
            continue
        node_port = port.get("nodePort")
        if not isinstance(node_port, int):
            continue
        entry: dict[str, Any] = {"port": port["port"], "protocol": port.get("protocol") or "TCP",
                                 "targetPort": node_port}  # fmt: skip
        if port.get("name"):
            entry["name"] = str(port["name"])
        out.append(entry)
    return out


def generated_name(kind: str, namespace: str, name: str) -> str:
    """Upstream's name for the object it would generate: the Gateway keeps its name, the others
    are `<namespace>-<name>`."""
    if kind == "Gateway" or not namespace:
        return name
    return naming.truncate(f"{namespace}-{name}")


def _applied(
    current: Any, verdict: RouteVerdict, generation: int | None, now: str | None
) -> list[dict[str, Any]]:
    parsed = meta.readable_conditions(current or ())
    if verdict.problems:
        status, reason = meta.ConditionStatus.FALSE, conditions.INSTALLATION_FAILED
        message = "; ".join(verdict.problems)[:32768]
    else:
        status, reason, message = (meta.ConditionStatus.TRUE, conditions.INSTALLATION_SUCCESSFUL,
                                   "Success")  # fmt: skip
    updated = meta.set_condition(parsed, type=conditions.RESOURCE_APPLIED, status=status,
                                 reason=reason, message=message,
                                 observed_generation=generation, now=now)  # fmt: skip
    return [c.model_dump(by_alias=True, exclude_none=True, mode="json") for c in updated]
