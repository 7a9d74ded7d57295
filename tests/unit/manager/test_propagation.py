from typing import Any

import pytest

from kubelb.kube import writer as kwriter
from kubelb.manager import effective, propagation


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (effective.AnnotationPolicy(), {}),
        (effective.AnnotationPolicy(propagate_all=True), {"a.io/x": "1", "b.io/y": "2"}),
        (effective.AnnotationPolicy(propagated={"a.io/*": ""}), {"a.io/x": "1"}),
        (effective.AnnotationPolicy(propagated={"*": "2,3"}), {"b.io/y": "2"}),
        (effective.AnnotationPolicy(propagate_all=True, denied=("b.io/*",)), {"a.io/x": "1"}),
        (
            effective.AnnotationPolicy(propagate_all=True, denied=("[bad",)),
            {"a.io/x": "1", "b.io/y": "2"},
        ),
    ],
)
def test_policy(policy, expected):
    source = {
        "a.io/x": "1",
        "b.io/y": "2",
        "kubectl.kubernetes.io/last-applied-configuration": "{}",
    }
    assert propagation.propagate(source, policy, "service") == expected


def test_defaults_kind_then_all_never_override():
    policy = effective.AnnotationPolicy(
        propagate_all=True,
        defaults={
            "service": {"k": "svc", "s": "1"},
            "all": {"k": "all", "z": "9"},
            "ingress": {"i": "1"},
        },
    )
    assert propagation.propagate({"s": "mine"}, policy, "service") == {
        "s": "mine",
        "k": "svc",
        "z": "9",
    }


def test_merge_first_claim_keeps_a_key_later_ones_are_refused():
    older = propagation.Claim("a", "Route a", {"team": "blue", "tier": "web"})
    newer = propagation.Claim("b", "Route b", {"team": "red", "tier": "web", "cost": "1"})
    merged = propagation.merge([older, newer], {"dns": "x.example"}, "KubeLB")
    assert merged.annotations == {"dns": "x.example", "team": "blue", "tier": "web", "cost": "1"}
    # The same value twice is no conflict; another value is refused, naming who keeps it.
    assert merged.refused == {"b": (propagation.Refusal("team", "red", "Route a", "blue"),)}


def test_merge_fixed_annotations_are_never_overridden():
    claim = propagation.Claim("a", "Route a", {"dns": "mine", "team": "blue"})
    merged = propagation.merge([claim], {"dns": "x.example"}, "KubeLB")
    assert merged.annotations == {"dns": "x.example", "team": "blue"}
    assert merged.refused == {"a": (propagation.Refusal("dns", "mine", "KubeLB", "x.example"),)}
    assert propagation.merge([], None).annotations == {}


def test_permitted_and_defaults_split_propagate():
    policy = effective.AnnotationPolicy(
        propagated={"a.io/*": ""},
        defaults={"ingress": {"d": "ing"}, "all": {"d": "all", "e": "all"}},
    )
    source = {"a.io/x": "1", "b.io/y": "2"}
    assert propagation.permitted(source, policy) == {"a.io/x": "1"}
    assert propagation.defaults(policy, "ingress") == {"d": "ing", "e": "all"}
    assert propagation.propagate(source, policy, "ingress") == {
        "a.io/x": "1",
        "d": "ing",
        "e": "all",
    }


RECORD = propagation.RECORD


def service(annotations: dict[str, str]) -> dict[str, Any]:
    return {"metadata": {"name": "envoy-lb", "namespace": "t", "annotations": annotations}}


def written(desired: dict[str, str], live: dict[str, str]) -> dict[str, str] | None:
    """What kubelb applies for `desired` over a live Service annotated `live` (None: no write,
    the live Service covers it). The apply removes the keys kubelb alone held and omits."""
    applied = propagation.with_record(desired, live.get(RECORD))
    return None if kwriter.covers(service(live), service(applied)) else applied


def test_nothing_changed_no_write():
    live = {"team": "blue", RECORD: "team", "example.com/owner": "ops"}
    assert written({"team": "blue"}, live) is None
    assert written({}, {"example.com/owner": "ops"}) is None


def test_a_dropped_key_changes_the_record():
    live = {"team": "blue", "tier": "web", RECORD: "team,tier", "example.com/owner": "ops"}
    assert written({"team": "blue"}, live) == {"team": "blue", RECORD: "team"}
    # Nothing left to set: an empty record, so the apply still drops the recorded keys.
    assert written({}, live) == {RECORD: ""}
    assert written({}, {RECORD: "", "example.com/owner": "ops"}) is None


def test_a_new_or_changed_key_is_written_with_the_record():
    assert written({"team": "blue"}, {}) == {"team": "blue", RECORD: "team"}
    live = {"team": "blue", RECORD: "team"}
    assert written({"team": "red"}, live) == {"team": "red", RECORD: "team"}


def test_no_record_yet_nothing_written_to_remove():
    # A Service written before the record: nothing is written only to remove old keys.
    assert written({}, {"team": "blue", "example.com/owner": "ops"}) is None
    # The record comes with the next key kubelb sets.
    got = written({"tier": "web"}, {"team": "blue", "example.com/owner": "ops"})
    assert got == {"tier": "web", RECORD: "tier"}


def test_the_record_never_propagates():
    source = {RECORD: "x,y", "team": "blue"}
    assert propagation.permitted(source, effective.AnnotationPolicy(propagate_all=True)) == {
        "team": "blue"
    }
    assert propagation.with_record({RECORD: "forged", "a": "1"}, None) == {"a": "1", RECORD: "a"}


def test_the_record_is_read_from_the_live_object() -> None:
    assert propagation.recorded(None) is None
    assert propagation.recorded({"metadata": {"annotations": {"team": "a"}}}) is None
    assert propagation.recorded({"metadata": {"annotations": {RECORD: "a,b"}}}) == "a,b"
    assert propagation.recorded({"metadata": {"annotations": {RECORD: ""}}}) == ""
