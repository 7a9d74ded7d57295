"""Virtual hosts, route order and HTTP option checks."""

from __future__ import annotations

from typing import Any

import pytest

from kubelb.ir import proxy
from kubelb.xds import translate
from kubelb.xds.translate import http


def route(name: str, prefix: str = "/") -> proxy.HTTPRoute:
    return proxy.HTTPRoute(
        name=name,
        match=proxy.RouteMatch(path=proxy.PathMatch(value=prefix)),
        backends=(proxy.WeightedCluster(cluster="c"),),
    )


def host(name: str, *routes: proxy.HTTPRoute, domains: tuple[str, ...] = ()) -> proxy.VirtualHost:
    return proxy.VirtualHost(name=name, domains=domains or (name,), routes=routes)


def test_virtual_hosts_keep_the_ir_route_order_and_sort_by_name() -> None:
    hosts = http.build_virtual_hosts(
        [
            host("two", route("b", "/b"), route("a", "/")),
            host("one", route("a"), route("b", "/b"), domains=("one.example", "one")),
        ],
        proxy.HTTPOptions(),
    )
    assert [(v.name, list(v.domains), [r.name for r in v.routes]) for v in hosts] == [
        ("one", ["one.example", "one"], ["a", "b"]),
        ("two", ["two"], ["b", "a"]),
    ]


def test_weighted_backends_become_weighted_clusters() -> None:
    r = proxy.HTTPRoute(
        name="w",
        backends=(
            proxy.WeightedCluster(cluster="a", weight=3),
            proxy.WeightedCluster(cluster="b", weight=1),
        ),
    )
    (vh,) = http.build_virtual_hosts([host("h", r)], proxy.HTTPOptions())
    action = vh.routes[0].route
    assert not action.cluster
    assert [(c.name, c.weight.value) for c in action.weighted_clusters.clusters] == [
        ("a", 3),
        ("b", 1),
    ]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (proxy.HTTPOptions(max_request_headers_kb=0), "maxRequestHeadersKb: 0 is outside 1-8192"),
        (proxy.HTTPOptions(max_response_headers_kb=8193), "maxResponseHeadersKb: 8193"),
        (proxy.HTTPOptions(max_request_headers_count=0), "maxRequestHeadersCount"),
        (proxy.HTTPOptions(idle_timeout_seconds=-1), "idleTimeoutSeconds"),
        (proxy.HTTPOptions(xff_num_trusted_hops=-1), "xffNumTrustedHops"),
    ],
)
def test_bad_options_name_listener_and_field(options: proxy.HTTPOptions, message: str) -> None:
    with pytest.raises(translate.TranslateError, match=f"listener 'web': http.{message}"):
        http.check_options("web", options)


def test_upstream_options_take_the_larger_limits() -> None:
    def li(name: str, kb: int, count: int) -> proxy.Listener:
        return proxy.Listener(
            name=name,
            address="0.0.0.0",
            port=80,
            protocol=proxy.Protocol.HTTP,
            virtual_hosts=(host("*", route("r")),),
            http=proxy.HTTPOptions(max_response_headers_kb=kb, max_request_headers_count=count),
        )

    config = proxy.ProxyConfig(node_id="n", listeners=(li("a", 10, 500), li("b", 20, 100)))
    limits = http.upstream_options(config)["c"]
    assert (limits.max_response_headers_kb, limits.max_request_headers_count) == (20, 500)


@pytest.mark.parametrize("domain", ["*", "*.example.com", "example.*", "www.example.com"])
def test_hostnames_envoy_can_match(domain: str) -> None:
    li = proxy.Listener(
        name="web", address="0.0.0.0", port=80, protocol=proxy.Protocol.HTTP,
        virtual_hosts=(host("h", route("r"), domains=(domain,)),),
    )  # fmt: skip
    http.check_hostnames(li)


@pytest.mark.parametrize("domain", ["a.*.example.com", "**", "*.example.*", ""])
def test_hostnames_envoy_cannot_match(domain: str) -> None:
    li = proxy.Listener(
        name="web", address="0.0.0.0", port=80, protocol=proxy.Protocol.HTTP,
        virtual_hosts=(host("h", route("r"), domains=(domain,)),),
    )  # fmt: skip
    with pytest.raises(translate.TranslateError, match="listener 'web': virtual host 'h': domain"):
        http.check_hostnames(li)


def only_route(r: proxy.HTTPRoute, options: proxy.HTTPOptions | None = None, **kw: Any) -> Any:
    (vh,) = http.build_virtual_hosts([host("h", r)], options or proxy.HTTPOptions(), **kw)
    (out,) = vh.routes
    return out


def test_weight_zero_beside_a_positive_one_is_kept() -> None:
    r = proxy.HTTPRoute(
        name="w",
        backends=(
            proxy.WeightedCluster(cluster="a", weight=0),
            proxy.WeightedCluster(cluster="b", weight=1),
        ),
    )
    clusters = only_route(r).route.weighted_clusters.clusters
    assert [(c.name, c.weight.value, c.HasField("weight")) for c in clusters] == [
        ("a", 0, True),
        ("b", 1, True),
    ]


@pytest.mark.parametrize(
    ("listener", "route", "expected"),
    [(30.0, None, 30), (30.0, 0.0, 0), (30.0, 5.0, 5), (0.0, None, 0)],
)
def test_route_timeout_falls_back_to_the_listener(
    listener: float, route: float | None, expected: int
) -> None:
    r = proxy.HTTPRoute(
        name="t", backends=(proxy.WeightedCluster(cluster="c"),), timeout_seconds=route
    )
    action = only_route(r, proxy.HTTPOptions(request_timeout_seconds=listener)).route
    assert action.HasField("timeout")
    assert action.timeout.seconds == expected
    assert not action.HasField("retry_policy")


def test_backend_timeout_bounds_one_attempt_without_retries() -> None:
    r = proxy.HTTPRoute(
        name="t", backends=(proxy.WeightedCluster(cluster="c"),), backend_timeout_seconds=2.5
    )
    policy = only_route(r).route.retry_policy
    # num_retries is a wrapper whose absence means one retry: 0 must be explicit.
    assert policy.HasField("num_retries")
    assert policy.num_retries.value == 0
    assert policy.per_try_timeout.ToMilliseconds() == 2500
    assert not policy.retry_on


def test_direct_status_and_redirect_routes_forward_nothing() -> None:
    edits = proxy.HeaderModifier(set=(("x-a", "1"),), remove=("server",))
    fixed = only_route(proxy.HTTPRoute(name="f", direct_status=500, response_headers=edits))
    assert fixed.WhichOneof("action") == "direct_response"
    assert fixed.direct_response.status == 500
    assert [h.header.key for h in fixed.response_headers_to_add] == ["x-a"]
    assert list(fixed.response_headers_to_remove) == ["server"]
    r = proxy.HTTPRoute(
        name="m",
        match=proxy.RouteMatch(method="GET"),
        redirect=proxy.Redirect(scheme="https"),
        response_headers=edits,
    )
    (vh,) = http.build_virtual_hosts([host("h", r)], proxy.HTTPOptions())
    # A redirect to a default port is two routes in a row: both the IR route's, with its match,
    # edits and name; the first only for a Host naming a port.
    assert [x.name for x in vh.routes] == ["m", "m"]
    first, second = vh.routes
    assert [h.name for h in first.match.headers] == [":method", ":authority"]
    assert [h.name for h in second.match.headers] == [":method"]
    for moved in vh.routes:
        assert moved.WhichOneof("action") == "redirect"
        assert moved.redirect.scheme_redirect == "https"
        assert [h.header.key for h in moved.response_headers_to_add] == ["x-a"]
    assert (first.redirect.port_redirect, second.redirect.port_redirect) == (443, 0)


def test_forwarding_filters_and_persistence() -> None:
    r = proxy.HTTPRoute(
        name="f",
        backends=(proxy.WeightedCluster(cluster="c"),),
        request_headers=proxy.HeaderModifier(add=(("x-b", "2"),), remove=("x-c",)),
        rewrite=proxy.URLRewrite(hostname="in.example"),
        mirrors=(proxy.Mirror(cluster="m"),),
    )
    out = only_route(r, persistence=True)
    assert [h.header.key for h in out.request_headers_to_add] == ["x-b"]
    assert list(out.request_headers_to_remove) == ["x-c"]
    assert out.route.host_rewrite_literal == "in.example"
    assert [p.cluster for p in out.route.request_mirror_policies] == ["m"]
    assert out.route.hash_policy[0].connection_properties.source_ip
