"""The manager's own sockets: a wildcard bind is every address of this host, a specific bind
that address alone."""

from __future__ import annotations

import ipaddress

from kubelb.infra import hubsockets


def test_this_hosts_addresses_include_loopback_and_the_unspecified_address():
    local = hubsockets.local_networks()
    for address in ("127.0.0.1", "127.3.2.1", "::1", "0.0.0.0"):
        assert any(ipaddress.ip_address(address) in n for n in local), address


def test_a_wildcard_bind_holds_every_local_address():
    local = hubsockets.local_networks()
    for host in ("", "0.0.0.0", "::"):
        sock = hubsockets.bound(host, 8001, local)
        assert sock.holds(ipaddress.ip_address("127.0.0.9"), 8001)
        assert not sock.holds(ipaddress.ip_address("127.0.0.9"), 8002)


def test_a_specific_bind_holds_that_address_alone():
    sock = hubsockets.bound("127.0.0.1", 9443, hubsockets.local_networks())
    assert sock.holds(ipaddress.ip_address("127.0.0.1"), 9443)
    assert not sock.holds(ipaddress.ip_address("127.0.0.2"), 9443)
    assert hubsockets.bound("[::1]", 9443, ()).holds(ipaddress.ip_address("::1"), 9443)
