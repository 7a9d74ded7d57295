"""Route selection mirrors Envoy's virtual hosts (kubelb.xds.translate.http)."""

from __future__ import annotations

import pytest

from kubelb.dataplane import routing
from kubelb.ir import proxy


def table(*routes: tuple[str, tuple[str, ...], str]) -> routing.RouteTable[str]:
    return routing.RouteTable(
        [(proxy.HTTPRoute(name=n, cluster=n, hostnames=h, path_prefix=p), n) for n, h, p in routes]
    )


ROUTES = table(
    ("exact", ("api.test",), "/v1"),
    ("suffix", ("*.test",), "/"),
    ("longer-suffix", ("*.api.test",), "/"),
    ("prefix", ("api.*",), "/"),
    ("static", (), "/static"),
    ("rest", (), "/"),
)


@pytest.mark.parametrize(
    ("host", "path", "route"),
    [
        ("api.test", "/v1/x", "exact"),
        # The exact virtual host holds its routes plus the hostname-less ones, longest first.
        ("api.test", "/static/x", "static"),
        ("api.test", "/other", "rest"),
        ("www.test", "/v1", "suffix"),
        ("a.api.test", "/", "longer-suffix"),
        ("api.example", "/", "prefix"),
        # A wildcard stands for at least one character.
        ("test", "/", "rest"),
        ("elsewhere.example", "/static", "static"),
    ],
)
def test_virtual_host_then_longest_prefix(host, path, route):
    assert ROUTES.match(host, path) == route


def test_equal_prefix_prefers_the_route_naming_the_host():
    t = table(("fallback", (), "/"), ("named", ("a.test",), "/"))
    assert t.match("a.test", "/") == "named"
    assert t.match("b.test", "/") == "fallback"


def test_star_hostname_is_the_catch_all_and_no_match_is_none():
    t = table(("star", ("*",), "/only"))
    assert t.match("any.test", "/only/x") == "star"
    assert t.match("any.test", "/") is None
    assert table(("named", ("a.test",), "/")).match("b.test", "/") is None
