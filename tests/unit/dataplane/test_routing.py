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


def one(match: proxy.RouteMatch) -> routing.RouteTable[str]:
    """A table whose only route `m` has `match`; a request it refuses gets None."""
    route = proxy.HTTPRoute(name="m", match=match, backends=(proxy.WeightedCluster(cluster="c"),))
    return routing.RouteTable(proxy.group_by_hostname([((), route)]), lambda r: r.name)


def path(kind: proxy.PathMatchKind, value: str) -> proxy.RouteMatch:
    return proxy.RouteMatch(path=proxy.PathMatch(kind=kind, value=value))


@pytest.mark.parametrize(
    ("match", "target", "holds"),
    [
        (path(proxy.PathMatchKind.PREFIX, "/v1"), "/v1", True),
        (path(proxy.PathMatchKind.PREFIX, "/v1"), "/v1/", True),
        (path(proxy.PathMatchKind.PREFIX, "/v1"), "/v1/x?y=1", True),
        (path(proxy.PathMatchKind.PREFIX, "/v1"), "/v1?y=/", True),
        (path(proxy.PathMatchKind.PREFIX, "/v1"), "/v10", False),
        (path(proxy.PathMatchKind.PREFIX, "/v1"), "/V1", False),
        (path(proxy.PathMatchKind.PREFIX, "/"), "/anything", True),
        (path(proxy.PathMatchKind.EXACT, "/a"), "/a?q", True),
        (path(proxy.PathMatchKind.EXACT, "/a"), "/a/", False),
        # The whole path, never the query string.
        (path(proxy.PathMatchKind.REGEX, r"/items/\d+"), "/items/42", True),
        (path(proxy.PathMatchKind.REGEX, r"/items/\d+"), "/items/42?x=1", True),
        (path(proxy.PathMatchKind.REGEX, r"/items/\d+"), "/items/42/more", False),
        (path(proxy.PathMatchKind.REGEX, r"/items/\d+"), "/v/items/42", False),
        (path(proxy.PathMatchKind.REGEX, r"/a.*"), "/b?/a", False),
    ],
)
def test_path_matches(match, target, holds):
    assert (one(match).match("h", target) == "m") is holds


HEADERS = proxy.RouteMatch(
    headers=(
        proxy.HeaderMatch(name="x-env", value="canary"),
        proxy.HeaderMatch(name="x-ver", value=r"v[0-9]+", kind=proxy.ValueMatchKind.REGEX),
    )
)


@pytest.mark.parametrize(
    ("headers", "holds"),
    [
        ([(b"X-Env", b"canary"), (b"x-ver", b"v2")], True),
        ([(b"x-env", b"Canary"), (b"x-ver", b"v2")], False),
        ([(b"x-env", b"canary"), (b"x-ver", b"v2x")], False),
        ([(b"x-env", b"canary")], False),
        # A header on several lines holds when one line does, each compared whole (Envoy 1.40).
        ([(b"x-env", b"other"), (b"x-env", b"canary"), (b"x-ver", b"v1")], True),
        ([(b"x-env", b"canary"), (b"x-ver", b"x"), (b"x-ver", b"v2")], True),
        ([(b"x-env", b"canary,other"), (b"x-ver", b"v1")], False),
    ],
)
def test_header_matches(headers, holds):
    assert (one(HEADERS).match("h", "/", b"GET", headers) == "m") is holds


def test_one_line_is_one_value_commas_and_all():
    listed = one(proxy.RouteMatch(headers=(proxy.HeaderMatch(name="x-a", value="1,2"),)))
    assert listed.match("h", "/", b"GET", [(b"x-a", b"1,2")]) == "m"
    assert listed.match("h", "/", b"GET", [(b"x-a", b"1"), (b"x-a", b"2")]) is None


QUERY = proxy.RouteMatch(
    query_params=(
        proxy.QueryParamMatch(name="debug", value="on"),
        proxy.QueryParamMatch(name="id", value=r"[a-z ]+", kind=proxy.ValueMatchKind.REGEX),
    )
)


@pytest.mark.parametrize(
    ("target", "holds"),
    [
        ("/?debug=on&id=abc", True),
        ("/x?id=abc&debug=on", True),
        # The first occurrence counts.
        ("/?debug=off&debug=on&id=abc", False),
        ("/?debug=on&debug=off&id=abc", True),
        # Names and values compare as sent, never percent-decoded (Envoy's route matching).
        ("/?debug=o%6E&id=abc", False),
        ("/?debu%67=on&id=abc", False),
        ("/?debug=on&id=a+b", False),
        ("/?Debug=on&id=abc", False),
        ("/?debug=on", False),
        ("/?debug&id=abc", False),
        ("/debug=on&id=abc", False),
    ],
)
def test_query_param_matches(target, holds):
    assert (one(QUERY).match("h", target) == "m") is holds


def test_a_parameter_without_a_value_is_empty():
    empty = one(proxy.RouteMatch(query_params=(proxy.QueryParamMatch(name="flag", value=""),)))
    assert empty.match("h", "/?flag") == "m"
    assert empty.match("h", "/?flag=") == "m"
    assert empty.match("h", "/?other") is None


def test_method_matches():
    post = one(proxy.RouteMatch(method="POST"))
    assert (post.match("h", "/", b"POST"), post.match("h", "/", b"GET")) == ("m", None)


def test_every_condition_must_hold_and_the_first_matching_route_answers():
    narrow = proxy.HTTPRoute(
        name="narrow",
        match=proxy.RouteMatch(
            path=proxy.PathMatch(value="/api"),
            method="GET",
            headers=(proxy.HeaderMatch(name="x-a", value="1"),),
        ),
        backends=(proxy.WeightedCluster(cluster="c"),),
    )
    wide = proxy.HTTPRoute(name="wide", backends=(proxy.WeightedCluster(cluster="c"),))
    t = routing.RouteTable(
        (proxy.VirtualHost(name="h", domains=("*",), routes=(narrow, wide)),), lambda r: r.name
    )
    assert t.match("h", "/api/x", b"GET", [(b"x-a", b"1")]) == "narrow"
    assert t.match("h", "/api/x", b"PUT", [(b"x-a", b"1")]) == "wide"
    assert t.match("h", "/other", b"GET", [(b"x-a", b"1")]) == "wide"
    assert t.match("h", "/api", b"GET", []) == "wide"


def test_a_regex_is_compiled_once_per_table():
    pattern = r"/p/[0-9]+"
    routes = [
        proxy.HTTPRoute(name=f"r{i}", match=path(proxy.PathMatchKind.REGEX, pattern),
                        backends=(proxy.WeightedCluster(cluster="c"),))
        for i in range(3)
    ]  # fmt: skip
    t = routing.RouteTable(
        (proxy.VirtualHost(name="h", domains=("*",), routes=tuple(routes)),), lambda r: r.name
    )
    compiled = {id(m._regex) for m, _ in t.virtual_host("h")}
    assert len(compiled) == 1


def test_a_regex_python_cannot_compile_never_matches():
    broken = one(path(proxy.PathMatchKind.REGEX, "/(unclosed"))
    assert broken.match("h", "/(unclosed") is None
