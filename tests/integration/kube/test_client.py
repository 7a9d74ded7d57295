"""The raw client against a real kube-apiserver: CRUD, patches, status, errors, tokens, watch."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kubelb.kube import client, errors, objects, resources

pytestmark = pytest.mark.integration


def config_map(name: str, data: dict[str, str] | None = None, **meta) -> dict[str, Any]:
    return {"metadata": {"name": name, **meta}, "data": data or {}}


def load_balancer(name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [
                {
                    "addresses": [{"ip": "10.0.0.1"}],
                    "ports": [{"name": "http", "port": 30080, "protocol": "TCP"}],
                }
            ],
        },
    }


async def test_create_get_replace_delete(kube, ns):
    created = await kube.create(resources.CONFIG_MAPS, config_map("a", {"k": "v"}), namespace=ns)
    assert (created["apiVersion"], created["kind"]) == ("v1", "ConfigMap")
    got = await kube.get(resources.CONFIG_MAPS, "a", namespace=ns)
    assert got["data"] == {"k": "v"}
    assert got["kind"] == "ConfigMap"
    got["data"]["k"] = "w"
    replaced = await kube.replace(resources.CONFIG_MAPS, got)
    assert replaced["data"] == {"k": "w"}
    assert objects.resource_version(replaced) != objects.resource_version(created)
    # The managedFields name our field manager.
    assert any(m.get("manager") == "kubelb-test" for m in replaced["metadata"]["managedFields"])
    await kube.delete(resources.CONFIG_MAPS, "a", namespace=ns)
    with pytest.raises(errors.NotFoundError):
        await kube.get(resources.CONFIG_MAPS, "a", namespace=ns)


async def test_list_pages_and_selectors(kube, ns):
    for i in range(5):
        labels = {"parity": "even" if i % 2 == 0 else "odd"}
        await kube.create(resources.CONFIG_MAPS, config_map(f"cm{i}", labels=labels), namespace=ns)
    listed = await kube.list(
        resources.CONFIG_MAPS, namespace=ns, label_selector="parity", page_size=2
    )
    assert sorted(objects.name(o) for o in listed.items) == [f"cm{i}" for i in range(5)]
    assert all(o["kind"] == "ConfigMap" and o["apiVersion"] == "v1" for o in listed.items)
    assert listed.resource_version
    even = await kube.list(resources.CONFIG_MAPS, namespace=ns, label_selector="parity=even")
    assert sorted(objects.name(o) for o in even.items) == ["cm0", "cm2", "cm4"]
    one = await kube.list(resources.CONFIG_MAPS, namespace=ns, field_selector="metadata.name=cm3")
    assert [objects.name(o) for o in one.items] == ["cm3"]


async def test_errors_are_typed(kube, ns):
    await kube.create(resources.CONFIG_MAPS, config_map("dup"), namespace=ns)
    with pytest.raises(errors.AlreadyExistsError) as exists:
        await kube.create(resources.CONFIG_MAPS, config_map("dup"), namespace=ns)
    assert exists.value.status == 409
    assert "already exists" in exists.value.message
    stale = await kube.get(resources.CONFIG_MAPS, "dup", namespace=ns)
    await kube.replace(resources.CONFIG_MAPS, {**stale, "data": {"x": "1"}})
    with pytest.raises(errors.ConflictError):
        await kube.replace(resources.CONFIG_MAPS, {**stale, "data": {"x": "2"}})
    with pytest.raises(errors.InvalidError) as invalid:
        await kube.create(resources.CONFIG_MAPS, config_map("Not_Valid"), namespace=ns)
    assert invalid.value.causes
    assert invalid.value.causes[0].field == "metadata.name"
    bad_lb = load_balancer("bad")
    bad_lb["spec"]["ports"][0]["protocol"] = "SCTP"
    with pytest.raises(errors.InvalidError) as invalid_lb:
        await kube.create(resources.LOAD_BALANCERS, bad_lb, namespace=ns)
    assert any("spec.ports[0].protocol" in c.field for c in invalid_lb.value.causes)
    with pytest.raises(ValueError, match="namespaced"):
        await kube.get(resources.CONFIG_MAPS, "dup")


async def test_delete_preconditions(kube, ns):
    created = await kube.create(resources.CONFIG_MAPS, config_map("p"), namespace=ns)
    with pytest.raises(errors.ConflictError):
        await kube.delete(resources.CONFIG_MAPS, "p", namespace=ns, uid="not-the-uid")
    with pytest.raises(errors.ConflictError):
        await kube.delete(resources.CONFIG_MAPS, "p", namespace=ns, resource_version="1")
    await kube.delete(
        resources.CONFIG_MAPS,
        "p",
        namespace=ns,
        uid=objects.uid(created),
        resource_version=objects.resource_version(created),
    )
    with pytest.raises(errors.NotFoundError):
        await kube.delete(resources.CONFIG_MAPS, "p", namespace=ns)


async def test_patch_kinds(kube, ns):
    await kube.create(resources.CONFIG_MAPS, config_map("m", {"a": "1", "b": "2"}), namespace=ns)
    merged = await kube.patch(
        resources.CONFIG_MAPS, "m", {"data": {"b": None, "c": "3"}}, namespace=ns
    )
    assert merged["data"] == {"a": "1", "c": "3"}
    jsonp = await kube.patch(
        resources.CONFIG_MAPS,
        "m",
        [
            {"op": "test", "path": "/data/a", "value": "1"},
            {"op": "replace", "path": "/data/a", "value": "9"},
        ],
        namespace=ns,
        patch_type=client.PatchType.JSON,
    )
    assert jsonp["data"]["a"] == "9"
    with pytest.raises(errors.InvalidError):  # a failed `test` op is 422
        await kube.patch(
            resources.CONFIG_MAPS,
            "m",
            [{"op": "test", "path": "/data/a", "value": "1"}],
            namespace=ns,
            patch_type=client.PatchType.JSON,
        )
    service = {
        "metadata": {"name": "svc"},
        "spec": {
            "ports": [
                {"name": "a", "port": 80, "protocol": "TCP"},
                {"name": "b", "port": 81, "protocol": "TCP"},
            ]
        },
    }
    await kube.create(resources.SERVICES, service, namespace=ns)
    # Strategic merge: ports merge by key instead of replacing the list.
    patched = await kube.patch(
        resources.SERVICES,
        "svc",
        {"spec": {"ports": [{"name": "a", "port": 80, "protocol": "TCP", "targetPort": 8080}]}},
        namespace=ns,
        patch_type=client.PatchType.STRATEGIC,
    )
    ports = {p["name"]: p for p in patched["spec"]["ports"]}
    assert set(ports) == {"a", "b"}
    assert ports["a"]["targetPort"] == 8080


async def test_server_side_apply_creates_updates_and_prunes(kube, ns):
    desired = config_map("applied", {"a": "1", "b": "2"}, namespace=ns, labels={"x": "1"})
    created = await kube.apply(resources.CONFIG_MAPS, desired)
    assert created["data"] == {"a": "1", "b": "2"}
    await kube.patch(
        resources.CONFIG_MAPS,
        "applied",
        {"metadata": {"annotations": {"someone/else": "keep"}}},
        namespace=ns,
    )
    again = await kube.apply(
        resources.CONFIG_MAPS, config_map("applied", {"a": "1"}, namespace=ns, labels={"x": "1"})
    )
    assert again["data"] == {"a": "1"}  # b was ours and is no longer desired
    assert again["metadata"]["annotations"] == {"someone/else": "keep"}
    same = await kube.apply(
        resources.CONFIG_MAPS, config_map("applied", {"a": "1"}, namespace=ns, labels={"x": "1"})
    )
    assert objects.resource_version(same) == objects.resource_version(again)


async def test_status_subresource(kube, ns):
    lb = await kube.create(resources.LOAD_BALANCERS, load_balancer("lb"), namespace=ns)
    status = {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}
    replaced = await kube.replace_status(resources.LOAD_BALANCERS, {**lb, "status": status})
    assert replaced["status"]["loadBalancer"] == status["loadBalancer"]
    patched = await kube.patch_status(
        resources.LOAD_BALANCERS,
        "lb",
        {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.11"}]}}},
        namespace=ns,
    )
    assert patched["status"]["loadBalancer"]["ingress"] == [{"ip": "192.0.2.11"}]
    # The main resource ignores status; the status subresource ignores spec.
    spec_write = {
        **patched,
        "spec": {**patched["spec"], "ports": [{"name": "http", "port": 9090, "protocol": "TCP"}]},
        "status": {},
    }
    after = await kube.replace_status(resources.LOAD_BALANCERS, spec_write)
    assert after["spec"]["ports"][0]["port"] == 8080


async def test_cluster_scoped_and_token_request(kube, ns):
    tenants = await kube.list(resources.TENANTS)
    assert isinstance(tenants.items, list)
    await kube.create(resources.SERVICE_ACCOUNTS, {"metadata": {"name": "robot"}}, namespace=ns)
    token = await kube.create_token(ns, "robot", expiration_seconds=600)
    assert token.token.count(".") == 2  # a JWT
    assert token.expiration.tzinfo is not None


async def test_watch_streams_changes_and_ends_on_server_timeout(kube, ns):
    start = await kube.list(resources.CONFIG_MAPS, namespace=ns)
    seen: list[tuple[str, str]] = []

    async def watch():
        async with kube.watch(
            resources.CONFIG_MAPS,
            namespace=ns,
            resource_version=start.resource_version,
            field_selector="metadata.name=w",
            timeout_seconds=2,
        ) as stream:
            async for event in stream:
                if event["type"] != "BOOKMARK":
                    seen.append((event["type"], objects.name(event["object"])))
                    assert event["object"]["kind"] == "ConfigMap"

    task = asyncio.create_task(watch())
    await kube.create(resources.CONFIG_MAPS, config_map("w"), namespace=ns)
    await kube.patch(resources.CONFIG_MAPS, "w", {"data": {"a": "b"}}, namespace=ns)
    await kube.delete(resources.CONFIG_MAPS, "w", namespace=ns)
    await asyncio.wait_for(task, 60)  # ends by itself: the server closes the watch
    assert seen == [("ADDED", "w"), ("MODIFIED", "w"), ("DELETED", "w")]


async def test_watch_from_an_expired_version_raises_gone(kube, ns):
    # A CRD's watch cache starts when the CRD is installed, so resourceVersion 2 predates it:
    # the server answers 410 Expired ("too old resource version").
    stream = kube.watch(
        resources.LOAD_BALANCERS, namespace=ns, resource_version="2", timeout_seconds=5
    )
    with pytest.raises(errors.GoneError) as gone:
        await drain(stream)
    assert gone.value.status == 410


async def drain(stream: client.WatchStream) -> None:
    async with stream:
        async for _ in stream:
            pass
