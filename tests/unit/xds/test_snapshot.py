from __future__ import annotations

import pytest

from kubelb.xds import snapshot, translate
from tests.unit.xds import protos


def test_versions_do_not_depend_on_order():
    a = snapshot.Snapshot.build(clusters=[protos.eds_cluster("a"), protos.eds_cluster("b")])
    b = snapshot.Snapshot.build(clusters=[protos.eds_cluster("b"), protos.eds_cluster("a")])
    assert a.versions == b.versions


def test_only_the_changed_type_changes_version():
    before = snapshot.Snapshot.build(
        clusters=[protos.eds_cluster("c")],
        endpoints=[protos.assignment("c", ("127.0.0.1", 1))],
        listeners=[protos.tcp_listener("l", 10, "c")],
    )
    after = snapshot.Snapshot.build(
        clusters=[protos.eds_cluster("c")],
        endpoints=[protos.assignment("c", ("127.0.0.1", 2))],
        listeners=[protos.tcp_listener("l", 10, "c")],
    )
    changed = {t for t in snapshot.PUSH_ORDER if before.version(t) != after.version(t)}
    assert changed == {snapshot.ENDPOINT}


def test_versions_are_deterministic_across_builds():
    def build():
        return snapshot.Snapshot.build(
            clusters=[protos.eds_cluster("c", timeout=3)],
            endpoints=[protos.assignment("c", ("10.0.0.1", 80), ("10.0.0.2", 80))],
        )

    assert build().versions == build().versions
    assert build().version(snapshot.CLUSTER) != snapshot.Snapshot.build(
        clusters=[protos.eds_cluster("c", timeout=4)]
    ).version(snapshot.CLUSTER)


def test_empty_snapshot_has_every_type():
    snap = snapshot.Snapshot()
    assert set(snap.types) == set(snapshot.PUSH_ORDER)
    assert snap.counts() == {"clusters": 0, "endpoints": 0, "listeners": 0, "routes": 0}
    assert snap.versions == snapshot.Snapshot.build().versions


def test_from_resources_and_counts():
    res = translate.Resources(
        listeners=(protos.tcp_listener("l", 10, "c"),),
        clusters=(protos.eds_cluster("c"),),
        endpoints=(protos.assignment("c", ("127.0.0.1", 1)),),
    )
    snap = snapshot.Snapshot.from_resources(res)
    snap.consistent()
    assert snap.counts() == {"clusters": 1, "endpoints": 1, "listeners": 1, "routes": 0}
    assert snap[snapshot.LISTENER].items["l"].packed.type_url == snapshot.LISTENER


def test_dangling_eds_name_is_inconsistent():
    snap = snapshot.Snapshot.build(clusters=[protos.eds_cluster("a")])
    with pytest.raises(
        snapshot.InconsistentSnapshotError, match="'a' has no ClusterLoadAssignment"
    ):
        snap.consistent()


def test_orphan_assignment_is_inconsistent():
    snap = snapshot.Snapshot.build(
        clusters=[protos.static_cluster("a")],
        endpoints=[protos.assignment("a", ("127.0.0.1", 1))],
    )
    with pytest.raises(snapshot.InconsistentSnapshotError, match="'a' belongs to no EDS cluster"):
        snap.consistent()


def test_eds_service_name_is_the_assignment_name():
    c = protos.eds_cluster("a")
    c.eds_cluster_config.service_name = "svc"
    snapshot.Snapshot.build(
        clusters=[c], endpoints=[protos.assignment("svc", ("127.0.0.1", 1))]
    ).consistent()


def test_duplicate_names_are_rejected():
    with pytest.raises(snapshot.InconsistentSnapshotError, match="duplicate clusters name 'a'"):
        snapshot.Snapshot.build(clusters=[protos.eds_cluster("a"), protos.static_cluster("a")])


def test_wrong_type_is_rejected():
    with pytest.raises(snapshot.InconsistentSnapshotError, match="expected"):
        snapshot.Snapshot.build(listeners=[protos.eds_cluster("a")])


def test_push_order_is_make_before_break():
    assert snapshot.PUSH_ORDER == (
        snapshot.CLUSTER,
        snapshot.ENDPOINT,
        snapshot.LISTENER,
        snapshot.ROUTE,
    )


def test_previous_packing_is_reused_only_for_the_very_same_message():
    kept, changed = protos.eds_cluster("a"), protos.eds_cluster("b")
    before = snapshot.Snapshot.build(clusters=[kept, changed])
    changed_again = protos.eds_cluster("b", timeout=9)
    after = snapshot.Snapshot.build(clusters=[kept, changed_again], previous=before)
    clusters_before, clusters_after = before[snapshot.CLUSTER], after[snapshot.CLUSTER]
    assert clusters_after.items["a"] is clusters_before.items["a"]
    assert clusters_after.items["b"].message is changed_again
    assert clusters_after.items["b"].digest != clusters_before.items["b"].digest
    # An equal message that is another object is packed again, and versions never depend on
    # whether packing was reused.
    fresh = snapshot.Snapshot.build(clusters=[protos.eds_cluster("a"), changed_again])
    assert after.versions == fresh.versions
    again = snapshot.Snapshot.build(clusters=[protos.eds_cluster("a")], previous=after)
    assert again[snapshot.CLUSTER].items["a"] is not clusters_after.items["a"]
    assert again.version(snapshot.CLUSTER) == snapshot.Snapshot.build(
        clusters=[protos.eds_cluster("a")]
    ).version(snapshot.CLUSTER)
