"""The pool never places a LoadBalancer on a socket the hub listens on, nor (with a probe) on
one another process holds."""

import socket

from kubelb.api import conditions
from kubelb.placement import pool

XDS = pool.Reservation("127.0.0.1", 8001, "kubelb xDS server")


def test_reserved_port_is_refused_with_its_own_reason():
    result = pool.assign(["127.0.0.1"], {"evil/lb": [(8001, "TCP")], "ok/lb": [(80, "TCP")]},
                         {}, [XDS])  # fmt: skip
    assert result.addresses == {"ok/lb": "127.0.0.1"}
    why = result.unplaced["evil/lb"]
    assert why.reason == conditions.PORT_RESERVED
    assert "127.0.0.1:8001/TCP (kubelb xDS server)" in why.message


def test_wildcard_reservation_holds_the_port_on_every_address():
    everywhere = pool.Reservation("", 9443, "kubelb metrics")
    for wildcard in ("", "0.0.0.0", "::"):
        reservation = pool.Reservation(wildcard, 9443, "kubelb metrics")
        result = pool.assign(["127.0.0.1", "127.0.0.2"], {"a/b": [(9443, "TCP")]}, {},
                             [reservation])  # fmt: skip
        assert result.unplaced["a/b"].reason == conditions.PORT_RESERVED
    assert everywhere.covers("10.1.2.3")


def test_reservation_on_one_address_leaves_the_others():
    result = pool.assign(["127.0.0.1", "127.0.0.2"], {"a/b": [(8001, "TCP")]}, {}, [XDS])
    assert result.addresses == {"a/b": "127.0.0.2"}


def test_reservation_is_per_transport():
    result = pool.assign(["127.0.0.1"], {"a/b": [(8001, "UDP")]}, {}, [XDS])
    assert result.addresses == {"a/b": "127.0.0.1"}


def test_sticky_assignment_on_a_now_reserved_socket_is_refused():
    result = pool.assign(["127.0.0.1"], {"a/b": [(8001, "TCP")]}, {"a/b": "127.0.0.1"}, [XDS])
    assert result.unplaced["a/b"].reason == conditions.PORT_RESERVED


def test_probe_refuses_a_socket_it_would_share_with_another_process():
    # Another kubelb's Envoy binds with SO_REUSEPORT: a listener of ours would join its socket.
    with socket.socket() as held:
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        assert not pool.unshared("127.0.0.1", port, "TCP")
        result = pool.assign(["127.0.0.1"], {"a/b": [(port, "TCP")]}, {},
                             probe=pool.unshared)  # fmt: skip
        why = result.unplaced["a/b"]
        assert why.reason == conditions.PORT_CONFLICT
        assert "another process on this host, sharing the socket" in why.message
    assert pool.unshared("127.0.0.1", port, "TCP")


def test_probe_leaves_an_exclusive_holder_to_the_data_plane():
    # No sharing is possible: the data plane's bind fails and it reports that itself.
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        assert pool.unshared("127.0.0.1", held.getsockname()[1], "TCP")


def test_probe_sees_a_reuseport_udp_holder():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as held:
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        held.bind(("127.0.0.1", 0))
        assert not pool.unshared("127.0.0.1", held.getsockname()[1], "UDP")


def test_probe_is_asked_only_for_new_placements():
    asked = []

    def probe(address, port, transport):
        asked.append((address, port, transport))
        return False

    result = pool.assign(["127.0.0.1"], {"a/b": [(80, "TCP")]}, {"a/b": "127.0.0.1"},
                         probe=probe)  # fmt: skip
    assert result.addresses == {"a/b": "127.0.0.1"}
    assert asked == []
