"""Selectors and patch algorithms used by the in-memory API server."""

from __future__ import annotations

import pytest

from kubelb.kube import patching, selectors


def obj(**labels: str) -> dict[str, object]:
    return {"metadata": {"name": "n", "namespace": "ns", "labels": labels}, "spec": {"on": True}}


@pytest.mark.parametrize(
    ("text", "labels", "selected"),
    [
        ("a=b", {"a": "b"}, True),
        ("a==b", {"a": "c"}, False),
        ("a!=b", {}, True),
        ("a", {"a": ""}, True),
        ("!a", {"a": "x"}, False),
        ("a in (x, y),b", {"a": "y", "b": "1"}, True),
        ("a notin (x,y)", {"a": "x"}, False),
        ("kubelb.k8c.io/managed-by=kubelb", {"kubelb.k8c.io/managed-by": "kubelb"}, True),
        ("", {}, True),
    ],
)
def test_label_selectors(text: str, labels: dict[str, str], selected: bool) -> None:
    assert selectors.parse_labels(text).matches(obj(**labels)) is selected


@pytest.mark.parametrize("text", ["a in (b", "a=b,", "=b", "a b", "a in (b c)"])
def test_malformed_label_selectors_raise(text: str) -> None:
    with pytest.raises(ValueError, match="invalid"):
        selectors.parse_labels(text)


def test_field_selectors() -> None:
    assert selectors.parse_fields("metadata.name=n,metadata.namespace!=x").matches(obj())
    assert selectors.parse_fields("spec.on=true").matches(obj())
    assert not selectors.parse_fields("metadata.name==m").matches(obj())
    with pytest.raises(ValueError, match="invalid field selector"):
        selectors.parse_fields("metadata.name")


def test_json_patch_operations() -> None:
    doc = {"a": {"b": [1, 2]}, "c": "x"}
    ops = [
        {"op": "add", "path": "/a/b/-", "value": 3},
        {"op": "add", "path": "/a/b/0", "value": 0},
        {"op": "move", "from": "/c", "path": "/d"},
        {"op": "copy", "from": "/d", "path": "/e~1f"},
        {"op": "remove", "path": "/a/b/1"},
        {"op": "test", "path": "/d", "value": "x"},
    ]
    assert patching.json_patch(doc, ops) == {"a": {"b": [0, 2, 3]}, "d": "x", "e/f": "x"}
    assert doc == {"a": {"b": [1, 2]}, "c": "x"}  # the input is left alone
    for bad in ([{"op": "remove", "path": "/z"}], [{"op": "test", "path": "/c", "value": 1}],
                [{"op": "nope", "path": "/c"}], {"op": "add"}):  # fmt: skip
        with pytest.raises(patching.PatchError):
            patching.json_patch(doc, bad)


def test_merge_and_strategic_merge() -> None:
    target = {"m": {"a": 1, "b": 2}, "l": [{"name": "x", "v": 1}, {"name": "y", "v": 2}]}
    patch = {"m": {"a": None, "c": 3}, "l": [{"name": "x", "v": 9}]}
    assert patching.merge_patch(target, patch) == {
        "m": {"b": 2, "c": 3},
        "l": [{"name": "x", "v": 9}],
    }
    strategic = patching.strategic_merge_patch(
        target, {**patch, "l": [{"name": "x", "v": 9}, {"name": "y", "$patch": "delete"}]}
    )
    assert strategic == {"m": {"b": 2, "c": 3}, "l": [{"name": "x", "v": 9}]}
    assert patching.strategic_merge_patch({"l": [1, 2]}, {"l": [3]}) == {"l": [3]}


def test_field_paths() -> None:
    value = {"a": {"b": 1, "c": [1]}, "d": {}}
    assert sorted(patching.leaf_paths(value)) == [("a", "b"), ("a", "c")]
    assert patching.get_path(value, ("a", "x")) is patching.MISSING
    target: dict[str, object] = {"a": {"b": 1}}
    patching.set_path(target, ("x", "y"), [1])
    assert target == {"a": {"b": 1}, "x": {"y": [1]}}
    patching.delete_path(target, ("x", "y"))
    patching.delete_path(target, ("a", "missing"))
    assert target == {"a": {"b": 1}}
