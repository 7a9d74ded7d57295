from __future__ import annotations

import functools

import pytest

from kubelb.observe import metrics
from kubelb.xds import cache, callbacks, snapshot, sotw
from tests.unit.xds import protos


def lb(endpoint_port: int) -> snapshot.Snapshot:
    return snapshot.Snapshot.build(
        clusters=[protos.eds_cluster("c")],
        endpoints=[protos.assignment("c", ("127.0.0.1", endpoint_port))],
        listeners=[protos.tcp_listener("l", 8000, "c")],
    )


def sample(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def test_set_get_clear_and_keys():
    c = cache.SnapshotCache()
    assert c.set_snapshot("t1", lb(1))
    assert not c.set_snapshot("t1", lb(1)), "same content is no update"
    assert c.set_snapshot("t1", lb(2))
    assert c.get_snapshot("t1") is not None
    assert c.keys() == ["t1"]
    assert sample("kubelb_envoy_control_plane_listeners", snapshot_name="t1") == 1
    c.clear_snapshot("t1")
    assert c.get_snapshot("t1") is None
    assert c.keys() == []
    assert (
        metrics.REGISTRY.get_sample_value(
            "kubelb_envoy_control_plane_listeners", {"snapshot_name": "t1"}
        )
        is None
    )


def test_inconsistent_snapshot_keeps_the_previous_one():
    c = cache.SnapshotCache()
    c.set_snapshot("t", lb(1))
    with pytest.raises(snapshot.InconsistentSnapshotError):
        c.set_snapshot("t", snapshot.Snapshot.build(clusters=[protos.eds_cluster("x")]))
    snap = c.get_snapshot("t")
    assert snap is not None
    assert snap.versions == lb(1).versions


def test_streams_are_notified_per_node():
    c = cache.SnapshotCache()
    woken: list[int] = []
    for stream_id, node in ((1, "a"), (2, "a"), (3, "b")):
        info = callbacks.StreamInfo(stream_id=stream_id, peer="test", node_id=node)
        c.register(info, functools.partial(woken.append, stream_id))
    c.set_snapshot("a", lb(1))
    assert sorted(woken) == [1, 2]
    status = c.status("a")
    assert status.connected == 2
    assert not status.in_sync()
    assert c.keys() == ["a", "b"]
    c.unregister(callbacks.StreamInfo(stream_id=3, peer="test", node_id="b"))
    assert c.keys() == ["a"]


def test_a_nack_stands_until_that_type_is_acked_again():
    c = cache.SnapshotCache()
    heard: list[str] = []
    c.watch_rejections(heard.append)
    nack = sotw.Nack(type_url=snapshot.LISTENER, version="v2", nonce="3", error_detail="bad")
    c.note_nack("n", nack)
    c.note_nack("n", nack)  # Envoy says the same again: nothing new to tell
    assert c.rejection("n") == nack
    assert c.status("n").last_nack == nack
    c.note_ack("n", snapshot.CLUSTER)  # another type says nothing about the listeners
    assert c.rejection("n") == nack
    assert heard == ["n"]
    c.note_ack("n", snapshot.LISTENER)
    assert c.rejection("n") is None
    assert c.status("n").last_nack is None
    assert heard == ["n", "n"]
