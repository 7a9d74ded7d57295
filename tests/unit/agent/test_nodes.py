"""Pure parts of the node controller: which node addresses become Addresses, in which order."""

from __future__ import annotations

import pytest

from kubelb.agent import nodes

ExternalIP, InternalIP, Hostname = (
    nodes.AddressType.EXTERNAL_IP,
    nodes.AddressType.INTERNAL_IP,
    nodes.AddressType.HOSTNAME,
)


def node(name, *addresses, ready=True, deleting=False, heartbeat="2025-01-01T00:00:00Z"):
    meta = {"name": name}
    if deleting:
        meta["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    return {
        "metadata": meta,
        "status": {
            "addresses": [{"type": t, "address": a} for t, a in addresses],
            "conditions": [
                {"type": "MemoryPressure", "status": "False"},
                {"type": "Ready", "status": "True" if ready else "False",
                 "lastHeartbeatTime": heartbeat},
            ],
        },
    }  # fmt: skip


def test_only_ready_nodes_count():
    result = nodes.desired_addresses(
        [
            node("a", ("ExternalIP", "10.0.0.1")),
            node("b", ("ExternalIP", "10.0.0.2"), ready=False),
            node("c", ("ExternalIP", "10.0.0.3"), deleting=True),
            {"metadata": {"name": "no-status"}},
        ],
        ExternalIP,
    )
    assert result == [{"ip": "10.0.0.1"}]


def test_ips_sorted_by_bytes_then_hostnames_and_deduplicated():
    result = nodes.desired_addresses(
        [
            node("a", ("Hostname", "node-b.example"), ("Hostname", "10.0.0.10")),
            node("b", ("Hostname", "Node-A.example"), ("Hostname", "10.0.0.9")),
            node("c", ("Hostname", "fd00::1"), ("Hostname", "10.0.0.9")),
        ],
        Hostname,
    )
    # Byte order puts .9 before .10 (text order would not); IPv4 before IPv6; then names.
    assert result == [
        {"ip": "10.0.0.9"},
        {"ip": "10.0.0.10"},
        {"ip": "fd00::1"},
        {"hostname": "node-a.example"},
        {"hostname": "node-b.example"},
    ]


@pytest.mark.parametrize(
    ("address_type", "expected"),
    [
        (ExternalIP, [{"ip": "203.0.113.7"}]),
        (InternalIP, [{"ip": "10.1.0.7"}, {"ip": "fd00::7"}]),
        (Hostname, [{"hostname": "worker-7"}]),
    ],
)
def test_address_type_selects(address_type, expected):
    worker = node(
        "worker-7",
        ("InternalIP", "10.1.0.7"),
        ("InternalIP", "fd00::7"),
        ("ExternalIP", "203.0.113.7"),
        ("Hostname", "worker-7"),
        ("InternalDNS", "worker-7.internal"),
    )
    assert nodes.desired_addresses([worker], address_type) == expected


def test_non_ip_values_are_dropped_in_ip_modes():
    assert nodes.desired_addresses([node("a", ("ExternalIP", "not-an-ip"))], ExternalIP) == []


def test_ipv6_is_normalised():
    result = nodes.desired_addresses([node("a", ("InternalIP", "FD00:0::0:1"))], InternalIP)
    assert result == [{"ip": "fd00::1"}]


def test_no_nodes_no_addresses():
    assert nodes.desired_addresses([], ExternalIP) == []


def test_heartbeats_do_not_count_as_node_changes():
    old = node("a", ("ExternalIP", "10.0.0.1"), heartbeat="2025-01-01T00:00:00Z")
    new = node("a", ("ExternalIP", "10.0.0.1"), heartbeat="2025-01-01T00:05:00Z")
    assert not nodes.node_changed(old, new)
    assert nodes.node_changed(old, node("a", ("ExternalIP", "10.0.0.1"), ready=False))
    assert nodes.node_changed(old, node("a", ("ExternalIP", "10.0.0.2")))
    assert nodes.node_changed(None, new)
    assert nodes.node_changed(old, None)
