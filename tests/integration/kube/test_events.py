"""The Event recorder on the real API server: repeats aggregate into one Event with a count."""

from __future__ import annotations

import pytest

from kubelb.kube import events, objects, resources

pytestmark = pytest.mark.integration


async def our_events(kube, ns: str) -> list[objects.RawObject]:
    listed = await kube.list(resources.EVENTS, namespace=ns)
    return [e for e in listed.items if e.get("reportingComponent") == "kubelb-test"]


async def test_repeats_aggregate_into_one_event(kube, ns):
    service = await kube.create(
        resources.SERVICES,
        {"metadata": {"name": "web"}, "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}},
        namespace=ns,
    )
    recorder = events.EventRecorder(kube, "kubelb-test", host="node-1", min_interval=0)
    for _ in range(3):
        await recorder.warning(service, "Pending", "no address yet")
    await recorder.normal(service, "Assigned", "192.0.2.1")
    found = await our_events(kube, ns)
    assert len(found) == 2
    pending = next(e for e in found if e["reason"] == "Pending")
    assert pending["count"] == 3
    assert pending["type"] == "Warning"
    assert pending["message"] == "no address yet"
    assert pending["source"] == {"component": "kubelb-test", "host": "node-1"}
    involved = pending["involvedObject"]
    assert (involved["kind"], involved["name"], involved["namespace"], involved["uid"]) == (
        "Service",
        "web",
        ns,
        objects.uid(service),
    )
    assert involved["apiVersion"] == "v1"
    assert recorder.writes == 4  # one create, two count updates, one create


async def test_repeats_within_min_interval_are_counted_not_written(kube, ns):
    cm = await kube.create(resources.CONFIG_MAPS, {"metadata": {"name": "c"}}, namespace=ns)
    recorder = events.EventRecorder(kube, "kubelb-test", min_interval=3600)
    for _ in range(10):
        await recorder.warning(cm, "Pending", "still waiting")
    assert recorder.writes == 1  # a pending object reconciled ten times: one write
    assert recorder.pending() == 9
    found = await our_events(kube, ns)
    assert [e["count"] for e in found] == [1]


async def test_cluster_scoped_objects_get_events_in_default(kube, ns):
    namespace = await kube.get(resources.NAMESPACES, ns)
    recorder = events.EventRecorder(kube, "kubelb-test")
    await recorder.normal(namespace, "Created", f"namespace {ns}")
    found = [e for e in await our_events(kube, "default") if e["involvedObject"].get("name") == ns]
    assert len(found) == 1
    assert "namespace" not in found[0]["involvedObject"]


async def test_failures_are_logged_not_raised(kube, ns, caplog):
    recorder = events.EventRecorder(kube, "kubelb-test")
    ghost = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "ghost", "namespace": "no-such-namespace-xyz"},
    }
    await recorder.warning(ghost, "Pending", "nowhere to write")
    assert recorder.writes == 0
    assert "cannot record event Pending" in caplog.text
