"""Delta ADS for one stream, driven the way Envoy drives it (pure, no sockets)."""

from __future__ import annotations

from envoy.service.discovery.v3 import discovery_pb2
from google.rpc import status_pb2

from kubelb.xds import delta, snapshot, sotw
from kubelb.xds.snapshot import CLUSTER, ENDPOINT, LISTENER
from tests.unit.xds import protos


def request(type_url, *, nonce="", subscribe=(), unsubscribe=(), initial=None, error=None):
    req = discovery_pb2.DeltaDiscoveryRequest(
        type_url=type_url,
        response_nonce=nonce,
        resource_names_subscribe=subscribe,
        resource_names_unsubscribe=unsubscribe,
        initial_resource_versions=initial or {},
    )
    if error is not None:
        req.error_detail.CopyFrom(status_pb2.Status(code=3, message=error))
    return req


class Envoy:
    """Plays Envoy's side: sends what `plan` asks, records it, ACKs on request."""

    def __init__(self) -> None:
        self.state = delta.DeltaStreamState()
        self.nonces = 0
        self.responses: list[delta.DeltaPush] = []

    def send(self, snap: snapshot.Snapshot) -> list[delta.DeltaPush]:
        sent = []
        for planned in self.state.plan(snap):
            if isinstance(planned, delta.DeltaPush):
                self.nonces += 1
                self.state.sent(planned, str(self.nonces))
                sent.append(planned)
            else:
                self.state.held(planned)
        self.responses += sent
        return sent

    def ack(self, type_url: str, **changes: object) -> sotw.Outcome:
        nonce = self.state.sotw.types[type_url].sent_nonce
        return self.state.receive(request(type_url, nonce=nonce, **changes))


def names(push: delta.DeltaPush) -> list[str]:
    return [r.name for r in push.resources]


def lb(*clusters: str, port: int = 9000) -> snapshot.Snapshot:
    """One listener on the first cluster; every cluster has one endpoint on `port`."""
    return snapshot.Snapshot.build(
        clusters=[protos.eds_cluster(c) for c in clusters],
        endpoints=[protos.assignment(c, ("127.0.0.1", port)) for c in clusters],
        listeners=[protos.tcp_listener("lb", 8000, clusters[0])],
    )


def connect(envoy: Envoy, snap: snapshot.Snapshot, **initial: dict[str, str]) -> None:
    envoy.state.receive(request(CLUSTER, initial=initial.get("clusters")))
    envoy.send(snap)
    envoy.ack(CLUSTER)
    eds = sorted(snap[ENDPOINT].items)
    envoy.state.receive(request(ENDPOINT, subscribe=eds, initial=initial.get("endpoints")))
    envoy.send(snap)
    envoy.ack(ENDPOINT)
    envoy.state.receive(request(LISTENER, initial=initial.get("listeners")))
    envoy.send(snap)
    envoy.ack(LISTENER)


def test_first_connect_sends_everything_in_push_order():
    envoy = Envoy()
    connect(envoy, lb("a"))
    assert [(p.type_url, names(p), p.removed) for p in envoy.responses] == [
        (CLUSTER, ["a"], ()),
        (ENDPOINT, ["a"], ()),
        (LISTENER, ["lb"], ()),
    ]
    assert envoy.state.sotw.routing_settled(lb("a"))


def test_an_endpoint_change_sends_only_that_assignment():
    envoy = Envoy()
    connect(envoy, lb("a", "b"))
    (eds,) = envoy.send(_only_b_moves())
    assert (eds.type_url, names(eds), eds.removed) == (ENDPOINT, ["b"], ())


def _only_b_moves() -> snapshot.Snapshot:
    return snapshot.Snapshot.build(
        clusters=[protos.eds_cluster("a"), protos.eds_cluster("b")],
        endpoints=[protos.assignment("a", ("127.0.0.1", 9000)),
                   protos.assignment("b", ("127.0.0.1", 9001))],
        listeners=[protos.tcp_listener("lb", 8000, "a")],
    )  # fmt: skip


def test_a_moved_listener_removes_the_old_cluster_by_name_after_the_listener_ack():
    envoy = Envoy()
    connect(envoy, lb("a"))
    moved = lb("b")
    (cds,) = envoy.send(moved)
    assert (names(cds), cds.removed, cds.push.retained) == (["b"], (), ("a",))
    envoy.ack(CLUSTER)
    envoy.state.receive(request(ENDPOINT, subscribe=["b"]))
    (eds,) = envoy.send(moved)
    assert names(eds) == ["b"]
    envoy.ack(ENDPOINT)
    (lds,) = envoy.send(moved)
    assert names(lds) == ["lb"]
    envoy.ack(LISTENER)
    (cleanup,) = envoy.send(moved)
    assert (cleanup.type_url, names(cleanup), cleanup.removed) == (CLUSTER, [], ("a",))
    envoy.ack(CLUSTER)
    envoy.state.receive(request(ENDPOINT, unsubscribe=["a"]))  # and drops a's assignment
    assert envoy.send(moved) == [], "an unsubscribe needs no response"
    assert envoy.state.sotw.types[ENDPOINT].sent_version == moved.version(ENDPOINT)


def test_reconnect_sends_only_what_envoy_does_not_hold():
    before = lb("a")
    first = Envoy()
    connect(first, before)
    holds = {t: dict(h) for t, h in first.state.holds.items()}

    after = lb("a", "b")  # b is new; a and its listener are unchanged
    envoy = Envoy()
    connect(
        envoy,
        after,
        clusters={**holds[CLUSTER], "gone": "x"},
        endpoints=holds[ENDPOINT],
        listeners=holds[LISTENER],
    )
    assert [(p.type_url, names(p), p.removed) for p in envoy.responses] == [
        (CLUSTER, ["b"], ("gone",)),
        (ENDPOINT, ["b"], ()),
        (LISTENER, [], ()),  # nothing new, but the first answer of the type on this stream
    ]
    assert envoy.state.sotw.routing_settled(after)
    assert envoy.send(after) == []


def test_an_empty_snapshot_still_answers_the_initial_fetch_of_each_type():
    """Envoy starts only when its initial CDS and LDS fetches are answered; silence costs
    the 15 s initial fetch timeout per type."""
    empty = snapshot.Snapshot.build(clusters=[], endpoints=[], listeners=[])
    envoy = Envoy()
    envoy.state.receive(request(CLUSTER))
    (cds,) = envoy.send(empty)
    assert (cds.type_url, names(cds), cds.removed) == (CLUSTER, [], ())
    assert envoy.ack(CLUSTER) is sotw.Outcome.ACK
    envoy.state.receive(request(LISTENER))
    (lds,) = envoy.send(empty)
    assert (lds.type_url, names(lds), lds.removed) == (LISTENER, [], ())
    assert envoy.ack(LISTENER) is sotw.Outcome.ACK
    assert envoy.send(empty) == [], "later empty differences stay silent"


def test_after_a_nack_the_next_push_resends_every_resource_of_the_type():
    envoy = Envoy()
    connect(envoy, lb("a", "b"))
    bad = lb("a", "b", "c")
    (cds,) = envoy.send(bad)
    assert names(cds) == ["c"]
    nonce = envoy.state.sotw.types[CLUSTER].sent_nonce
    outcome = envoy.state.receive(request(CLUSTER, nonce=nonce, error="invalid cluster c"))
    assert outcome is sotw.Outcome.NACK
    assert envoy.state.sotw.last_nack is not None
    assert envoy.send(bad) == [], "the rejected version is not sent again"
    (cds,) = envoy.send(lb("a", "b", "d"))
    assert (names(cds), cds.removed) == (["a", "b", "d"], ("c",))


def test_subscriptions_count_on_a_request_answering_an_old_response():
    envoy = Envoy()
    connect(envoy, lb("a", "b"))
    outcome = envoy.state.receive(request(ENDPOINT, nonce="superseded", unsubscribe=["b"]))
    assert outcome is sotw.Outcome.STALE
    assert envoy.state.sotw.types[ENDPOINT].names == frozenset({"a"})
    assert "b" not in envoy.state.holds[ENDPOINT]


def test_a_changed_cluster_gets_its_unchanged_assignment_again():
    envoy = Envoy()
    connect(envoy, lb("a", "b"))
    changed = snapshot.Snapshot.build(
        clusters=[protos.eds_cluster("a", timeout=3.0), protos.eds_cluster("b")],
        endpoints=[protos.assignment(c, ("127.0.0.1", 9000)) for c in ("a", "b")],
        listeners=[protos.tcp_listener("lb", 8000, "a")],
    )
    cds, eds = envoy.send(changed)
    assert (names(cds), names(eds)) == (["a"], ["a"])
    assert envoy.send(changed) == []
