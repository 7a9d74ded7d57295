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
