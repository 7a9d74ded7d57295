from __future__ import annotations

import dataclasses

import pytest

from kubelb.ir import proxy, tls
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
    assert snap.counts() == {
        "clusters": 0, "endpoints": 0, "listeners": 0, "routes": 0, "secrets": 0
    }  # fmt: skip
    assert snap.versions == snapshot.Snapshot.build().versions


def test_from_resources_and_counts():
    res = translate.Resources(
        listeners=(protos.tcp_listener("l", 10, "c"),),
        clusters=(protos.eds_cluster("c"),),
        endpoints=(protos.assignment("c", ("127.0.0.1", 1)),),
    )
    snap = snapshot.Snapshot.from_resources(res)
    snap.consistent()
    assert snap.counts() == {
        "clusters": 1, "endpoints": 1, "listeners": 1, "routes": 0, "secrets": 0
    }  # fmt: skip
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
        snapshot.SECRET,
        snapshot.LISTENER,
        snapshot.ROUTE,
    )


def test_sealed_resources_are_kept_as_they_are_and_messages_are_sealed():
    kept = snapshot.Resource.of(protos.eds_cluster("a"))
    message = protos.eds_cluster("b", timeout=9)
    snap = snapshot.Snapshot.build(clusters=[kept, message])
    clusters = snap[snapshot.CLUSTER]
    assert clusters.items["a"] is kept
    assert clusters.items["b"].value == message.SerializeToString(deterministic=True)
    # Versions do not depend on who sealed a resource.
    fresh = snapshot.Snapshot.build(clusters=[protos.eds_cluster("a"), message])
    assert snap.versions == fresh.versions


def test_snapshot_holds_bytes_not_messages():
    """A manager keeps a snapshot per tenant: messages would cost several times their bytes."""
    translate.clear_cache()
    tcp, http = proxy.Protocol.TCP, proxy.Protocol.HTTP
    endpoint = proxy.Endpoint(address="10.0.0.1", port=8080)
    to_c = proxy.WeightedCluster(cluster="c")
    config = proxy.ProxyConfig(
        node_id="n",
        listeners=(
            proxy.Listener(name="t", address="0.0.0.0", port=80, protocol=tcp, clusters=("c",)),
            proxy.Listener(
                name="h", address="0.0.0.0", port=81, protocol=http,
                virtual_hosts=proxy.group_by_hostname(
                    [((), proxy.HTTPRoute(name="r", backends=(to_c,)))]
                ),
                tls=proxy.ListenerTLS(
                    certificates=(proxy.ServerCertificate(server_names=(), secret="s"),)
                ),
            ),
        ),
        clusters=(
            proxy.Cluster(name="c", protocol=tcp, endpoints=(endpoint,)),
        ),
        secrets=(tls.TLSSecret(name="s", certificate_chain="c", private_key="k"),),
    )  # fmt: skip
    snap = snapshot.Snapshot.from_resources(translate.sealed(config))
    snap.consistent()
    assert all(snap.counts().values()), snap.counts()
    for t in snapshot.PUSH_ORDER:
        for resource in snap[t].items.values():
            assert isinstance(resource, translate.Sealed)
            held = [getattr(resource, f.name) for f in dataclasses.fields(resource)]
            assert all(isinstance(v, str | bytes | None) for v in held), held
            assert resource.packed.type_url == t
            assert resource.packed.value == resource.value
    # The translator's memo hands out the very same objects again: nothing is serialized twice.
    again = snapshot.Snapshot.from_resources(translate.sealed(config))
    for t in snapshot.PUSH_ORDER:
        for name, resource in snap[t].items.items():
            assert again[t].items[name] is resource
