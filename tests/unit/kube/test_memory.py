"""The in-memory API server keeps the semantics controllers rely on: versions, generations,
status subresource, typed errors, patches, server-side apply, finalizers, cascades, watches."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kubelb.kube import client, errors, informer, interface, memory, objects, resources

LBS = resources.LOAD_BALANCERS
CMS = resources.CONFIG_MAPS


def lb(name: str, port: int = 8080, **meta: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, **meta}, "spec": {"ports": [{"port": port}]}}


def cm(name: str, data: dict[str, str] | None = None, **meta: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, **meta}, "data": data or {}}


def test_both_clients_have_the_protocol_surface() -> None:
    def accepts(api: interface.KubeApi) -> None: ...

    accepts(memory.MemoryClient())
    accepts(client.Client.__new__(client.Client))


async def test_versions_generation_and_status_subresource() -> None:
    kube = memory.MemoryClient()
    start = int(kube.resource_version)
    created = await kube.create(LBS, {**lb("a"), "status": {"x": 1}}, namespace="default")
    assert (created["apiVersion"], created["kind"]) == ("kubelb.k8c.io/v1alpha1", "LoadBalancer")
    assert objects.generation(created) == 1
    assert "status" not in created  # create drops status on a kind with a status subresource
    assert int(objects.resource_version(created)) == start + 1 == int(kube.resource_version)
    assert objects.uid(created)
    assert created["metadata"]["creationTimestamp"]

    labelled = await kube.patch(LBS, "a", {"metadata": {"labels": {"x": "y"}}}, namespace="default")
    assert objects.generation(labelled) == 1  # metadata is no spec change
    moved = await kube.replace(LBS, {**labelled, "spec": {"ports": [{"port": 9}]}})
    assert objects.generation(moved) == 2
    status = await kube.replace_status(LBS, {**moved, "status": {"a": 1}, "spec": {}})
    assert status["status"] == {"a": 1}
    assert status["spec"] == moved["spec"]  # the status subresource ignores the rest
    assert objects.generation(status) == 2
    ignored = await kube.replace(LBS, {**status, "status": {"a": 2}})
    assert ignored["status"] == {"a": 1}  # the main resource ignores status...
    assert objects.resource_version(ignored) == objects.resource_version(status)  # ...no write

    # Core kinds without a generation or status subresource.
    config = await kube.create(CMS, {**cm("c"), "status": {"kept": True}}, namespace="default")
    assert objects.generation(config) is None
    assert config["status"] == {"kept": True}
    with pytest.raises(errors.NotFoundError):
        await kube.replace_status(CMS, config)


async def test_errors_are_the_real_clients() -> None:
    kube = memory.MemoryClient()
    with pytest.raises(errors.NotFoundError) as missing:
        await kube.get(LBS, "nope", namespace="default")
    assert missing.value.status == 404
    await kube.create(CMS, cm("dup"), namespace="default")
    with pytest.raises(errors.AlreadyExistsError) as exists:
        await kube.create(CMS, cm("dup"), namespace="default")
    assert "already exists" in exists.value.message
    stale = await kube.get(CMS, "dup", namespace="default")
    await kube.replace(CMS, {**stale, "data": {"x": "1"}})
    with pytest.raises(errors.ConflictError):
        await kube.replace(CMS, {**stale, "data": {"x": "2"}})
    with pytest.raises(errors.InvalidError) as invalid:
        await kube.create(CMS, cm("Not_Valid"), namespace="default")
    assert invalid.value.causes[0].field == "metadata.name"
    with pytest.raises(errors.NotFoundError, match="namespaces"):
        await kube.create(CMS, cm("x"), namespace="absent")
    with pytest.raises(errors.BadRequestError):
        await kube.create(CMS, cm("x", namespace="other"), namespace="default")
    with pytest.raises(errors.ServerError, match="resourceVersion should not be set"):
        await kube.create(CMS, cm("x", resourceVersion="5"), namespace="default")
    created = await kube.create(LBS, lb("lb"), namespace="default")
    unversioned = {k: v for k, v in created.items() if k != "metadata"}
    unversioned["metadata"] = {"name": "lb", "namespace": "default"}
    with pytest.raises(errors.InvalidError):  # custom resources need a resourceVersion
        await kube.replace(LBS, unversioned)
    with pytest.raises(ValueError, match="namespaced"):
        await kube.get(CMS, "dup")
    with pytest.raises(errors.BadRequestError):
        await kube.list(CMS, label_selector="a in (b")
    with pytest.raises(errors.ServerError):
        await kube.create_token("default", "robot")


async def test_copies_are_handed_out() -> None:
    kube = memory.MemoryClient()
    created = await kube.create(CMS, cm("c", {"k": "v"}), namespace="default")
    created["data"]["k"] = "changed"
    listed = await kube.list(CMS, namespace="default")
    listed.items[0]["data"]["k"] = "changed too"
    assert (await kube.get(CMS, "c", namespace="default"))["data"] == {"k": "v"}


async def test_list_selectors_and_namespaces() -> None:
    kube = memory.MemoryClient()
    await kube.create(resources.NAMESPACES, {"metadata": {"name": "other"}})
    for i in range(4):
        labels = {"parity": "even" if i % 2 == 0 else "odd"}
        await kube.create(CMS, cm(f"cm{i}", labels=labels), namespace="default")
    await kube.create(CMS, cm("cm9"), namespace="other")

    async def names(**kwargs: Any) -> list[str]:
        return [objects.name(o) for o in (await kube.list(CMS, **kwargs)).items]

    assert await names() == ["cm0", "cm1", "cm2", "cm3", "cm9"]
    assert await names(namespace="other") == ["cm9"]
    assert await names(label_selector="parity=even") == ["cm0", "cm2"]
    assert await names(label_selector="parity in (odd),parity!=even") == ["cm1", "cm3"]
    assert await names(label_selector="!parity") == ["cm9"]
    assert await names(field_selector="metadata.name=cm3") == ["cm3"]
    assert await names(field_selector="metadata.namespace!=default") == ["cm9"]
    namespaces = await kube.list(resources.NAMESPACES, namespace="ignored for cluster kinds")
    assert {"default", "kube-system", "other"} <= {objects.name(n) for n in namespaces.items}


async def test_patches() -> None:
    kube = memory.MemoryClient()
    await kube.create(CMS, cm("m", {"a": "1", "b": "2"}), namespace="default")
    merged = await kube.patch(CMS, "m", {"data": {"b": None, "c": "3"}}, namespace="default")
    assert merged["data"] == {"a": "1", "c": "3"}
    ops = [{"op": "test", "path": "/data/a", "value": "1"},
           {"op": "replace", "path": "/data/a", "value": "9"}]  # fmt: skip
    jsonp = await kube.patch(CMS, "m", ops, namespace="default", patch_type=client.PatchType.JSON)
    assert jsonp["data"]["a"] == "9"
    with pytest.raises(errors.InvalidError):
        await kube.patch(CMS, "m", ops[:1], namespace="default", patch_type=client.PatchType.JSON)
    with pytest.raises(errors.ConflictError):  # a resourceVersion in a patch is a precondition
        await kube.patch(CMS, "m", {"metadata": {"resourceVersion": "1"}}, namespace="default")
    with pytest.raises(errors.NotFoundError):
        await kube.patch(CMS, "absent", {"data": {}}, namespace="default")

    ports = [{"name": "a", "port": 80}, {"name": "b", "port": 81}]
    await kube.create(resources.SERVICES, {"metadata": {"name": "s"}, "spec": {"ports": ports}},
                      namespace="default")  # fmt: skip
    patch = {"spec": {"ports": [{"name": "a", "port": 80, "targetPort": 8080}]}}
    patched = await kube.patch(resources.SERVICES, "s", patch, namespace="default",
                               patch_type=client.PatchType.STRATEGIC)  # fmt: skip
    by_name = {p["name"]: p for p in patched["spec"]["ports"]}
    assert set(by_name) == {"a", "b"}
    assert by_name["a"]["targetPort"] == 8080
    await kube.create(LBS, lb("lb"), namespace="default")
    with pytest.raises(errors.ApiError) as unsupported:
        await kube.patch(LBS, "lb", {"spec": {}}, namespace="default",
                         patch_type=client.PatchType.STRATEGIC)  # fmt: skip
    assert unsupported.value.status == 415


async def test_server_side_apply_prunes_only_its_own_fields() -> None:
    kube = memory.MemoryClient(field_manager="ours")
    other = kube.with_manager("theirs")
    desired = cm("applied", {"a": "1", "b": "2"}, namespace="default", labels={"x": "1"})
    created = await kube.apply(CMS, desired)
    assert created["data"] == {"a": "1", "b": "2"}
    await other.patch(CMS, "applied", {"metadata": {"annotations": {"someone/else": "keep"}}},
                      namespace="default")  # fmt: skip
    await other.apply(CMS, cm("applied", {"c": "3"}, namespace="default"))
    again = await kube.apply(CMS, cm("applied", {"a": "1"}, namespace="default", labels={"x": "1"}))
    assert again["data"] == {"a": "1", "c": "3"}  # b was ours; c is theirs
    assert again["metadata"]["annotations"] == {"someone/else": "keep"}
    same = await kube.apply(CMS, cm("applied", {"a": "1"}, namespace="default", labels={"x": "1"}))
    assert objects.resource_version(same) == objects.resource_version(again)
    managers = {m["manager"] for m in same["metadata"]["managedFields"]}
    assert managers == {"ours", "theirs"}
    # Someone else rewrites our field: it is theirs now, our next apply without it keeps it.
    await other.patch(CMS, "applied", {"data": {"a": "7"}}, namespace="default")
    await other.apply(CMS, cm("applied", {"c": "4"}, namespace="default"), force=False)
    with pytest.raises(errors.ConflictError):  # c is theirs
        await kube.apply(CMS, cm("applied", {"c": "5"}, namespace="default"), force=False)
    kept = await kube.apply(CMS, cm("applied", {}, namespace="default", labels={"x": "1"}))
    assert kept["data"] == {"a": "7", "c": "4"}


async def test_finalizers_hold_deletion_and_the_last_one_deletes() -> None:
    kube = memory.MemoryClient()
    created = await kube.create(LBS, lb("lb", finalizers=["a/x", "b/y"]), namespace="default")
    with pytest.raises(errors.ConflictError):
        await kube.delete(LBS, "lb", namespace="default", uid="other")
    with pytest.raises(errors.ConflictError):
        await kube.delete(LBS, "lb", namespace="default", resource_version="1")
    deleting = await kube.delete(LBS, "lb", namespace="default", uid=objects.uid(created))
    assert objects.is_deleting(deleting)
    assert objects.generation(deleting) == 2  # deletion counts as a generation
    again = await kube.delete(LBS, "lb", namespace="default")
    assert objects.resource_version(again) == objects.resource_version(deleting)  # no write
    with pytest.raises(errors.InvalidError):  # no new finalizers while deleting
        await kube.patch(LBS, "lb", {"metadata": {"finalizers": ["a/x", "b/y", "c/z"]}},
                         namespace="default")  # fmt: skip
    one = await kube.patch(LBS, "lb", {"metadata": {"finalizers": ["b/y"]}}, namespace="default")
    assert objects.finalizers(one) == ["b/y"]
    start = kube.resource_version
    last = await kube.patch(LBS, "lb", {"metadata": {"finalizers": []}}, namespace="default")
    assert objects.finalizers(last) == []
    assert objects.resource_version(last) == start  # answered at the version it had
    stream = kube.watch(LBS, namespace="default", resource_version=start, timeout_seconds=0)
    async with stream:
        deleted = [e["object"] async for e in stream if e["type"] == "DELETED"]
    assert objects.finalizers(deleted[0]) == ["b/y"]  # the stored state, as the server shows
    assert int(objects.resource_version(deleted[0])) == int(start) + 1
    with pytest.raises(errors.NotFoundError):
        await kube.get(LBS, "lb", namespace="default")
    with pytest.raises(errors.NotFoundError):
        await kube.delete(LBS, "lb", namespace="default")


async def test_deletion_cascades_to_owned_objects_unless_orphaned() -> None:
    kube = memory.MemoryClient()
    owner = await kube.create(LBS, lb("owner"), namespace="default")
    ref = objects.owner_reference(owner)
    await kube.create(CMS, cm("owned", ownerReferences=[ref]), namespace="default")
    await kube.create(CMS, cm("held", ownerReferences=[ref], finalizers=["x/y"]),
                      namespace="default")  # fmt: skip
    await kube.create(CMS, cm("free"), namespace="default")
    status = await kube.delete(LBS, "owner", namespace="default", propagation_policy="Background")
    assert status["kind"] == "Status"
    assert status["details"]["group"] == "kubelb.k8c.io"
    remaining = {objects.name(o): o for o in (await kube.list(CMS, namespace="default")).items}
    assert set(remaining) == {"held", "free"}
    assert objects.is_deleting(remaining["held"])

    owner = await kube.create(LBS, lb("owner2"), namespace="default")
    await kube.create(CMS, cm("orphan", ownerReferences=[objects.owner_reference(owner)]),
                      namespace="default")  # fmt: skip
    await kube.delete(LBS, "owner2", namespace="default", propagation_policy="Orphan")
    orphan = await kube.get(CMS, "orphan", namespace="default")
    assert not objects.owner_references(orphan)


async def test_namespace_deletion_empties_it_then_removes_it() -> None:
    kube = memory.MemoryClient()
    await kube.create(resources.NAMESPACES, {"metadata": {"name": "ns"}})
    await kube.create(CMS, cm("c"), namespace="ns")
    await kube.create(LBS, lb("held", finalizers=["x/y"]), namespace="ns")
    terminating = await kube.delete(resources.NAMESPACES, "ns")
    assert terminating["status"]["phase"] == "Terminating"
    with pytest.raises(errors.ForbiddenError):
        await kube.create(CMS, cm("late"), namespace="ns")
    assert not (await kube.list(CMS, namespace="ns")).items
    await kube.patch(LBS, "held", {"metadata": {"finalizers": None}}, namespace="ns")
    with pytest.raises(errors.NotFoundError):
        await kube.get(resources.NAMESPACES, "ns")


async def collect(stream: interface.EventStream) -> list[tuple[str, str]]:
    async with stream:
        return [(event["type"], objects.name(event["object"])) async for event in stream]


async def test_watch_replays_from_a_version_in_order_and_ends_with_a_bookmark() -> None:
    kube = memory.MemoryClient()
    start = (await kube.list(CMS, namespace="default")).resource_version
    await kube.create(CMS, cm("w"), namespace="default")
    await kube.create(CMS, cm("ignored"), namespace="default")
    await kube.patch(CMS, "w", {"data": {"a": "b"}}, namespace="default")
    await kube.delete(CMS, "w", namespace="default")
    stream = kube.watch(CMS, namespace="default", resource_version=start,
                        field_selector="metadata.name=w", timeout_seconds=0)  # fmt: skip
    seen = await collect(stream)
    assert seen == [("ADDED", "w"), ("MODIFIED", "w"), ("DELETED", "w"), ("BOOKMARK", "")]


async def test_watch_streams_live_changes_and_selector_moves() -> None:
    kube = memory.MemoryClient()
    events: list[tuple[str, str]] = []
    done = asyncio.Event()

    async def watch() -> None:
        stream = kube.watch(CMS, namespace="default", resource_version=kube.resource_version,
                            label_selector="app=web", allow_bookmarks=False)  # fmt: skip
        async with stream:
            async for event in stream:
                events.append((event["type"], objects.name(event["object"])))
                if len(events) == 4:
                    done.set()

    task = asyncio.create_task(watch())
    await asyncio.sleep(0)
    await kube.create(CMS, cm("a", labels={"app": "web"}), namespace="default")
    await kube.create(CMS, cm("b"), namespace="default")
    await kube.patch(CMS, "b", {"metadata": {"labels": {"app": "web"}}}, namespace="default")
    await kube.patch(CMS, "a", {"data": {"x": "1"}}, namespace="default")
    await kube.patch(CMS, "b", {"metadata": {"labels": {"app": None}}}, namespace="default")
    await done.wait()
    await kube.close()  # ends open watches
    await task
    assert events == [("ADDED", "a"), ("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b")]


async def test_watch_without_version_starts_with_the_current_objects() -> None:
    kube = memory.MemoryClient()
    await kube.create(CMS, cm("old"), namespace="default")
    stream = kube.watch(CMS, namespace="default", timeout_seconds=0)
    async with stream:
        events = [event async for event in stream]
    assert [(e["type"], objects.name(e["object"])) for e in events] == [
        ("ADDED", "old"), ("BOOKMARK", ""), ("BOOKMARK", "")]  # fmt: skip
    marked = objects.annotations(events[1]["object"])
    assert marked == {"k8s.io/initial-events-end": "true"}
    assert objects.resource_version(events[1]["object"]) == kube.resource_version


async def test_watch_from_a_compacted_version_is_gone() -> None:
    kube = memory.MemoryClient(history=2)
    start = kube.resource_version
    for i in range(3):
        await kube.create(CMS, cm(f"c{i}"), namespace="default")
    with pytest.raises(errors.GoneError) as gone:
        await collect(kube.watch(CMS, namespace="default", resource_version=start))
    assert gone.value.status == 410
    recent = str(int(kube.resource_version) - 2)
    seen = await collect(kube.watch(CMS, resource_version=recent, timeout_seconds=0))
    assert seen == [("ADDED", "c1"), ("ADDED", "c2"), ("BOOKMARK", "")]


async def test_informer_relists_after_gone_and_sees_deletes() -> None:
    kube = memory.MemoryClient(history=1)
    await kube.create(CMS, cm("keep"), namespace="default")
    await kube.create(CMS, cm("drop"), namespace="default")
    inf = informer.Informer(kube, CMS, namespace="default", watch_timeout=0)
    changes: list[tuple[str, str]] = []
    inf.add_handler(lambda c: changes.append((c.type, objects.name(c.obj))))
    await inf._list()
    # Two changes while the informer is not watching: its version is compacted away.
    await kube.delete(CMS, "drop", namespace="default")
    await kube.create(CMS, cm("new"), namespace="default")
    with pytest.raises(errors.GoneError):
        await inf._watch()
    await inf._list()
    assert sorted(inf.store.keys()) == [("default", "keep"), ("default", "new")]
    assert ("delete", "drop") in changes
    assert ("add", "new") in changes
    assert inf.lists == 2


async def test_events_expire_after_their_ttl() -> None:
    kube = memory.MemoryClient(event_ttl=0.0)
    kept = memory.MemoryClient()
    for store in (kube, kept):
        for i in range(3):
            event = {"metadata": {"name": f"e{i}"}, "reason": "R", "message": "m"}
            await store.create(resources.EVENTS, event, namespace="default")
    assert [objects.name(e) for e in (await kube.list(resources.EVENTS)).items] == ["e2"]
    assert len((await kept.list(resources.EVENTS)).items) == 3
