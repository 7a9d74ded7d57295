"""The per-stream ADS state machine, driven the way Envoy drives it (pure, no sockets)."""

from __future__ import annotations

from envoy.service.discovery.v3 import discovery_pb2
from google.rpc import status_pb2

from kubelb.xds import snapshot, sotw
from kubelb.xds.snapshot import CLUSTER, ENDPOINT, LISTENER, ROUTE
from tests.unit.xds import protos


def request(type_url, *, nonce="", version="", names=(), error=None):
    req = discovery_pb2.DiscoveryRequest(
        type_url=type_url, response_nonce=nonce, version_info=version, resource_names=names
    )
    if error is not None:
        req.error_detail.CopyFrom(status_pb2.Status(code=3, message=error))
    return req


class Envoy:
    """Plays Envoy's side of the protocol against a StreamState: ACKs what it is sent."""

    def __init__(self) -> None:
        self.state = sotw.StreamState()
        self.nonces = 0
        self.last: dict[str, sotw.Push] = {}

    def send(self, snap: snapshot.Snapshot) -> list[sotw.Push]:
        pushes = self.state.plan(snap)
        for push in pushes:
            self.nonces += 1
            self.state.sent(push, str(self.nonces))
            self.last[push.type_url] = push
        return pushes

    def ack(self, type_url: str, names=()) -> sotw.Outcome:
        push = self.last[type_url]
        return self.state.receive(
            request(
                type_url, nonce=str(self.nonces_of(type_url)), version=push.version, names=names
            )
        )

    def nack(self, type_url: str, error: str) -> sotw.Outcome:
        return self.state.receive(
            request(type_url, nonce=str(self.nonces_of(type_url)), error=error)
        )

    def nonces_of(self, type_url: str) -> str:
        return self.state.types[type_url].sent_nonce


def names(push: sotw.Push) -> list[str]:
    return [r.name for r in push.resources]


def one_lb(cluster: str, endpoint: tuple[str, int] = ("127.0.0.1", 9000)) -> snapshot.Snapshot:
    return snapshot.Snapshot.build(
        clusters=[protos.eds_cluster(cluster)],
        endpoints=[protos.assignment(cluster, endpoint)],
        listeners=[protos.tcp_listener("lb", 8000, cluster)],
    )


def connect(envoy: Envoy, snap: snapshot.Snapshot) -> None:
    """Envoy's start-up: CDS, then EDS for the clusters, then LDS once clusters are warm."""
    envoy.state.receive(request(CLUSTER))
    (cds,) = envoy.send(snap)
    assert cds.type_url == CLUSTER
    assert envoy.ack(CLUSTER) is sotw.Outcome.ACK
    envoy.state.receive(request(ENDPOINT, names=list(snap[ENDPOINT].items)))
    (eds,) = envoy.send(snap)
    assert eds.type_url == ENDPOINT
    envoy.ack(ENDPOINT, names=list(snap[ENDPOINT].items))
    envoy.state.receive(request(LISTENER))
    (lds,) = envoy.send(snap)
    assert lds.type_url == LISTENER
    envoy.ack(LISTENER)
    assert envoy.send(snap) == []


def test_initial_connect_follows_push_order():
    connect(Envoy(), one_lb("a"))


def test_listeners_wait_for_cluster_ack():
    envoy = Envoy()
    snap = one_lb("a")
    envoy.state.receive(request(CLUSTER))
    envoy.state.receive(request(LISTENER))
    assert [p.type_url for p in envoy.send(snap)] == [CLUSTER]
    envoy.ack(CLUSTER)
    assert envoy.send(snap) == [], "LDS must also wait for the new cluster's endpoints"
    envoy.state.receive(request(ENDPOINT, names=["a"]))
    assert [p.type_url for p in envoy.send(snap)] == [ENDPOINT]
    envoy.ack(ENDPOINT, names=["a"])
    assert [p.type_url for p in envoy.send(snap)] == [LISTENER]


def test_removed_cluster_outlives_the_listener_that_used_it():
    envoy = Envoy()
    connect(envoy, one_lb("a"))
    moved = one_lb("b")

    (cds,) = envoy.send(moved)
    assert names(cds) == ["a", "b"]
    assert cds.retained == ("a",)
    envoy.ack(CLUSTER)
    assert envoy.send(moved) == []  # LDS waits for b's endpoints
    envoy.state.receive(
        request(ENDPOINT, nonce=envoy.nonces_of(ENDPOINT), version="x", names=["a", "b"])
    )
    (eds,) = envoy.send(moved)
    assert names(eds) == ["a", "b"]
    envoy.ack(ENDPOINT, names=["a", "b"])
    (lds,) = envoy.send(moved)
    assert lds.type_url == LISTENER
    envoy.ack(LISTENER)
    (cleanup,) = envoy.send(moved)
    assert cleanup.type_url == CLUSTER
    assert names(cleanup) == ["b"]
    assert cleanup.version == moved.version(CLUSTER)
    envoy.state.receive(request(ENDPOINT, nonce=envoy.nonces_of(ENDPOINT), names=["b"]))
    (eds,) = envoy.send(moved)
    assert names(eds) == ["b"]
    assert eds.version == moved.version(ENDPOINT)


def routed(cluster: str) -> snapshot.Snapshot:
    """One listener whose route table (RDS, named "web") sends everything to `cluster`."""
    return snapshot.Snapshot.build(
        clusters=[protos.eds_cluster(cluster)],
        endpoints=[protos.assignment(cluster, ("127.0.0.1", 9000))],
        listeners=[protos.tcp_listener("web", 8000, "unused")],
        routes=[protos.route_table("web", cluster)],
    )


def test_removed_cluster_outlives_the_route_table_that_used_it():
    envoy = Envoy()
    before = routed("a")
    connect(envoy, before)
    envoy.state.receive(request(ROUTE, names=["web"]))
    (rds,) = envoy.send(before)
    assert names(rds) == ["web"]
    envoy.ack(ROUTE, names=["web"])
    assert envoy.state.routing_settled(before)

    moved = routed("b")
    (cds,) = envoy.send(moved)
    assert cds.retained == ("a",)
    envoy.ack(CLUSTER)
    envoy.state.receive(
        request(ENDPOINT, nonce=envoy.nonces_of(ENDPOINT), version="x", names=["a", "b"])
    )
    (eds,) = envoy.send(moved)
    assert names(eds) == ["a", "b"]
    envoy.ack(ENDPOINT, names=["a", "b"])
    # The listener did not change; its route table moves to b while a is still there.
    (rds,) = envoy.send(moved)
    assert rds.type_url == ROUTE
    assert not envoy.state.routing_settled(moved)
    assert envoy.send(moved) == []  # a stays until the table is ACKed
    envoy.ack(ROUTE, names=["web"])
    (cleanup,) = envoy.send(moved)
    assert cleanup.type_url == CLUSTER
    assert names(cleanup) == ["b"]


def test_a_changed_cluster_gets_its_unchanged_assignment_again():
    """Envoy warms a changed EDS cluster as a new instance waiting for its assignment, and
    holds back the CDS ACK meanwhile: the assignment follows the CDS response at once."""
    envoy = Envoy()
    connect(envoy, one_lb("a"))
    changed = snapshot.Snapshot.build(
        clusters=[protos.eds_cluster("a", timeout=3.0)],
        endpoints=[protos.assignment("a", ("127.0.0.1", 9000))],
        listeners=[protos.tcp_listener("lb", 8000, "a")],
    )
    assert changed.version(ENDPOINT) == one_lb("a").version(ENDPOINT)
    cds, eds = envoy.send(changed)
    assert (cds.type_url, eds.type_url) == (CLUSTER, ENDPOINT)
    assert names(eds) == ["a"]
    assert eds.version == changed.version(ENDPOINT)
    assert envoy.send(changed) == [], "sent once"


def test_unchanged_types_are_not_resent():
    envoy = Envoy()
    connect(envoy, one_lb("a"))
    pushes = envoy.send(one_lb("a", ("127.0.0.1", 9001)))
    assert [p.type_url for p in pushes] == [ENDPOINT]


def test_nack_keeps_state_and_is_not_resent():
    envoy = Envoy()
    good = one_lb("a")
    connect(envoy, good)
    bad = snapshot.Snapshot.build(
        clusters=[protos.eds_cluster("a")],
        endpoints=[protos.assignment("a", ("127.0.0.1", 9000))],
        listeners=[protos.tcp_listener("lb", 8000, "a"), protos.tcp_listener("lb2", 8000, "a")],
    )
    (lds,) = envoy.send(bad)
    assert envoy.nack(LISTENER, "duplicate address") is sotw.Outcome.NACK
    nack = envoy.state.last_nack
    assert nack is not None
    assert (nack.type_url, nack.version, nack.error_detail) == (
        LISTENER,
        lds.version,
        "duplicate address",
    )
    assert envoy.state.types[LISTENER].acked_version == good.version(LISTENER)
    assert envoy.send(bad) == []
    assert [p.type_url for p in envoy.send(good)] == [LISTENER]


def test_nacked_listeners_keep_retained_clusters():
    envoy = Envoy()
    connect(envoy, one_lb("a"))
    moved = one_lb("b")
    envoy.send(moved)
    envoy.ack(CLUSTER)
    envoy.state.receive(request(ENDPOINT, nonce=envoy.nonces_of(ENDPOINT), names=["a", "b"]))
    envoy.send(moved)
    envoy.ack(ENDPOINT, names=["a", "b"])
    envoy.send(moved)
    envoy.nack(LISTENER, "bad")
    assert envoy.send(moved) == [], "cluster a must stay while Envoy still runs its listener"


def test_stale_nonce_is_ignored():
    envoy = Envoy()
    envoy.state.receive(request(CLUSTER))
    envoy.send(one_lb("a"))
    envoy.send(one_lb("b"))
    assert envoy.state.receive(request(CLUSTER, nonce="1")) is sotw.Outcome.STALE
    assert envoy.state.types[CLUSTER].acked is None


def test_unknown_type_is_ignored():
    state = sotw.StreamState()
    outcome = state.receive(request("type.googleapis.com/envoy.service.runtime.v3.Runtime"))
    assert outcome is sotw.Outcome.UNKNOWN_TYPE


def test_types_not_requested_are_not_sent():
    envoy = Envoy()
    assert envoy.send(one_lb("a")) == []


def test_reconnect_resends_even_when_versions_match():
    snap = one_lb("a")
    envoy = Envoy()
    envoy.state.receive(request(CLUSTER, version=snap.version(CLUSTER)))
    (cds,) = envoy.send(snap)
    assert cds.version == snap.version(CLUSTER)
