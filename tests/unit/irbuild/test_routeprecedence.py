import pytest

from kubelb.ir import proxy
from kubelb.irbuild import routeprecedence as rp


@pytest.mark.parametrize(
    ("pattern", "hostname", "expected"),
    [
        ("foo.example.com", "foo.example.com", True),
        ("foo.example.com", "bar.example.com", False),
        ("*.example.com", "foo.example.com", True),
        ("*.example.com", "a.b.example.com", True),  # one or more labels
        ("*.example.com", "example.com", False),
        ("*.example.com", "fooexample.com", False),
        ("*.example.com", "*.a.example.com", True),  # a narrower wildcard
        ("*.a.example.com", "*.example.com", False),
        ("foo.example.com", "*.example.com", False),
    ],
)
def test_covers(pattern, hostname, expected):
    assert rp.covers(pattern, hostname) is expected


@pytest.mark.parametrize(
    ("listener", "hostnames", "expected"),
    [
        # No hostname on either side: every host.
        (None, [], ()),
        # The listener takes any host: the route's own, normalised.
        (None, ["Foo.Example.com."], ("foo.example.com",)),
        # The route names none: the listener's.
        ("foo.example.com", [], ("foo.example.com",)),
        # Gateway API's examples: a wildcard listener keeps the route hostnames under it.
        (
            "*.example.com",
            ["foo.example.com", "a.b.example.com", "example.com", "foo.other.org"],
            ("foo.example.com", "a.b.example.com"),
        ),
        # A route wildcard narrows to the listener's exact hostname.
        ("foo.example.com", ["*.example.com"], ("foo.example.com",)),
        # Of two wildcards the narrower one.
        ("*.example.com", ["*.com"], ("*.example.com",)),
        ("*.com", ["*.example.com"], ("*.example.com",)),
        # Nothing in common: the route does not attach.
        ("foo.example.com", ["bar.example.com"], None),
        ("*.example.com", ["example.com"], None),
        # Several route hostnames meeting in one listener hostname give it once.
        ("foo.example.com", ["*.example.com", "foo.example.com"], ("foo.example.com",)),
    ],
)
def test_intersect(listener, hostnames, expected):
    assert rp.intersect(listener, hostnames) == expected


def test_most_specific_listener_hostname_wins():
    candidates = [None, "*.example.com", "foo.example.com", "*.a.example.com"]
    assert rp.most_specific(candidates, "foo.example.com") == "foo.example.com"
    assert rp.most_specific(candidates, "x.a.example.com") == "*.a.example.com"
    assert rp.most_specific(candidates, "bar.example.com") == "*.example.com"
    assert rp.most_specific(candidates, "other.org") is None
    assert rp.most_specific(candidates, proxy.WILDCARD_HOST) is None
    assert rp.most_specific(["foo.example.com"], proxy.WILDCARD_HOST) is rp.UNCOVERED
    assert rp.most_specific(["foo.example.com"], "bar.example.com") is rp.UNCOVERED


def route(name, *, kind=proxy.PathMatchKind.PREFIX, path="/", headers=0, params=0, method=None):
    return proxy.HTTPRoute(
        name=name,
        match=proxy.RouteMatch(
            path=proxy.PathMatch(kind=kind, value=path),
            headers=tuple(proxy.HeaderMatch(name=f"h{i}", value="v") for i in range(headers)),
            query_params=tuple(
                proxy.QueryParamMatch(name=f"q{i}", value="v") for i in range(params)
            ),
            method=method,
        ),
        direct_status=200,
    )


def names(routes):
    return [r.name for r in routes]


def test_match_precedence_follows_gateway_api():
    # Given worst first, each tied on everything before its own criterion.
    entries = [
        route("prefix-root"),
        route("prefix-root-1-param", params=1),
        route("prefix-root-1-header", headers=1),
        route("prefix-root-2-headers", headers=2),
        route("prefix-root-method", method="GET"),
        route("prefix-short", path="/a"),
        route("prefix-long", path="/a/b"),
        route("regex", kind=proxy.PathMatchKind.REGEX, path="/r.*"),
        route("exact", kind=proxy.PathMatchKind.EXACT, path="/a"),
    ]
    ranked = rp.ordered([(None, r, rp.match_order(r.match)) for r in entries])
    assert names(ranked) == [
        "exact",
        "regex",
        "prefix-long",
        "prefix-short",
        "prefix-root-method",
        "prefix-root-2-headers",
        "prefix-root-1-header",
        "prefix-root-1-param",
        "prefix-root",
    ]


def test_hostname_specificity_comes_before_the_match():
    exact_host = route("exact-host")
    wildcard = route("wildcard", kind=proxy.PathMatchKind.EXACT, path="/x")
    any_host = route("any-host", kind=proxy.PathMatchKind.EXACT, path="/x/y")
    ranked = rp.ordered(
        [
            (None, any_host, rp.match_order(any_host.match)),
            ("*.example.com", wildcard, rp.match_order(wildcard.match)),
            ("foo.example.com", exact_host, rp.match_order(exact_host.match)),
        ]
    )
    assert names(ranked) == ["exact-host", "wildcard", "any-host"]


def test_ties_go_to_the_tiebreak_and_a_route_appears_once():
    older, newer = route("older"), route("newer")
    ranked = rp.ordered(
        [
            (None, newer, (("2026-02-01", "ns", "b"), (0, 0))),
            (None, older, (("2026-01-01", "ns", "z"), (1, 0))),
            (None, older, (("2026-01-01", "ns", "z"), (1, 0))),
        ]
    )
    assert names(ranked) == ["older", "newer"]


def test_a_match_another_route_already_makes_on_the_same_hostname_is_shadowed():
    """Keys as gatewayapi's: (match order, owner, position); the owner is the middle part."""

    def key(owner, position=0):
        return ((0,), owner, position)

    older, newer = route("older"), route("newer")
    header = route("newer-header", headers=1)
    entries = [
        ("a.example", newer, key("2026-02")),
        ("a.example", header, key("2026-02", 1)),  # another match: not shadowed
        ("*.example", route("wild"), key("2026-03")),  # another route hostname: not shadowed
        ("a.example", older, key("2026-01")),
        ("a.example", route("older-again"), key("2026-01", 1)),  # its own rule order
    ]
    found = rp.shadowed(entries, owner=lambda k: k[1])
    assert found == [(key("2026-02"), key("2026-01"), newer.match)]


def test_covering_lists_the_hostname_then_ever_shorter_wildcards():
    assert rp.covering("a.b.example.com") == (
        "a.b.example.com",
        "*.b.example.com",
        "*.example.com",
        "*.com",
    )
    assert rp.covering("*.example.com") == ("*.example.com", "*.com")
    assert all(rp.covers(p, "a.b.example.com") for p in rp.covering("a.b.example.com"))


def test_grpc_matches_order_by_service_then_method_characters():
    exact, regex = proxy.PathMatchKind.EXACT, proxy.PathMatchKind.REGEX
    keys = {
        "service-and-method": rp.grpc_order(exact, "echo.Echo", "Ping", 0),
        "long-service-only": rp.grpc_order(regex, "echo.EchoService", "", 0),
        "short-service-only": rp.grpc_order(regex, "echo.Echo", "", 0),
        "short-service-header": rp.grpc_order(regex, "echo.Echo", "", 1),
        "long-method-only": rp.grpc_order(regex, "", "HealthCheckWatch", 0),
        "any": rp.grpc_order(proxy.PathMatchKind.PREFIX, "", "", 0),
    }
    assert sorted(keys, key=keys.__getitem__) == [
        "service-and-method",
        "long-service-only",
        "short-service-header",
        "short-service-only",
        "long-method-only",
        "any",
    ]
