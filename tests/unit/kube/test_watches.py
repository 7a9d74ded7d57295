from __future__ import annotations

import copy
from typing import Any

from kubelb.kube import objects, resources, watches

Key = objects.ObjectKey


def lb(generation: int | None = 1, **extra) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": "lb",
        "namespace": "t",
        "resourceVersion": "5",
        "labels": {"a": "1"},
    }
    if generation is not None:
        meta["generation"] = generation
    return {
        "apiVersion": "kubelb.k8c.io/v1alpha1",
        "kind": "LoadBalancer",
        "metadata": meta,
        "spec": {"ports": [80]},
        "status": {"x": 1},
        **extra,
    }


def changed(obj: dict[str, Any], path: str, value) -> dict[str, Any]:
    new = copy.deepcopy(obj)
    *parents, last = path.split(".")
    node = new
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return new


def test_generation_changed_ignores_status_and_resource_version():
    old = lb()
    assert not watches.generation_changed(old, changed(old, "status.x", 2))
    assert not watches.generation_changed(old, changed(old, "metadata.resourceVersion", "6"))
    assert watches.generation_changed(old, changed(old, "metadata.generation", 2))
    assert watches.generation_changed(None, old)
    assert watches.generation_changed(old, None)


def test_generation_changed_without_generation_compares_all_but_status():
    old = lb(generation=None)
    assert not watches.generation_changed(old, changed(old, "status.x", 2))
    assert not watches.generation_changed(old, changed(old, "metadata.managedFields", [1]))
    assert watches.generation_changed(old, changed(old, "spec.ports", [81]))


def test_fields_changed_and_spec_changed():
    old = lb()
    ready = watches.fields_changed("status.x")
    assert ready(old, changed(old, "status.x", 2))
    assert not ready(old, changed(old, "spec.ports", [1]))
    assert watches.spec_changed(old, changed(old, "metadata.labels", {"a": "2"}))
    assert watches.spec_changed(old, changed(old, "metadata.deletionTimestamp", "now"))
    assert not watches.spec_changed(old, changed(old, "status.x", 3))  # our own status write


def test_mappers():
    tenant_owned = changed(
        lb(),
        "metadata.ownerReferences",
        [
            {"apiVersion": "kubelb.k8c.io/v1alpha1", "kind": "Tenant", "name": "acme", "uid": "u"},
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "cm", "uid": "v"},
            {"apiVersion": "other/v1", "kind": "Tenant", "name": "wrong-group", "uid": "w"},
        ],
    )
    assert list(watches.owner_keys(resources.TENANTS)(tenant_owned)) == [Key("", "acme")]
    assert list(watches.owner_keys(resources.CONFIG_MAPS)(tenant_owned)) == [Key("t", "cm")]
    labelled = changed(lb(), "metadata.labels", {"svc": "web", "svc-ns": "prod"})
    assert list(watches.label_keys("svc")(labelled)) == [Key("t", "web")]
    assert list(watches.label_keys("svc", namespace_label="svc-ns")(labelled)) == [
        Key("prod", "web")
    ]
    assert list(watches.label_keys("svc", namespace="")(labelled)) == [Key("", "web")]
    assert list(watches.label_keys("absent")(labelled)) == []
    assert list(watches.constant_keys(Key("kubelb", "default"))(lb())) == [Key("kubelb", "default")]
    assert list(watches.own_key(lb())) == [Key("t", "lb")]
