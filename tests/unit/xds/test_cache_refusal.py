"""A refused snapshot's reason stands only while that snapshot is what is wanted, and what it
would add is reported as not served."""

from __future__ import annotations

import pytest

from kubelb.app import manager_dataplane
from kubelb.xds import cache, snapshot
from tests.unit.xds import protos
from tests.unit.xds.test_cache import lb


def bigger() -> snapshot.Snapshot:
    """`lb(1)` and one more listener with its cluster."""
    return snapshot.Snapshot.build(
        clusters=[protos.eds_cluster("c"), protos.eds_cluster("c2")],
        endpoints=[protos.assignment("c", ("127.0.0.1", 1)),
                   protos.assignment("c2", ("127.0.0.1", 2))],
        listeners=[protos.tcp_listener("l", 8000, "c"), protos.tcp_listener("l2", 8001, "c2")],
    )  # fmt: skip


def too_big(node_id: str, snap: snapshot.Snapshot) -> str | None:
    return "too big" if snap.counts()["listeners"] > 1 else None


def test_a_refusal_ends_when_the_served_snapshot_is_wanted_again():
    first, big = lb(1), lb(2)
    c = cache.SnapshotCache(admit=lambda node, snap: "too big" if snap is big else None)
    c.set_snapshot("t", first)
    with pytest.raises(cache.RefusedSnapshotError):
        c.set_snapshot("t", big)
    assert c.status("t").refused == "too big"
    assert not c.set_snapshot("t", lb(1))  # the bad input is gone: the same content again
    assert c.get_snapshot("t") is first
    assert c.status("t").refused is None


def test_watchers_hear_when_a_refusal_starts_and_ends_but_not_when_it_repeats():
    heard: list[str] = []
    c = cache.SnapshotCache(admit=too_big)
    c.watch_rejections(heard.append)
    c.set_snapshot("t", lb(1))
    for _ in range(2):  # the same refused content, rebuilt
        with pytest.raises(cache.RefusedSnapshotError):
            c.set_snapshot("t", bigger())
    assert heard == ["t"]
    refusal = c.refusal("t")
    assert refusal is not None
    assert refusal[0] == "too big"
    assert c.set_snapshot("t", lb(3))
    assert heard == ["t", "t"]
    assert c.refusal("t") is None


def test_a_refusal_names_what_the_refused_snapshot_adds_or_changes():
    c = cache.SnapshotCache(admit=too_big)
    c.set_snapshot("t", lb(1))
    assert manager_dataplane.rejection(c, "t") is None
    with pytest.raises(cache.RefusedSnapshotError):
        c.set_snapshot("t", bigger())
    rejection = manager_dataplane.rejection(c, "t")
    assert rejection is not None
    assert rejection.detail == "too big"
    assert rejection.names == {"l2", "c2"}  # "l" and "c" are served as they are
