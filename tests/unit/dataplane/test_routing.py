"""Route selection mirrors Envoy's virtual hosts (kubelb.xds.translate.http)."""

from __future__ import annotations

import pytest

from kubelb.dataplane import routing
from kubelb.ir import proxy


def table(*routes: tuple[str, tuple[str, ...], str]) -> routing.RouteTable[str]:
    """Routes (name, hostnames, path prefix), longest prefix first within each host's own
    routes and within the hostname-less fallbacks, as the Ingress builder orders them."""
    ordered = sorted(routes, key=lambda r: (-len(r[2]), r[0]))
    virtual_hosts = proxy.group_by_hostname(
        (
            h,
            proxy.HTTPRoute(
                name=n,
                match=proxy.RouteMatch(path=proxy.PathMatch(value=p)),
                backends=(proxy.WeightedCluster(cluster=n),),
            ),
        )
        for n, h, p in ordered
    )
    return routing.RouteTable(virtual_hosts, lambda r: r.name)


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
        # The exact virtual host holds its routes, then the hostname-less ones.
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
def test_virtual_host_then_first_match(host, path, route):
    assert ROUTES.match(host, path) == route


def test_the_hosts_own_routes_come_before_the_fallbacks():
    t = table(("fallback", (), "/longer"), ("named", ("a.test",), "/"))
    assert t.match("a.test", "/longer") == "named"
    assert t.match("b.test", "/longer") == "fallback"
    assert t.match("b.test", "/") is None


def test_a_route_shared_by_hosts_gets_one_value():
    shared = proxy.HTTPRoute(name="s", backends=(proxy.WeightedCluster(cluster="c"),))
    hosts = (
        proxy.VirtualHost(name="a", domains=("a.test",), routes=(shared,)),
        proxy.VirtualHost(name="b", domains=("b.test",), routes=(shared,)),
    )
    made: list[str] = []

    def value(r: proxy.HTTPRoute) -> str:
        made.append(r.name)
        return r.name

    t = routing.RouteTable(hosts, value)
    assert (t.match("a.test", "/"), t.match("b.test", "/"), made) == ("s", "s", ["s"])


def test_exact_path():
    route = proxy.HTTPRoute(
        name="e",
        match=proxy.RouteMatch(path=proxy.PathMatch(kind=proxy.PathMatchKind.EXACT, value="/a")),
        backends=(proxy.WeightedCluster(cluster="c"),),
    )
    t = routing.RouteTable(proxy.group_by_hostname([((), route)]), lambda r: r.name)
    assert [t.match("h", p) for p in ("/a", "/a?x=1", "/a/", "/ab")] == ["e", "e", None, None]


def test_star_hostname_is_the_catch_all_and_no_match_is_none():
    t = table(("star", ("*",), "/only"))
    assert t.match("any.test", "/only/x") == "star"
    assert t.match("any.test", "/") is None
    assert table(("named", ("a.test",), "/")).match("b.test", "/") is None
