"""`common.Inputs` parses and indexes only the LoadBalancers of tenant namespaces, following the
namespaces as they become tenants' and stop being so. Real informer stores fed as watches would
feed them; no API server."""

from __future__ import annotations

from typing import Any

from kubelb.api import labels
from kubelb.irbuild import loadbalancers as irbuild
from kubelb.kube import informer, objects
from kubelb.manager import common

TENANT = "tenant-a"


def namespace(name: str) -> dict[str, Any]:
    return {"kind": "Namespace", "metadata": {"name": name, "resourceVersion": "1",
            "labels": {labels.MANAGED_BY: labels.MANAGED_BY_VALUE}}}  # fmt: skip


def load_balancer(name: str, ns: str) -> dict[str, Any]:
    return {
        "apiVersion": "kubelb.k8c.io/v1alpha1",
        "kind": "LoadBalancer",
        "metadata": {"name": name, "namespace": ns, "uid": f"u-{ns}-{name}", "generation": 1,
                     "resourceVersion": "1"},
        "spec": {
            "ports": [{"name": "http", "port": 80}],
            "endpoints": [{"addresses": [{"ip": "10.0.0.1"}],
                           "ports": [{"name": "http", "port": 30080}]}],
        },
    }  # fmt: skip


def event(inf: informer.Informer, kind: str, obj: dict[str, Any]) -> None:
    inf._apply({"type": kind, "object": obj})  # type: ignore[typeddict-item]


def names(inputs: common.Inputs, ns: str) -> list[str]:
    return [lb.name for lb in inputs.live_load_balancers_in(ns)]


def test_only_tenant_namespaces_load_balancers_are_parsed_and_indexed() -> None:
    inputs = common.Inputs(informer.Informers(None), namespace="kubelb")  # type: ignore[arg-type]
    lbs = inputs.load_balancers
    event(lbs, "ADDED", load_balancer("early", TENANT))  # before its namespace is a tenant's
    event(lbs, "ADDED", load_balancer("other", "default"))
    assert names(inputs, TENANT) == []
    assert names(inputs, "default") == []
    assert len(inputs._parsed) == 0  # stored, not parsed
    assert len(lbs.store) == 2

    event(inputs.namespaces, "ADDED", namespace(TENANT))
    assert names(inputs, TENANT) == ["early"]
    event(lbs, "ADDED", load_balancer("late", TENANT))
    assert names(inputs, TENANT) == ["early", "late"]
    assert names(inputs, "default") == []
    parsed = inputs.load_balancer(lbs.store.get(objects.ObjectKey(TENANT, "late")) or {}).model
    assert parsed is not None
    inputs.pieces.get(parsed, irbuild.Placement("10.0.0.9"), {})
    assert len(inputs.pieces) == 1

    # The label removed (the watch's selector no longer matches): a DELETED event.
    event(inputs.namespaces, "DELETED", namespace(TENANT))
    assert names(inputs, TENANT) == []
    assert len(inputs._parsed) == 0
    assert len(inputs.pieces) == 0
    assert len(lbs.store) == 3  # still stored: the namespace may become a tenant's again
    event(inputs.namespaces, "ADDED", namespace(TENANT))
    assert names(inputs, TENANT) == ["early", "late"]
