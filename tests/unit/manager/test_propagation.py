import pytest

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
