"""Shared helpers: conditions upsert, Go durations, error paths, shared bookkeeping."""

from __future__ import annotations

import datetime

import pytest

from kubelb.api import conditions, errors, loadbalancer as api_lb, meta, registry

T0 = "2026-01-01T00:00:00Z"
T1 = "2026-01-01T00:05:00Z"


def test_set_condition_keeps_transition_time_when_status_unchanged() -> None:
    first = meta.set_condition(
        (), type=conditions.READY, status=meta.ConditionStatus.FALSE,
        reason=conditions.NO_ADDRESS, message="pool empty", now=T0,
    )  # fmt: skip
    again = meta.set_condition(
        first, type=conditions.READY, status=meta.ConditionStatus.FALSE,
        reason=conditions.PORT_CONFLICT, message="port 80 taken", now=T1,
    )  # fmt: skip
    assert again[0].last_transition_time == T0
    assert again[0].reason == conditions.PORT_CONFLICT
    flipped = meta.set_condition(
        again, type=conditions.READY, status=meta.ConditionStatus.TRUE,
        reason=conditions.RECONCILED, message="ok", now=T1, observed_generation=4,
    )  # fmt: skip
    assert flipped[0].last_transition_time == T1
    assert flipped[0].observed_generation == 4


def test_set_condition_is_idempotent_and_sorted() -> None:
    conds = meta.set_condition(
        (), type="Ready", status=meta.ConditionStatus.TRUE, reason="A", message="", now=T0
    )
    conds = meta.set_condition(
        conds, type="Accepted", status=meta.ConditionStatus.TRUE, reason="B", message="", now=T0
    )
    assert [c.type for c in conds] == ["Accepted", "Ready"]
    same = meta.set_condition(
        conds, type="Ready", status=meta.ConditionStatus.TRUE, reason="A", message="", now=T1
    )
    assert same == conds
    found = meta.find_condition(conds, "Ready")
    assert found is not None
    assert found.reason == "A"
    assert meta.find_condition(conds, "Missing") is None


def test_condition_reasons_are_valid_camel_case() -> None:
    import re

    names = [v for k, v in vars(conditions).items() if k.isupper() and isinstance(v, str)]
    assert len(names) > 20
    for name in names:
        assert re.match(meta.CONDITION_REASON_PATTERN, name), name


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("60s", 60.0), ("1m30s", 90.0), ("500ms", 0.5), ("1h", 3600.0), ("0", 0.0), ("1.5s", 1.5)],
)
def test_duration_seconds(text: str, seconds: float) -> None:
    assert meta.duration_seconds(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "60", "s", "1x", "1m30"])
def test_duration_rejects_bad_input(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        meta.duration_seconds(text)


def test_rfc3339() -> None:
    moment = datetime.datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=datetime.UTC)
    assert meta.rfc3339(moment) == "2026-01-02T03:04:05Z"


@pytest.mark.parametrize(
    ("loc", "path"),
    [
        (("spec", "endpoints", 0, "addresses", 1), "spec.endpoints[0].addresses[1]"),
        (("spec", "defaultAnnotations", "bogus", "[key]"), "spec.defaultAnnotations[bogus]"),
        ((), ""),
    ],
)
def test_field_path(loc: tuple[int | str, ...], path: str) -> None:
    assert errors.field_path(loc) == path


def _lb(name: str, **extra: object) -> dict[str, object]:
    return {"apiVersion": meta.API_VERSION, "kind": "LoadBalancer",
            "metadata": {"name": name, "namespace": "tenant-a", **extra},
            "spec": {"endpoints": [{"addresses": [{"ip": "10.0.0.1"}],
                                    "ports": [{"port": 30000}]}],
                     "ports": [{"port": 80}]}}  # fmt: skip


def test_equal_instances_share_their_bookkeeping() -> None:
    """Two LoadBalancers parsed alike share their fields-set records and empty extras, and each
    still dumps exactly what it was given."""
    one, two = (registry.parse_as(api_lb.LoadBalancer, _lb(n)) for n in ("a", "b"))
    assert one.model_fields_set is two.model_fields_set
    assert one.metadata.model_fields_set is two.metadata.model_fields_set
    assert one.spec.endpoints[0].model_extra is two.spec.endpoints[0].model_extra == {}
    assert registry.dump(one) == _lb("a")
    assert registry.dump(two) == _lb("b")
    assert {"api_version", "kind"} <= one.model_fields_set


def test_a_copy_changes_no_other_instance() -> None:
    one, two = (registry.parse_as(api_lb.LoadBalancer, _lb(n)) for n in ("a", "b"))
    changed = one.metadata.model_copy(update={"uid": "u", "custom": 1})
    assert changed.model_fields_set == {"name", "namespace", "uid", "custom"}
    assert changed.model_extra == {"custom": 1}
    assert two.metadata.model_fields_set == {"name", "namespace"}
    assert two.metadata.model_extra == {}
    assert registry.dump(two) == _lb("b")


def test_unknown_fields_are_kept_per_instance() -> None:
    one = registry.parse_as(api_lb.LoadBalancer, _lb("a", tenantField="x"))
    two = registry.parse_as(api_lb.LoadBalancer, _lb("b"))
    assert one.metadata.model_extra == {"tenantField": "x"}
    assert two.metadata.model_extra == {}
    assert registry.dump(one) == _lb("a", tenantField="x")
