"""HTTP listener consistency checks of the IR: what both translators may rely on."""

from __future__ import annotations

import pytest

from kubelb.ir import proxy

CLUSTER = proxy.Cluster(name="c", protocol=proxy.Protocol.HTTP)
TO_C = (proxy.WeightedCluster(cluster="c"),)


def errors(*hosts: proxy.VirtualHost) -> list[str]:
    li = proxy.Listener(
        name="web", address="127.0.0.1", port=80, protocol=proxy.Protocol.HTTP,
        virtual_hosts=hosts,
    )  # fmt: skip
    return proxy.ProxyConfig(node_id="n", listeners=(li,), clusters=(CLUSTER,)).validate()


def host(*routes: proxy.HTTPRoute, name: str = "h", domains: tuple[str, ...] = ("h",)):
    return proxy.VirtualHost(name=name, domains=domains, routes=routes)


def prefix(value: str) -> proxy.RouteMatch:
    return proxy.RouteMatch(path=proxy.PathMatch(value=value))


def test_a_valid_listener_has_no_errors():
    assert errors(host(proxy.HTTPRoute(name="r", match=prefix("/a"), backends=TO_C))) == []


@pytest.mark.parametrize(
    ("route", "message"),
    [
        (proxy.HTTPRoute(name="r"), "exactly one of backends, redirect and direct_status"),
        (
            proxy.HTTPRoute(name="r", backends=TO_C, direct_status=500),
            "exactly one of backends",
        ),
        (
            proxy.HTTPRoute(name="r", backends=(proxy.WeightedCluster(cluster="x"),)),
            "unknown cluster 'x'",
        ),
        (
            proxy.HTTPRoute(name="r", backends=TO_C, mirrors=(proxy.Mirror(cluster="m"),)),
            "unknown cluster 'm'",
        ),
        (
            proxy.HTTPRoute(name="r", backends=(proxy.WeightedCluster(cluster="c", weight=0),)),
            "at least one backend weight must be positive",
        ),
        (proxy.HTTPRoute(name="r", match=prefix("/a/"), backends=TO_C), "not end with one"),
        (proxy.HTTPRoute(name="r", match=prefix("a"), backends=TO_C), "must start with `/`"),
        (
            proxy.HTTPRoute(name="r", redirect=proxy.Redirect(status_code=200)),
            "redirect status 200",
        ),
        (proxy.HTTPRoute(name="r", direct_status=99), "status 99 is outside"),
        (
            proxy.HTTPRoute(
                name="r",
                match=proxy.RouteMatch(
                    path=proxy.PathMatch(kind=proxy.PathMatchKind.EXACT, value="/a")
                ),
                rewrite=proxy.URLRewrite(
                    path=proxy.PathRewrite(kind=proxy.PathRewriteKind.PREFIX, value="/b")
                ),
                backends=TO_C,
            ),
            "ReplacePrefixMatch needs a PathPrefix match",
        ),
        (proxy.HTTPRoute(name="r", backends=TO_C, timeout_seconds=-1), "must not be negative"),
    ],
)
def test_route_errors_name_listener_and_route(route: proxy.HTTPRoute, message: str):
    (error,) = errors(host(route))
    assert error.startswith("listener 'web': route 'r': ")
    assert message in error


def test_domains_are_unique_across_virtual_hosts():
    route = proxy.HTTPRoute(name="r", backends=TO_C)
    assert errors(host(route, name="a"), host(route, name="b")) == [
        "listener 'web': domain 'h' is in several virtual hosts"
    ]


def test_an_http_listener_needs_a_virtual_host():
    assert errors() == ["listener 'web': an HTTP listener needs at least one virtual host"]


def test_group_by_hostname_keeps_order_and_appends_fallbacks():
    a, b, c = (proxy.HTTPRoute(name=n, backends=TO_C) for n in "abc")
    hosts = proxy.group_by_hostname([(("X.test.",), a), ((), b), (("x.test", "*"), c)])
    assert [(h.name, h.domains, [r.name for r in h.routes]) for h in hosts] == [
        ("*", ("*",), ["c", "b"]),
        ("x.test", ("x.test",), ["a", "c", "b"]),
    ]


@pytest.mark.parametrize(
    ("protocol", "tls", "message"),
    [
        (proxy.Protocol.HTTP, proxy.UpstreamTLS(ca_pem="PEM"), None),
        (proxy.Protocol.HTTP, proxy.UpstreamTLS(verify=False, sni="a.example"), None),
        (proxy.Protocol.HTTP, proxy.UpstreamTLS(), "verification needs a CA bundle"),
        (proxy.Protocol.HTTP, proxy.UpstreamTLS(verify=False, ca_pem="PEM"), "and only it"),
        (proxy.Protocol.TCP, proxy.UpstreamTLS(ca_pem="PEM"), "only supported on HTTP"),
    ],
)
def test_upstream_tls_errors(protocol, tls, message):
    cluster = proxy.Cluster(name="c", protocol=protocol, tls=tls)
    found = proxy.ProxyConfig(node_id="n", clusters=(cluster,)).validate()
    if message is None:
        assert found == []
    else:
        assert len(found) == 1, found
        assert message in found[0]
