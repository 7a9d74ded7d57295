"""The same scenarios against the real kube-apiserver and the in-memory one (`kube.memory`):
whatever the real server does here, the memory client must do too. A difference is a bug in
the memory client."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest

from kubelb.kube import (
    errors,
    events,
    informer,
    interface,
    leader,
    memory,
    objects,
    resources,
    writer as kwriter,
)
from kubelb.kube.client import PatchType
from tests.integration.kube.helpers import DEADLINE, eventually, load_balancer, running

pytestmark = pytest.mark.integration

LBS = resources.LOAD_BALANCERS
CMS = resources.CONFIG_MAPS
FINALIZER = "kubelb.k8c.io/cleanup"
CONDITIONS = [{"type": "Ready", "status": "False", "reason": "NoAddress", "message": "waiting",
               "lastTransitionTime": "2025-01-01T00:00:00Z"}]  # fmt: skip


@dataclass(frozen=True)
class Api:
    kube: interface.KubeApi
    ns: str
    other: interface.KubeApi  # the same server, another field manager


@pytest.fixture(params=["apiserver", "memory"])
def api(request: pytest.FixtureRequest) -> Api:
    if request.param == "apiserver":
        from kubelb.kube import client

        kube = request.getfixturevalue("kube")
        other = client.Client(request.getfixturevalue("management_api"), field_manager="other")
        return Api(kube, request.getfixturevalue("ns"), other)
    store = memory.MemoryClient(field_manager="kubelb-test", namespaces=("parity",))
    return Api(store, "parity", store.with_manager("other"))


class Recorder:
    def __init__(self) -> None:
        self.changes: list[tuple[str, str]] = []
        self.objs: list[objects.RawObject] = []

    def __call__(self, change: informer.Change) -> None:
        self.changes.append((change.type.value, objects.name(change.obj)))
        self.objs.append(change.obj)


async def test_informer_lists_then_watches_creates_updates_and_deletes(api: Api) -> None:
    kube, ns = api.kube, api.ns
    await kube.create(LBS, load_balancer("before"), namespace=ns)
    inf = informer.Informer(kube, LBS, namespace=ns)
    seen = Recorder()
    inf.add_handler(seen)
    async with running(inf.run()):
        await asyncio.wait_for(inf.wait_synced(), DEADLINE)
        await kube.create(LBS, load_balancer("x"), namespace=ns)
        await kube.patch(LBS, "x", {"metadata": {"labels": {"a": "b"}}}, namespace=ns)
        await kube.patch(LBS, "x", {"spec": {"ports": [{"name": "h", "port": 81}]}}, namespace=ns)
        await kube.delete(LBS, "x", namespace=ns)
        await eventually(lambda: ("delete", "x") in seen.changes)
    assert seen.changes == [("add", "before"), ("add", "x"), ("update", "x"), ("update", "x"),
                            ("delete", "x")]  # fmt: skip
    generations = [objects.generation(o) for o in seen.objs]
    assert generations == [1, 1, 1, 2, 2]  # labels are no spec change
    versions = [int(objects.resource_version(o)) for o in seen.objs[1:-1]]
    assert versions == sorted(versions)
    assert len(set(versions)) == len(versions)
    assert objects.ObjectKey(ns, "x") not in inf.store
    assert inf.lists == 1


async def test_watch_with_selector_from_a_version_until_the_server_ends_it(api: Api) -> None:
    kube, ns = api.kube, api.ns
    start = await kube.list(CMS, namespace=ns)
    await kube.create(CMS, {"metadata": {"name": "w", "labels": {"app": "web"}}}, namespace=ns)
    await kube.create(CMS, {"metadata": {"name": "other"}}, namespace=ns)
    await kube.patch(CMS, "w", {"metadata": {"labels": {"app": "db"}}}, namespace=ns)
    await kube.patch(CMS, "w", {"metadata": {"labels": {"app": "web"}}}, namespace=ns)
    await kube.patch(CMS, "w", {"data": {"a": "b"}}, namespace=ns)
    await kube.delete(CMS, "w", namespace=ns)
    stream = kube.watch(CMS, namespace=ns, resource_version=start.resource_version,
                        label_selector="app=web", timeout_seconds=1)  # fmt: skip
    seen: list[tuple[str, str]] = []
    async with stream:
        async for event in stream:  # ends by itself: the server closes the watch
            if event["type"] != "BOOKMARK":
                assert event["object"]["kind"] == "ConfigMap"
                seen.append((event["type"], objects.name(event["object"])))
    assert seen == [("ADDED", "w"), ("DELETED", "w"), ("ADDED", "w"), ("MODIFIED", "w"),
                    ("DELETED", "w")]  # fmt: skip


async def test_writer_skips_equal_status_and_retries_conflicts(api: Api) -> None:
    kube, ns = api.kube, api.ns
    w = kwriter.Writer(kube)
    stale = await kube.create(LBS, load_balancer("lb"), namespace=ns)
    key = objects.key_of(stale)
    first = await w.set_status(LBS, key, {"conditions": CONDITIONS})
    assert first.changed
    assert first.obj is not None
    again = await w.set_status(LBS, key, {"conditions": CONDITIONS, "loadBalancer": {}})
    assert not again.changed
    live = await kube.get(LBS, "lb", namespace=ns)
    assert objects.resource_version(live) == objects.resource_version(first.obj)
    # Someone else writes a status field and a label: our copy is stale.
    await api.other.patch_status(
        LBS, "lb", {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}}, namespace=ns
    )
    await api.other.patch(LBS, "lb", {"metadata": {"labels": {"x": "y"}}}, namespace=ns)
    result = await w.update_status(LBS, key, lambda s: {**s, "conditions": []}, current=first.obj)
    assert result.changed
    assert w.conflicts == 1
    live = await kube.get(LBS, "lb", namespace=ns)
    assert live["status"] == {"conditions": [], "loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}
    assert objects.generation(live) == 1
    bounded = kwriter.Writer(kube, max_attempts=1)
    with pytest.raises(errors.ConflictError):
        await bounded.set_status(LBS, key, {"conditions": CONDITIONS}, current=stale)
    with pytest.raises(errors.NotFoundError):
        await w.set_status(LBS, objects.ObjectKey(ns, "absent"), {"conditions": CONDITIONS})


def owned_config(
    ns: str, owner: objects.RawObject, port: str = "80", **labels: str
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "owned",
            "namespace": ns,
            "labels": {"app": "lb", **labels},
            "ownerReferences": [objects.owner_reference(owner)],
        },
        "data": {"port": port},
    }


async def test_writer_ensure_writes_only_differences_and_prunes_what_it_set(api: Api) -> None:
    kube, ns = api.kube, api.ns
    w = kwriter.Writer(kube)
    owner = await kube.create(LBS, load_balancer("owner"), namespace=ns)
    created = await w.ensure(CMS, owned_config(ns, owner, tier="edge"))
    assert created.changed
    assert not (await w.ensure(CMS, owned_config(ns, owner, tier="edge"))).changed
    await api.other.patch(CMS, "owned", {"metadata": {"annotations": {"third": "party"}}},
                          namespace=ns)  # fmt: skip
    # Extra labels are no difference (third parties may add some) ...
    assert not (await w.ensure(CMS, owned_config(ns, owner))).changed
    # ... but with a real change, server-side apply drops the label we set and no longer want.
    changed = await w.ensure(CMS, owned_config(ns, owner, port="81"))
    assert changed.changed
    live = await kube.get(CMS, "owned", namespace=ns)
    assert live["metadata"]["labels"] == {"app": "lb"}
    assert live["metadata"]["annotations"] == {"third": "party"}
    assert w.writes == 2
    # Deleting the owner deletes what it owns (the real server's garbage collector does it
    # some time later; the memory server at once).
    await kube.delete(LBS, "owner", namespace=ns, propagation_policy="Background")

    async def gone() -> bool:
        try:
            await kube.get(CMS, "owned", namespace=ns)
        except errors.NotFoundError:
            return True
        return False

    for _ in range(int(DEADLINE / 0.05)):
        if await gone():
            break
        await asyncio.sleep(0.05)
    assert await gone()


async def test_finalizers_hold_deletion_until_the_last_is_removed(api: Api) -> None:
    kube, ns = api.kube, api.ns
    w = kwriter.Writer(kube)
    inf = informer.Informer(kube, LBS, namespace=ns)
    seen = Recorder()
    inf.add_handler(seen)
    async with running(inf.run()):
        await asyncio.wait_for(inf.wait_synced(), DEADLINE)
        stale = await kube.create(LBS, load_balancer("lb"), namespace=ns)
        await api.other.patch(LBS, "lb", {"metadata": {"finalizers": ["other.io/keep"]}},
                              namespace=ns)  # fmt: skip
        added = await w.add_finalizer(LBS, stale, FINALIZER)  # stale: 409, re-read
        assert added.obj is not None
        assert objects.finalizers(added.obj) == ["other.io/keep", FINALIZER]
        key = objects.key_of(stale)
        assert await w.delete(LBS, key)
        terminating = await kube.get(LBS, "lb", namespace=ns)
        assert objects.is_deleting(terminating)
        assert objects.generation(terminating) == 2  # starting deletion bumps the generation
        assert not await w.delete(LBS, objects.ObjectKey(ns, "absent"))
        with pytest.raises(errors.InvalidError):
            await kube.patch(LBS, "lb", {"metadata": {"finalizers": [*objects.finalizers(
                terminating), "late.io/x"]}}, namespace=ns)  # fmt: skip
        removed = await w.remove_finalizer(LBS, terminating, FINALIZER)
        assert removed.obj is not None
        assert objects.finalizers(removed.obj) == ["other.io/keep"]
        gone = await w.remove_finalizer(LBS, removed.obj, "other.io/keep")
        assert gone.changed
        with pytest.raises(errors.NotFoundError):
            await kube.get(LBS, "lb", namespace=ns)
        await eventually(lambda: ("delete", "lb") in seen.changes)
    assert seen.changes == [("add", "lb"), ("update", "lb"), ("update", "lb"), ("update", "lb"),
                            ("update", "lb"), ("delete", "lb")]  # fmt: skip
    assert [objects.is_deleting(o) for o in seen.objs] == [False, False, False, True, True, True]
    assert w.conflicts == 1


async def test_events_aggregate_and_leases_elect(api: Api) -> None:
    kube, ns = api.kube, api.ns
    lb = await kube.create(LBS, load_balancer("lb"), namespace=ns)
    recorder = events.EventRecorder(kube, "kubelb-test", min_interval=0)
    for _ in range(3):
        await recorder.warning(lb, "Pending", "no address yet")
    listed = await kube.list(resources.EVENTS, namespace=ns)
    ours = [e for e in listed.items if e.get("reportingComponent") == "kubelb-test"]
    assert [(e["reason"], e["count"]) for e in ours] == [("Pending", 3)]
    assert ours[0]["involvedObject"]["uid"] == objects.uid(lb)

    elector = leader.LeaderElector(
        kube, namespace=ns, name="parity", identity="me", lease_duration=3.0,
        renew_deadline=2.0, retry_period=0.25,
    )  # fmt: skip
    led = asyncio.Event()

    async def work() -> None:
        led.set()
        await asyncio.Event().wait()

    async with running(elector.run(work)):
        await asyncio.wait_for(led.wait(), DEADLINE)
        lease = await kube.get(resources.LEASES, "parity", namespace=ns)
        assert lease["spec"]["holderIdentity"] == "me"
    lease = await kube.get(resources.LEASES, "parity", namespace=ns)
    assert lease["spec"]["holderIdentity"] in ("", None)  # released on cancel


async def test_answers_and_errors_match(api: Api) -> None:
    kube, ns = api.kube, api.ns
    body = load_balancer("a")
    body["metadata"]["finalizers"] = ["x.io/y"]
    created = await kube.create(LBS, body, namespace=ns)
    start = objects.resource_version(created)
    deleting = await kube.delete(LBS, "a", namespace=ns)
    assert deleting["kind"] == "LoadBalancer"
    assert deleting["metadata"]["deletionGracePeriodSeconds"] == 0
    last = await kube.patch(LBS, "a", {"metadata": {"finalizers": None}}, namespace=ns)
    assert objects.finalizers(last) == []
    assert objects.resource_version(last) == objects.resource_version(deleting)
    await kube.create(LBS, load_balancer("b"), namespace=ns)
    answer = await kube.delete(LBS, "b", namespace=ns)
    assert (answer["kind"], answer["status"]) == ("Status", "Success")
    assert answer["details"]["group"] == "kubelb.k8c.io"
    await kube.create(CMS, {"metadata": {"name": "c"}}, namespace=ns)
    assert "group" not in (await kube.delete(CMS, "c", namespace=ns))["details"]
    seen = []
    async with kube.watch(LBS, namespace=ns, resource_version=start, timeout_seconds=1) as stream:
        async for event in stream:
            if event["type"] != "BOOKMARK":
                obj = event["object"]
                seen.append((event["type"], objects.name(obj), objects.finalizers(obj)))
    assert seen == [("MODIFIED", "a", ["x.io/y"]), ("DELETED", "a", ["x.io/y"]),
                    ("ADDED", "b", []), ("DELETED", "b", [])]  # fmt: skip

    stale = {**load_balancer("r"), "metadata": {"name": "r", "resourceVersion": "5"}}
    with pytest.raises(errors.ServerError):
        await kube.create(LBS, stale, namespace=ns)
    r = await kube.create(LBS, load_balancer("r"), namespace=ns)
    unversioned = {k: v for k, v in r["metadata"].items() if k != "resourceVersion"}
    with pytest.raises(errors.InvalidError):
        await kube.replace(LBS, {**r, "metadata": unversioned})
    with pytest.raises(errors.ApiError) as unsupported:
        await kube.patch(LBS, "r", {"spec": {}}, namespace=ns, patch_type=PatchType.STRATEGIC)
    assert unsupported.value.status == 415
    labelled = {**r, "metadata": {**r["metadata"], "labels": {"via": "status"}}}
    status = await kube.replace_status(LBS, {**labelled, "status": {"service": {"ports": []}}})
    assert "labels" not in status["metadata"]  # the status subresource ignores metadata
    with pytest.raises(errors.InvalidError) as nameless:
        await kube.create(CMS, {"metadata": {}}, namespace=ns)
    assert nameless.value.causes[0].field == "metadata.name"
    with pytest.raises(errors.NotFoundError, match="namespaces"):
        await kube.create(CMS, {"metadata": {"name": "q"}}, namespace="absent-namespace")
    with pytest.raises(errors.BadRequestError):
        await kube.list(CMS, namespace=ns, label_selector="a in (b")

    async with kube.watch(LBS, namespace=ns, timeout_seconds=1) as stream:
        first = [event async for event in stream][:2]
    assert [(e["type"], objects.name(e["object"])) for e in first] == [
        ("ADDED", "r"), ("BOOKMARK", "")]  # fmt: skip
    marker = objects.annotations(first[1]["object"])
    assert marker == {"k8s.io/initial-events-end": "true"}
