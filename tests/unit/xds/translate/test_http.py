"""Virtual hosts, route order and HTTP option checks."""

from __future__ import annotations

import pytest

from kubelb.ir import proxy
from kubelb.xds import translate
from kubelb.xds.translate import http


def route(name: str, prefix: str = "/", hosts: tuple[str, ...] = ()) -> proxy.HTTPRoute:
    return proxy.HTTPRoute(name=name, cluster="c", hostnames=hosts, path_prefix=prefix)


def test_longer_prefix_first_and_hostname_routes_beat_fallbacks() -> None:
    routes = [route("z-any"), route("api", "/api"), route("a-host", hosts=("h",)), route("b", "/b")]
    assert [r.name for r in http.order_routes(routes)] == ["api", "b", "a-host", "z-any"]


def test_virtual_hosts_per_hostname_with_fallbacks() -> None:
    routes = [
        route("any"),
        route("h1", hosts=("One.example", "one.example.")),
        route("h2", hosts=("two",)),
    ]
    hosts = http.build_virtual_hosts(routes, proxy.HTTPOptions())
    assert [(v.name, list(v.domains), [r.name for r in v.routes]) for v in hosts] == [
        ("*", ["*"], ["any"]),
        ("one.example", ["one.example"], ["h1", "any"]),
        ("two", ["two"], ["h2", "any"]),
    ]


def test_no_wildcard_virtual_host_without_fallback_routes() -> None:
    hosts = http.build_virtual_hosts([route("h", hosts=("h",))], proxy.HTTPOptions())
    assert [v.name for v in hosts] == ["h"]


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
            routes=(route("r"),),
            http=proxy.HTTPOptions(max_response_headers_kb=kb, max_request_headers_count=count),
        )

    config = proxy.ProxyConfig(node_id="n", listeners=(li("a", 10, 500), li("b", 20, 100)))
    limits = http.upstream_options(config)["c"]
    assert (limits.max_response_headers_kb, limits.max_request_headers_count) == (20, 500)


@pytest.mark.parametrize("host", ["*", "*.example.com", "example.*", "www.example.com"])
def test_hostnames_envoy_can_match(host: str) -> None:
    li = proxy.Listener(
        name="web", address="0.0.0.0", port=80, protocol=proxy.Protocol.HTTP,
        routes=(route("r", hosts=(host,)),),
    )  # fmt: skip
    http.check_hostnames(li)


@pytest.mark.parametrize("host", ["a.*.example.com", "**", "*.example.*", ""])
def test_hostnames_envoy_cannot_match(host: str) -> None:
    li = proxy.Listener(
        name="web", address="0.0.0.0", port=80, protocol=proxy.Protocol.HTTP,
        routes=(route("r", hosts=(host,)),),
    )  # fmt: skip
    with pytest.raises(translate.TranslateError, match="listener 'web': route 'r': hostname"):
        http.check_hostnames(li)
