from __future__ import annotations

from typing import Any

import pytest

from kubelb.kube import objects, store


def obj(name: str, ns: str = "a", rv: str = "1", labels=None, owners=()) -> dict[str, Any]:
    meta = {
        "name": name,
        "namespace": ns,
        "resourceVersion": rv,
        "labels": labels or {},
        "ownerReferences": [{"kind": k, "uid": u, "name": u} for k, u in owners],
    }
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta}


def test_upsert_get_delete_list():
    s = store.Store()
    assert s.upsert(obj("x")) is None
    old = s.upsert(obj("x", rv="2"))
    assert old is not None
    assert objects.resource_version(old) == "1"
    s.upsert(obj("y", ns="b"))
    assert len(s) == 2
    assert objects.ObjectKey("a", "x") in s
    assert {objects.name(o) for o in s.list("b")} == {"y"}
    assert set(s.keys()) == {objects.ObjectKey("a", "x"), objects.ObjectKey("b", "y")}
    removed = s.delete(objects.ObjectKey("a", "x"))
    assert removed is not None
    assert objects.resource_version(removed) == "2"
    assert s.delete(objects.ObjectKey("a", "x")) is None
    assert s.get(objects.ObjectKey("a", "x")) is None


def test_indexes_follow_updates_and_deletes():
    s = store.Store({"tenant": store.label_index("tenant")})
    s.upsert(obj("x", labels={"tenant": "t1"}))
    s.upsert(obj("y", labels={"tenant": "t1"}))
    s.upsert(obj("z"))
    assert {objects.name(o) for o in s.by_index("tenant", "t1")} == {"x", "y"}
    s.upsert(obj("x", labels={"tenant": "t2"}))  # relabelled: moves index
    assert {objects.name(o) for o in s.by_index("tenant", "t1")} == {"y"}
    assert {objects.name(o) for o in s.by_index("tenant", "t2")} == {"x"}
    s.delete(objects.ObjectKey("a", "y"))
    assert s.by_index("tenant", "t1") == []
    with pytest.raises(KeyError):
        s.by_index("nope", "t1")


def test_indexer_added_later_indexes_existing_objects():
    s = store.Store()
    s.upsert(obj("x", owners=[("Tenant", "u1"), ("Other", "u2")]))
    s.add_indexer("owner", store.owner_index("Tenant"))
    assert [objects.name(o) for o in s.by_index("owner", "u1")] == ["x"]
    assert s.by_index("owner", "u2") == []
    with pytest.raises(ValueError, match="exists"):
        s.add_indexer("owner", store.owner_index())


def test_failing_indexer_does_not_lose_the_object(caplog):
    def broken(_):
        raise RuntimeError("boom")

    s = store.Store({"broken": broken})
    s.upsert(obj("x"))
    assert objects.ObjectKey("a", "x") in s
    assert "indexer broken failed" in caplog.text


def test_replace_reports_adds_updates_and_vanished():
    s = store.Store()
    s.upsert(obj("kept"))
    s.upsert(obj("changed"))
    s.upsert(obj("gone"))
    changes = s.replace([obj("kept"), obj("changed", rv="2"), obj("new")])
    summary = {
        (objects.name(old) if old else None, objects.name(new) if new else None)
        for old, new in changes
    }
    assert summary == {("changed", "changed"), ("gone", None), (None, "new")}
    assert len(changes) == 3
    assert {k.name for k in list(s.keys())} == {"kept", "changed", "new"}
