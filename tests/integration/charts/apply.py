"""Server-side apply of rendered chart documents, and removal of the cluster-scoped ones (the
namespaced ones go with the test's namespace)."""

from __future__ import annotations

import contextlib
from typing import Any

from kubelb.kube import client, errors, resources

CRDS = resources.Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions",
                          "CustomResourceDefinition", namespaced=False)  # fmt: skip
MONITORING = "monitoring.coreos.com"
KINDS = {
    (r.api_version, r.kind): r
    for r in (
        CRDS,
        resources.NAMESPACES, resources.SERVICE_ACCOUNTS, resources.SECRETS,
        resources.CONFIG_MAPS, resources.SERVICES, resources.DEPLOYMENTS,
        resources.CLUSTER_ROLES, resources.CLUSTER_ROLE_BINDINGS, resources.ROLES,
        resources.ROLE_BINDINGS, resources.CONFIGS,
        resources.Resource("autoscaling", "v2", "horizontalpodautoscalers",
                           "HorizontalPodAutoscaler"),
        resources.Resource(MONITORING, "v1", "servicemonitors", "ServiceMonitor"),
        resources.Resource(MONITORING, "v1", "podmonitors", "PodMonitor"),
    )
}  # fmt: skip


def resource_of(doc: dict[str, Any]) -> resources.Resource:
    return KINDS[(doc["apiVersion"], doc["kind"])]


async def missing_crds(kube: client.Client, *names: str) -> list[str]:
    missing = []
    for name in names:
        try:
            await kube.get(CRDS, name)
        except errors.NotFoundError:
            missing.append(name)
    return missing


async def apply_all(kube: client.Client, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Apply CRDs first (their kinds must be served before objects of them), then the rest in
    the rendered order; return what the API server stored."""
    ordered = sorted(docs, key=lambda d: d["kind"] != CRDS.kind)
    return [await kube.apply(resource_of(d), d) for d in ordered]


async def remove_cluster_scoped(kube: client.Client, docs: list[dict[str, Any]]) -> None:
    """Delete the ClusterRoles and bindings a release made (CRDs stay: the cluster's own)."""
    for doc in docs:
        resource = resource_of(doc)
        if resource.namespaced or resource is CRDS or resource is resources.NAMESPACES:
            continue
        with contextlib.suppress(errors.NotFoundError):
            await kube.delete(resource, doc["metadata"]["name"])
