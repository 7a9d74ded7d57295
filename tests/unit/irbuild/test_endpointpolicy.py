"""The endpoint policy: the hub's sockets always refused, the most specific CIDR decides (deny
wins a tie), an allow list refuses what it does not name, and only IP literals are checked."""

from __future__ import annotations

import pytest

from kubelb.api import loadbalancer as api_lb
from kubelb.irbuild import endpointpolicy as ep, loadbalancers as irbuild

METRICS = ep.hub_socket("127.0.0.1", 9443)


def policy(*, hub=(METRICS,), allowed=(), denied=()) -> ep.EndpointPolicy:
    return ep.EndpointPolicy(
        hub=tuple(hub), allowed=ep.parse_networks(allowed), denied=ep.parse_networks(denied)
    )


def test_no_lists_admit_every_ip_but_the_hubs_sockets():
    p = policy()
    assert p.refusal("127.0.0.1", 8080) is None
    assert p.refusal("10.1.2.3", 9443) is None  # the port alone is not the socket
    assert "hub's own sockets" in (p.refusal("127.0.0.1", 9443) or "")


@pytest.mark.parametrize(
    "address",
    ["::ffff:127.0.0.1", "0:0:0:0:0:ffff:7f00:1"],  # IPv4-mapped forms of 127.0.0.1
)
def test_ipv4_mapped_addresses_are_checked_as_ipv4(address):
    assert "hub's own sockets" in (policy().refusal(address, 9443) or "")
    assert "denied CIDR 127.0.0.0/8" in (policy(denied=["127.0.0.0/8"]).refusal(address, 1) or "")


def test_a_wildcard_bind_is_every_local_address():
    local = ep.parse_networks(["127.0.0.0/8", "0.0.0.0/8", "192.0.2.7/32"])
    p = policy(hub=[ep.HubSocket(local, 8001)])
    for address in ("127.0.0.1", "127.9.9.9", "0.0.0.0", "192.0.2.7"):
        assert p.refusal(address, 8001) is not None, address
    assert p.refusal("192.0.2.8", 8001) is None


def test_the_hubs_sockets_win_over_any_allow():
    p = policy(allowed=["127.0.0.1/32", "0.0.0.0/0"])
    assert "hub's own sockets" in (p.refusal("127.0.0.1", 9443) or "")


@pytest.mark.parametrize(
    ("allowed", "denied", "address", "refused"),
    [
        ([], ["10.0.0.0/8"], "10.1.2.3", "denied CIDR 10.0.0.0/8"),
        (["10.1.0.0/16"], ["10.0.0.0/8"], "10.1.2.3", None),  # more specific allow carves out
        (["10.0.0.0/8"], ["10.9.0.0/16"], "10.9.0.1", "denied CIDR 10.9.0.0/16"),  # and deny
        (["10.0.0.0/8"], ["10.9.0.0/16"], "10.8.0.1", None),
        (["10.0.0.0/8"], ["10.0.0.0/8"], "10.0.0.1", "denied CIDR 10.0.0.0/8"),  # tie: deny
        (["10.0.0.0/8"], [], "192.168.1.1", "in no allowed CIDR"),
        (["fd00::/8"], [], "fd00::1", None),
        (["fd00::/8"], [], "10.0.0.1", "in no allowed CIDR"),
        ([], ["fe80::/10"], "fe80::1%eth0", "denied CIDR fe80::/10"),
    ],
)
def test_the_most_specific_cidr_decides(allowed, denied, address, refused):
    why = policy(allowed=allowed, denied=denied).refusal(address, 30080)
    if refused is None:
        assert why is None
    else:
        assert why is not None
        assert refused in why


@pytest.mark.parametrize(
    "address", ["example.com", "localhost", "127.1", "0177.0.0.1", "2130706433"]
)
def test_only_ip_literals_can_be_checked(address):
    why = policy().refusal(address, 30080)
    assert why is not None
    assert "not an IP address" in why


def lb_with(*addresses: str, port: int = 9443) -> api_lb.LoadBalancer:
    return api_lb.LoadBalancer.model_validate({
        "metadata": {"name": "web", "namespace": "tenant-a"},
        "spec": {
            "ports": [{"port": 80}],
            "endpoints": [{"addresses": [{"ip": a} for a in addresses], "ports": [{"port": port}]}],
        },
    })  # fmt: skip


def test_refused_endpoints_are_left_out_and_reported_the_rest_served():
    lb = lb_with("127.0.0.1", "10.0.0.5")
    piece = irbuild.build_load_balancer(lb, irbuild.Placement("0.0.0.0"), {}, policy())
    (cluster,) = piece.clusters
    assert [e.address for e in cluster.endpoints] == ["10.0.0.5"]
    assert len(piece.listeners) == 1
    assert piece.refused == (
        "endpoint 127.0.0.1:9443 is refused: it is one of the hub's own sockets",
    )
    assert piece.problems == ()


def test_a_hostname_endpoint_is_refused_under_a_policy_and_passes_without_one():
    lb = api_lb.LoadBalancer.model_validate({
        "metadata": {"name": "web", "namespace": "tenant-a"},
        "spec": {"ports": [{"port": 80}],
                 "endpoints": [{"addresses": [{"hostname": "localhost"}], "ports": [{"port": 1}]}]},
    })  # fmt: skip
    placed = irbuild.Placement("0.0.0.0")
    assert irbuild.build_load_balancer(lb, placed, {}).clusters[0].endpoints
    refused = irbuild.build_load_balancer(lb, placed, {}, policy())
    assert refused.clusters[0].endpoints == ()
    assert len(refused.refused) == 1


def test_assemble_reports_refusals_per_load_balancer():
    piece = irbuild.build_load_balancer(lb_with("127.0.0.1"), irbuild.Placement("0.0.0.0"), {},
                                        policy())  # fmt: skip
    built = irbuild.assemble("tenant-a", [piece])
    assert built.refused == {"tenant-a/web": piece.refused}
    assert built.config.clusters[0].endpoints == ()
