"""Redirects: Gateway API's Location port rules and the response codes."""

from __future__ import annotations

import pytest
from envoy.config.route.v3 import route_components_pb2 as rc

from kubelb.ir import proxy
from kubelb.xds.translate import redirect

ROOT = proxy.PathMatch()


@pytest.mark.parametrize(
    ("scheme", "port", "listener_port", "port_redirect"),
    [
        # A scheme alone moves to its default port, which the Location leaves out.
        ("https", None, 8080, 0),
        ("http", None, 8080, 0),
        ("HTTPS", None, 8080, 0),
        # An explicit port stays unless it is the default of the Location's scheme.
        ("https", 8443, 8080, 8443),
        ("https", 443, 8080, 0),
        ("http", 443, 8080, 443),
        ("https", 80, 8080, 80),
        (None, 9090, 8080, 9090),
        (None, 80, 8080, 0),
        (None, 443, 8080, 443),
        # Neither: the listener's port (Envoy has already stripped the request's).
        (None, None, 8080, 8080),
        (None, None, 80, 0),
    ],
)
def test_location_port(
    scheme: str | None, port: int | None, listener_port: int, port_redirect: int
) -> None:
    action = redirect.build_redirect(proxy.Redirect(scheme=scheme, port=port), ROOT, listener_port)
    assert action.port_redirect == port_redirect
    assert action.scheme_redirect == (scheme.lower() if scheme else "")
    assert not action.https_redirect


def test_hostname_keeps_the_listener_port() -> None:
    action = redirect.build_redirect(proxy.Redirect(hostname="new.example"), ROOT, 8080)
    assert (action.host_redirect, action.port_redirect) == ("new.example", 8080)


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
    action = redirect.build_redirect(proxy.Redirect(status_code=code), ROOT, 80)
    assert action.response_code == enum


def test_every_ir_redirect_code_has_an_envoy_code() -> None:
    for code in proxy.REDIRECT_CODES:
        redirect.build_redirect(proxy.Redirect(status_code=code), ROOT, 80)
