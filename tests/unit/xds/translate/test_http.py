"""Virtual hosts, route order and HTTP option checks."""

from __future__ import annotations

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
