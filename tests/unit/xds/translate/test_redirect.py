"""Redirects: Gateway API's Location port rules and the response codes."""

from __future__ import annotations

import re

import pytest
from envoy.config.route.v3 import route_components_pb2 as rc

from kubelb.ir import proxy
from kubelb.xds.translate import redirect

ROOT = proxy.PathMatch()


def ports(r: proxy.Redirect) -> list[tuple[bool, int]]:
    """(only when the Host names a port, port_redirect) per Envoy route, in order."""
    return [
        (condition is not None, action.port_redirect)
        for condition, action in redirect.build_redirects(r, ROOT)
    ]


@pytest.mark.parametrize(
    ("scheme", "port", "expected"),
    [
        # A scheme alone moves to its default port, which the Location leaves out: replace the
        # Host's port when it names one, else write none.
        ("https", None, [(True, 443), (False, 0)]),
        ("http", None, [(True, 80), (False, 0)]),
        ("HTTPS", None, [(True, 443), (False, 0)]),
        ("https", 443, [(True, 443), (False, 0)]),
        (None, 80, [(True, 80), (False, 0)]),
        # Any other port is written as it is.
        ("https", 8443, [(False, 8443)]),
        ("http", 443, [(False, 443)]),
        ("https", 80, [(False, 80)]),
        (None, 9090, [(False, 9090)]),
        (None, 443, [(False, 443)]),
        # Neither: the Host's own port, as the client sent it.
        (None, None, [(False, 0)]),
        # A scheme without a well-known port keeps the request's too.
        ("ftp", None, [(False, 0)]),
    ],
)
def test_location_port(
    scheme: str | None, port: int | None, expected: list[tuple[bool, int]]
) -> None:
    assert ports(proxy.Redirect(scheme=scheme, port=port)) == expected
    for _, action in redirect.build_redirects(proxy.Redirect(scheme=scheme, port=port), ROOT):
        assert action.scheme_redirect == (scheme.lower() if scheme else "")
        assert not action.https_redirect


def test_the_two_variants_differ_only_in_the_port() -> None:
    r = proxy.Redirect(
        scheme="https",
        hostname="new.example",
        path=proxy.PathRewrite(kind=proxy.PathRewriteKind.FULL, value="/x"),
        status_code=301,
    )
    (condition, with_port), (none, without) = redirect.build_redirects(r, ROOT)
    assert condition is redirect.HOST_WITH_PORT
    assert none is None
    with_port.ClearField("port_redirect")
    assert with_port == without
    assert (without.host_redirect, without.path_redirect) == ("new.example", "/x")


@pytest.mark.parametrize(
    ("host", "names_a_port"),
    [("a.example:8080", True), ("[::1]:80", True), ("a.example", False), ("[::1]", False)],
)
def test_host_with_port_condition(host: str, names_a_port: bool) -> None:
    pattern = redirect.HOST_WITH_PORT.string_match.safe_regex.regex
    assert bool(re.fullmatch(pattern, host)) is names_a_port


@pytest.mark.parametrize(
    ("code", "enum"),
    [
        (301, rc.RedirectAction.MOVED_PERMANENTLY),
        (302, rc.RedirectAction.FOUND),
        (303, rc.RedirectAction.SEE_OTHER),
        (307, rc.RedirectAction.TEMPORARY_REDIRECT),
        (308, rc.RedirectAction.PERMANENT_REDIRECT),
    ],
)
def test_status_codes(code: int, enum: int) -> None:
    ((_, action),) = redirect.build_redirects(proxy.Redirect(status_code=code), ROOT)
    assert action.response_code == enum


def test_every_ir_redirect_code_has_an_envoy_code() -> None:
    for code in proxy.REDIRECT_CODES:
        redirect.build_redirects(proxy.Redirect(status_code=code), ROOT)
