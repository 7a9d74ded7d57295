"""The LoadBalancer controller's pure parts: which reason wins, and condition bookkeeping."""

from __future__ import annotations

from typing import Any

import pytest

from kubelb.api import loadbalancer as api_lb
from kubelb.ir import proxy
from kubelb.irbuild import loadbalancers as irbuild
from kubelb.manager import loadbalancers


def lb(type_: str = "LoadBalancer") -> api_lb.LoadBalancer:
    return api_lb.LoadBalancer.model_validate(
        {
            "metadata": {"name": "web", "namespace": "tenant-a"},
            "spec": {
                "type": type_,
                "ports": [{"name": "http", "port": 80}],
                "endpoints": [
                    {
                        "addressesReference": {"name": "default"},
                        "ports": [{"name": "http", "port": 30080}],
                    }
                ],
            },
        }
    )


SERVED = {"status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.1"}]}}}
BASE: dict[str, Any] = {
    "missing_addresses": (),
    "problems": (),
    "service": SERVED,
    "address_problem": None,
    "envoy_ready": True,
}


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({}, "Reconciled"),
        (
            {"missing_addresses": ["default"], "problems": ["x"], "service": None},
            "AddressesNotFound",
        ),
        ({"problems": ["port 80: no endpoint"], "service": None}, "InvalidSpec"),
        (
            {"refused": ["endpoint 127.0.0.1:9443 is refused"], "problems": ["x"], "service": None},
            "EndpointRefused",
        ),
        ({"refused": ["r"], "missing_addresses": ["default"]}, "AddressesNotFound"),
        ({"service": None}, "NoAddress"),
        ({"service": None, "address_problem": ("PortConflict", "taken")}, "PortConflict"),
        ({"envoy_ready": False}, "EnvoyNotReady"),
    ],
)
def test_the_most_fundamental_reason_wins(changes, reason):
    result = loadbalancers.verdict(lb(), **{**BASE, **changes})
    assert result.reason == reason
    assert result.ready is (reason == "Reconciled")
    assert result.message


def test_a_refusal_names_every_refused_endpoint_and_the_other_problems():
    refused = ["endpoint 127.0.0.1:9443 is refused", "endpoint 10.0.0.1:1 is refused"]
    result = loadbalancers.verdict(lb(), **{**BASE, "refused": refused, "problems": ["p"]})
    assert result.message == "; ".join([*refused, "p"])


def test_a_refused_load_balancer_that_is_not_served_either_says_why():
    """A LoadBalancer the pool could not place is not hidden behind its refused endpoint."""
    refused = ["endpoint 127.0.0.1:6443 is refused"]
    conflict = ("PortConflict", "port already in use on 127.0.0.42 by tenant-a/envoy-other")
    result = loadbalancers.verdict(lb(), **{**BASE, "refused": refused, "service": None,
                                            "address_problem": conflict})  # fmt: skip
    assert result.reason == "EndpointRefused"
    assert result.message.startswith(f"{refused[0]}; not served: PortConflict: ")
    assert conflict[1] in result.message
    assert (result.refusal, result.unserved) == (refused[0], "PortConflict")
    down = loadbalancers.verdict(lb(), **{**BASE, "refused": refused, "envoy_ready": False})
    assert (down.reason, down.unserved) == ("EndpointRefused", "EnvoyNotReady")
    served = loadbalancers.verdict(lb(), **{**BASE, "refused": refused})
    assert (served.message, served.refusal, served.unserved) == (refused[0], refused[0], None)


def test_cluster_ip_needs_no_external_address():
    result = loadbalancers.verdict(lb("ClusterIP"), **{**BASE, "service": {}})
    assert result.ready
    assert "ClusterIP" in result.message


def test_cluster_ip_that_the_infrastructure_cannot_place_is_not_ready():
    """Process mode binds at the pool's address, which a ClusterIP Service never gets."""
    result = loadbalancers.verdict(lb("ClusterIP"), **{**BASE, "service": {}, "placed": False})
    assert not result.ready
    assert result.reason == "ServiceTypeNotServed"
    assert "spec.type: LoadBalancer" in result.message


def test_a_standing_nack_is_not_served_and_quotes_envoy():
    result = loadbalancers.verdict(lb(), **{**BASE, "rejected": "cannot bind 0.0.0.0:80"})
    assert not result.ready
    assert result.reason == "RejectedByDataplane"
    assert "cannot bind 0.0.0.0:80" in result.message
    # A tenant Envoy that is down says so first.
    down = loadbalancers.verdict(lb(), **{**BASE, "rejected": "x", "envoy_ready": False})
    assert down.reason == "EnvoyNotReady"


def test_envoy_not_ready_says_why_when_the_infrastructure_knows():
    cause = "Envoy restarting after exit code 1 (Too many open files)"
    result = loadbalancers.verdict(lb(), **{**BASE, "envoy_ready": False, "envoy_problem": cause})
    assert result.reason == "EnvoyNotReady"
    assert result.message.endswith(f"is not ready: {cause}")


def test_a_rejection_concerns_the_load_balancers_it_names_or_all_when_it_names_none():
    piece = irbuild.Piece(
        key="tenant-a/web",
        listeners=(proxy.Listener(name="web-http", address="0.0.0.0", port=80,
                                  protocol=proxy.Protocol.TCP, clusters=("web-c",)),),
        clusters=(proxy.Cluster(name="web-c", protocol=proxy.Protocol.TCP, endpoints=()),),
        problems=(),
    )  # fmt: skip
    assert loadbalancers.Rejection("x", frozenset({"web-http"})).affects(piece)
    assert loadbalancers.Rejection("x", frozenset({"web-c"})).affects(piece)
    assert not loadbalancers.Rejection("x", frozenset({"other-http"})).affects(piece)
    assert loadbalancers.Rejection("x").affects(piece)
    assert loadbalancers.Rejection("x", frozenset({"other-http"})).affects(None)


def test_served_message_names_the_address():
    assert "203.0.113.1" in loadbalancers.verdict(lb(), **BASE).message


def test_condition_time_changes_only_when_status_flips():
    pending = loadbalancers.Verdict(False, "NoAddress", "waiting")
    first = loadbalancers.with_ready([], pending, 3, now="2026-01-01T00:00:00Z")
    again = loadbalancers.with_ready(
        first, loadbalancers.Verdict(False, "EnvoyNotReady", "m"), 4, now="2026-01-02T00:00:00Z"
    )
    assert again[0]["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert again[0]["observedGeneration"] == 4
    served = loadbalancers.with_ready(
        again, loadbalancers.Verdict(True, "Reconciled", "ok"), 4, now="2026-01-03T00:00:00Z"
    )
    assert served == [
        {
            "type": "Ready",
            "status": "True",
            "reason": "Reconciled",
            "message": "ok",
            "lastTransitionTime": "2026-01-03T00:00:00Z",
            "observedGeneration": 4,
        }
    ]


def test_malformed_conditions_from_others_are_replaced_not_fatal():
    out = loadbalancers.with_ready(
        [{"type": "Ready"}, "junk"], loadbalancers.Verdict(True, "Reconciled", "ok"), None
    )
    assert [c["type"] for c in out] == ["Ready"]
