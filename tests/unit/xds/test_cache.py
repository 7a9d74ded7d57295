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


class _AckedState:
    """What `note_ack` reads of a stream: the versions its Envoy ACKed."""

    def __init__(self, snap: snapshot.Snapshot) -> None:
        self.versions = dict(snap.versions)

    def acked_versions(self) -> dict[str, str]:
        return self.versions

    def routes_acked(self, snap: snapshot.Snapshot) -> bool:
        return True


def ack(c: cache.SnapshotCache, snap: snapshot.Snapshot) -> None:
    info = callbacks.StreamInfo(stream_id=1, peer="test", node_id="t")
    info.state = _AckedState(snap)  # type: ignore[assignment]
    c.note_stream_ack(info)


def test_rollback_serves_the_last_acked_snapshot_until_the_config_changes():
    c = cache.SnapshotCache()
    good, fatal, fixed = lb(1), lb(2), lb(3)
    assert not c.rollback("t")  # nothing ACKed yet: nothing to go back to
    c.set_snapshot("t", good)
    ack(c, good)
    assert not c.rollback("t", window=0)  # the Envoy died of something else
    c.set_snapshot("t", fatal)
    assert c.rollback("t")
    assert c.get_snapshot("t") is good
    assert c.status("t").refused
    assert not c.set_snapshot("t", lb(2))  # the same fatal content, rebuilt: kept out
    assert c.get_snapshot("t") is good
    assert c.set_snapshot("t", fixed)
    assert c.status("t").refused is None


def test_rollback_after_an_ack_goes_to_the_snapshot_acked_before():
    c = cache.SnapshotCache()
    good, fatal = lb(1), lb(2)
    for snap in (good, fatal):
        c.set_snapshot("t", snap)
        ack(c, snap)
    assert c.rollback("t")  # ACKed, then dead within the window
    assert c.get_snapshot("t") is good


def test_admit_refuses_with_the_reason_and_keeps_the_last_snapshot():
    c = cache.SnapshotCache(admit=lambda node, snap: "too big" if snap is not first else None)
    first = lb(1)
    c.set_snapshot("t", first)
    with pytest.raises(cache.RefusedSnapshotError, match="too big"):
        c.set_snapshot("t", lb(2))
    assert c.get_snapshot("t") is first
    assert c.status("t").refused == "too big"


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


def test_cache_counters_are_per_snapshot_name():
    c = cache.SnapshotCache()
    names = ("kubelb_envoy_control_plane_cache_misses_total",
             "kubelb_envoy_control_plane_cache_hits_total",
             "kubelb_envoy_control_plane_cache_clears_total")  # fmt: skip
    before = {n: sample(n, snapshot_name="counted") for n in names}
    c.register(callbacks.StreamInfo(stream_id=1, peer="test", node_id="counted"), lambda: None)
    c.set_snapshot("counted", lb(1))
    c.register(callbacks.StreamInfo(stream_id=2, peer="test", node_id="counted"), lambda: None)
    c.clear_snapshot("counted")
    after = {n: sample(n, snapshot_name="counted") - before[n] for n in names}
    assert list(after.values()) == [1, 1, 1]
