"""The writer on the real API server: status writes skip unchanged values and retry real 409s;
owned objects are written only when they really differ, keeping third-party metadata."""

from __future__ import annotations

import pytest

from kubelb.kube import errors, objects, resources, writer
from tests.integration.kube.helpers import load_balancer

pytestmark = pytest.mark.integration

LBS = resources.LOAD_BALANCERS

CONDITIONS = [
    {
        "type": "Accepted",
        "status": "True",
        "reason": "Valid",
        "message": "",
        "lastTransitionTime": "2025-01-01T00:00:00Z",
    },
    {
        "type": "Ready",
        "status": "False",
        "reason": "NoAddress",
        "message": "waiting",
        "lastTransitionTime": "2025-01-01T00:00:00Z",
    },
]


async def test_unchanged_status_is_not_written(kube, ns):
    w = writer.Writer(kube)
    created = await kube.create(LBS, load_balancer("lb"), namespace=ns)
    key = objects.key_of(created)
    first = await w.set_status(LBS, key, {"conditions": CONDITIONS})
    assert first.changed
    assert first.obj is not None
    version = objects.resource_version(first.obj)
    # Same content, list in another order, an empty field more: nothing to write.
    again = await w.set_status(LBS, key, {"conditions": CONDITIONS[::-1], "loadBalancer": {}})
    assert not again.changed
    assert (w.writes, w.skipped) == (1, 1)
    assert (w.writes_in, w.skipped_in) == ({ns: 1}, {ns: 1})
    live = await kube.get(LBS, "lb", namespace=ns)
    assert objects.resource_version(live) == version  # the server saw no write


async def test_conflict_is_retried_from_a_fresh_read(kube, ns):
    w = writer.Writer(kube)
    stale = await kube.create(LBS, load_balancer("lb"), namespace=ns)
    key = objects.key_of(stale)
    # Another controller writes its own status field; someone edits a label: our copy is stale.
    await kube.patch_status(
        LBS,
        "lb",
        {"status": {"service": {"ports": []}, "loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}},
        namespace=ns,
    )
    await kube.patch(LBS, "lb", {"metadata": {"labels": {"x": "y"}}}, namespace=ns)
    result = await w.update_status(
        LBS, key, lambda s: {**s, "conditions": CONDITIONS}, current=stale
    )
    assert result.changed
    assert w.conflicts == 1
    assert w.writes == 1
    live = await kube.get(LBS, "lb", namespace=ns)
    assert live["status"]["conditions"][0]["type"] == "Accepted"
    # The mutator ran on the fresh status: the other controller's field survived.
    assert live["status"]["loadBalancer"] == {"ingress": [{"ip": "192.0.2.1"}]}


async def test_conflicts_are_bounded_and_missing_objects_raise(kube, ns):
    w = writer.Writer(kube, max_attempts=1)
    stale = await kube.create(LBS, load_balancer("lb"), namespace=ns)
    await kube.patch(LBS, "lb", {"metadata": {"labels": {"x": "y"}}}, namespace=ns)
    with pytest.raises(errors.ConflictError):
        await w.set_status(LBS, objects.key_of(stale), {"conditions": CONDITIONS}, current=stale)
    with pytest.raises(errors.NotFoundError):
        await w.set_status(LBS, objects.ObjectKey(ns, "absent"), {"conditions": CONDITIONS})


def desired_service(ns: str, owner: objects.RawObject, port: int = 80, **labels: str):
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "envoy-lb",
            "namespace": ns,
            "labels": {"app": "envoy", **labels},
            "annotations": {"kubelb.k8c.io/managed": "true"},
            "ownerReferences": [objects.owner_reference(owner)],
        },
        "spec": {
            "type": "ClusterIP",
            "selector": {"app": "envoy"},
            "ports": [{"name": "http", "port": port, "protocol": "TCP", "targetPort": 8080}],
        },
    }


async def test_ensure_writes_only_real_differences_and_keeps_foreign_metadata(kube, ns):
    w = writer.Writer(kube)
    owner = await kube.create(resources.CONFIG_MAPS, {"metadata": {"name": "owner"}}, namespace=ns)
    created = await w.ensure(resources.SERVICES, desired_service(ns, owner))
    assert created.changed
    assert created.obj is not None
    assert created.obj["spec"]["clusterIP"]  # defaulted by the server
    version = objects.resource_version(created.obj)
    # Server defaults (clusterIP, sessionAffinity, ipFamilies...) are no difference.
    same = await w.ensure(resources.SERVICES, desired_service(ns, owner))
    assert not same.changed
    cached = await kube.get(resources.SERVICES, "envoy-lb", namespace=ns)
    assert not (
        await w.ensure(resources.SERVICES, desired_service(ns, owner), current=cached)
    ).changed
    assert objects.resource_version(cached) == version
    # A third party annotates; our next change keeps its annotation.
    await kube.patch(
        resources.SERVICES,
        "envoy-lb",
        {"metadata": {"annotations": {"metallb.universe.tf/ip-allocated-from-pool": "pool"}}},
        namespace=ns,
    )
    changed = await w.ensure(resources.SERVICES, desired_service(ns, owner, port=81, tier="edge"))
    assert changed.changed
    live = await kube.get(resources.SERVICES, "envoy-lb", namespace=ns)
    assert live["metadata"]["annotations"]["metallb.universe.tf/ip-allocated-from-pool"] == "pool"
    assert live["metadata"]["labels"] == {"app": "envoy", "tier": "edge"}
    assert [p["port"] for p in live["spec"]["ports"]] == [81]
    assert live["metadata"]["ownerReferences"][0]["uid"] == objects.uid(owner)
    assert w.writes == 2


async def test_finalizers_and_delete(kube, ns):
    w = writer.Writer(kube)
    stale = await kube.create(LBS, load_balancer("lb"), namespace=ns)
    await kube.patch(LBS, "lb", {"metadata": {"finalizers": ["other.io/keep"]}}, namespace=ns)
    added = await w.add_finalizer(LBS, stale, "kubelb.k8c.io/cleanup")  # stale: 409, re-read
    assert added.changed
    assert added.obj is not None
    assert objects.finalizers(added.obj) == ["other.io/keep", "kubelb.k8c.io/cleanup"]
    assert not (await w.add_finalizer(LBS, added.obj, "kubelb.k8c.io/cleanup")).changed
    key = objects.key_of(stale)
    assert await w.delete(LBS, key)
    terminating = await kube.get(LBS, "lb", namespace=ns)
    assert objects.is_deleting(terminating)
    removed = await w.remove_finalizer(LBS, terminating, "kubelb.k8c.io/cleanup")
    assert removed.obj is not None
    assert objects.finalizers(removed.obj) == ["other.io/keep"]
    gone = await w.remove_finalizer(LBS, removed.obj, "other.io/keep")
    assert gone.changed
    with pytest.raises(errors.NotFoundError):
        await kube.get(LBS, "lb", namespace=ns)
    assert not await w.delete(LBS, key)
    assert not (await w.remove_finalizer(LBS, terminating, "other.io/keep")).changed
    # add, delete, remove twice: every write counted, in this namespace
    assert w.writes == w.writes_in[ns] == 4
