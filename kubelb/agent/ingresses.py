"""Ingress (networking.k8s.io/v1) as an L7 source: filter, backends, status.

In scope: `spec.ingressClassName: kubelb`, or every Ingress with `--use-ingress-class=false`
(the legacy class annotation is not considered, as upstream). Backends: the Services of the
rules' paths and of the default backend, in the Ingress's namespace. Resource backends cannot
be served (an Event says so). Status: the served Ingress's `status.loadBalancer`, verbatim.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping as MappingABC, Sequence
from typing import Any

from kubelb.agent import routemapping
from kubelb.kube import objects, resources, writer

CLASS_NAME = "kubelb"
UNSUPPORTED_BACKEND = "UnsupportedBackend"


class IngressKind:
    resource = resources.INGRESSES
    metric = "ingress"

    def __init__(self, *, use_ingress_class: bool = True) -> None:
        self.use_ingress_class = use_ingress_class

    def in_scope(self, obj: objects.RawObject) -> bool:
        if not self.use_ingress_class:
            return True
        return bool(objects.lookup(obj, "spec.ingressClassName") == CLASS_NAME)

    def backends(self, obj: objects.RawObject) -> list[objects.ObjectKey]:
        namespace = objects.namespace(obj)
        names = (
            str(b["service"]["name"])
            for b in _backends(obj)
            if isinstance(b.get("service"), MappingABC) and b["service"].get("name")
        )
        return [objects.ObjectKey(namespace, n) for n in dict.fromkeys(names)]

    def problems(self, obj: objects.RawObject) -> list[routemapping.Problem]:
        out = []
        for backend in _backends(obj):
            ref = backend.get("resource")
            if isinstance(ref, MappingABC):
                out.append(routemapping.Problem(
                    UNSUPPORTED_BACKEND,
                    f"resource backend {ref.get('kind')}/{ref.get('name')} is not supported; "
                    "only Service backends are served",
                ))  # fmt: skip
        return out

    def status(
        self, obj: objects.RawObject, served: MappingABC[str, Any] | None,
        problems: Sequence[routemapping.Problem],
    ) -> writer.StatusMutator:  # fmt: skip
        def mutate(status: dict[str, Any]) -> dict[str, Any]:
            if served is None or "loadBalancer" not in served:
                return status
            return {**status, "loadBalancer": served["loadBalancer"]}

        return mutate

    def cleared(self, status: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in status.items() if k != "loadBalancer"}


def _backends(obj: MappingABC[str, Any]) -> Iterator[MappingABC[str, Any]]:
    """Rule backends first, then the default backend (upstream's order)."""
    spec = obj.get("spec") or {}
    for rule in spec.get("rules") or ():
        for path in objects.lookup(rule, "http.paths") or ():
            backend = path.get("backend") if isinstance(path, MappingABC) else None
            if isinstance(backend, MappingABC):
                yield backend
    default = spec.get("defaultBackend")
    if isinstance(default, MappingABC):
        yield default
