"""Endpoint ordering, de-duplication and equal-share weights."""

from __future__ import annotations

import itertools

import pytest

from kubelb.ir import proxy
from kubelb.xds.translate import endpoint


def ep(address: str, port: int = 80) -> proxy.Endpoint:
    return proxy.Endpoint(address=address, port=port)


@pytest.mark.parametrize(
    ("counts", "weights"),
    [
        ([1], [1]),
        ([3, 1], [1, 3]),
        ([2, 3], [3, 2]),
        ([4, 6], [3, 2]),
        ([2, 2, 2], [1, 1, 1]),
        ([0, 2], [0, 1]),
        ([0, 0], [0, 0]),
        ([], []),
    ],
)
def test_member_weights_exact(counts: list[int], weights: list[int]) -> None:
    assert endpoint.member_weights(counts) == weights


@pytest.mark.parametrize("counts", [[1, 2, 3, 4, 5, 6, 7], [7, 11, 13], [10, 100, 1]])
def test_every_member_gets_the_same_total(counts: list[int]) -> None:
    weights = endpoint.member_weights(counts)
    totals = {c * w for c, w in zip(counts, weights, strict=True)}
    assert len(totals) == 1


def test_member_weights_fall_back_to_rounding_when_the_lcm_is_huge() -> None:
    counts = [999_983, 999_979, 3]  # two large primes: exact weights would overflow uint32 sums
    weights = endpoint.member_weights(counts)
    assert all(w >= 1 for w in weights)
    assert weights[2] == round(endpoint.MAX_MEMBER_WEIGHT / 3)
    assert sum(c * w for c, w in zip(counts, weights, strict=True)) < 2**32


def test_unique_sorted_orders_ipv4_ipv6_then_hostnames_and_merges_equal_addresses() -> None:
    given = [
        ep("b.example"),
        ep("fd00::2"),
        ep("10.0.0.10"),
        ep("10.0.0.9"),
        ep("fd00:0::2"),  # same as fd00::2
        ep("A.example."),
        ep("10.0.0.9", 81),
        ep("10.0.0.9"),
    ]
    result = [(e.address, e.port) for e in endpoint.unique_sorted(given)]
    assert result == [
        ("10.0.0.9", 80),
        ("10.0.0.9", 81),
        ("10.0.0.10", 80),
        ("fd00::2", 80),
        ("A.example.", 80),
        ("b.example", 80),
    ]


def test_unique_sorted_ignores_input_order() -> None:
    given = [ep("10.0.0.2"), ep("::1"), ep("h.example"), ep("10.0.0.1", 90)]
    outputs = {tuple(endpoint.unique_sorted(p)) for p in itertools.permutations(given)}
    assert len(outputs) == 1


def test_weighted_endpoints_single_member_has_no_weights() -> None:
    c = proxy.Cluster(name="c", protocol=proxy.Protocol.TCP, endpoints=(ep("10.0.0.1"),))
    assert endpoint.weighted_endpoints([c]) == [(ep("10.0.0.1"), None)]


def test_weighted_endpoints_share_equally_and_sum_shared_hosts() -> None:
    a = proxy.Cluster(
        name="a", protocol=proxy.Protocol.UDP, endpoints=(ep("10.0.0.1"), ep("10.0.0.2"))
    )
    b = proxy.Cluster(name="b", protocol=proxy.Protocol.UDP, endpoints=(ep("10.0.0.2"),))
    assert endpoint.weighted_endpoints([a, b]) == [(ep("10.0.0.1"), 1), (ep("10.0.0.2"), 3)]


def test_empty_load_assignment_has_no_localities() -> None:
    cla = endpoint.build_load_assignment("c", [])
    assert cla.cluster_name == "c"
    assert len(cla.endpoints) == 0
