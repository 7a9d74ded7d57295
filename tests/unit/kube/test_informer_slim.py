"""What an informer's store keeps of each object: no managedFields, shared keys and short strings,
everything else as the API server sent it; the objects handed in are left unchanged."""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

from kubelb.kube import client, informer, objects, resources


def load_balancer(name: str, version: str) -> dict[str, Any]:
    return {
        "apiVersion": "kubelb.k8c.io/v1alpha1",
        "kind": "LoadBalancer",
        "metadata": {
            "name": name,
            "namespace": "tenant-a",
            "resourceVersion": version,
            "labels": {"kubelb.k8c.io/tenant": "tenant-a"},
            "annotations": {"note": "x" * 100},
            "managedFields": [
                {"manager": "kubelb-agent", "operation": "Update", "apiVersion": "v1",
                 "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:ports": {}}}},
            ],
        },
        "spec": {"ports": [{"name": "p", "port": 8080, "protocol": "TCP"}]},
    }  # fmt: skip


class ListingClient:
    """Answers the informer's one list; a watch would be the next step, which the test does
    not run."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items

    async def list(self, resource: resources.Resource, **_: Any) -> client.ObjectList:
        return client.ObjectList(self.items, "10")


def without_managed_fields(obj: dict[str, Any]) -> dict[str, Any]:
    expected = copy.deepcopy(obj)
    del expected["metadata"]["managedFields"]
    return expected


def test_slim_drops_managed_fields_and_keeps_the_rest() -> None:
    sent = load_balancer("a", "1")
    before = copy.deepcopy(sent)
    kept = informer.slim(sent)
    assert kept == without_managed_fields(sent)
    assert sent == before  # a copy: the caller's object is untouched


def test_slim_shares_keys_and_short_strings_between_objects() -> None:
    # Decoded separately, as two API responses are: equal strings, distinct objects.
    a_sent, b_sent = (json.loads(json.dumps(load_balancer(n, "1"))) for n in ("a", "b"))
    assert a_sent["spec"]["ports"][0]["protocol"] is not b_sent["spec"]["ports"][0]["protocol"]
    a, b = informer.slim(a_sent), informer.slim(b_sent)
    key_a = next(k for k in a["metadata"] if k == "namespace")
    key_b = next(k for k in b["metadata"] if k == "namespace")
    assert key_a is key_b
    assert a["spec"]["ports"][0]["protocol"] is b["spec"]["ports"][0]["protocol"]
    assert a["metadata"]["namespace"] is b["metadata"]["namespace"]
    assert a["metadata"]["annotations"] == b["metadata"]["annotations"]  # long: kept as is


def test_store_and_changes_hold_no_managed_fields_after_list_and_watch() -> None:
    listed = [load_balancer("a", "1"), load_balancer("b", "1")]
    inf = informer.Informer(ListingClient(listed), resources.LOAD_BALANCERS)  # type: ignore[arg-type]
    seen: list[informer.Change] = []
    inf.add_handler(seen.append)
    asyncio.run(inf._list())
    inf._apply({"type": "MODIFIED", "object": load_balancer("a", "2")})
    inf._apply({"type": "ADDED", "object": load_balancer("c", "3")})
    inf._apply({"type": "DELETED", "object": load_balancer("gone", "4")})  # never stored

    stored = inf.store.list()
    assert sorted(objects.name(o) for o in stored) == ["a", "b", "c"]
    assert all("managedFields" not in objects.metadata(o) for o in stored)
    assert inf.store.get(objects.ObjectKey("tenant-a", "a")) == without_managed_fields(
        load_balancer("a", "2")
    )
    for change in seen:
        for obj in (change.old, change.new):
            assert obj is None or "managedFields" not in objects.metadata(obj)
    assert [c.type for c in seen] == ["add", "add", "update", "add", "delete"]
    assert all("managedFields" in o["metadata"] for o in listed)  # the answers are untouched
