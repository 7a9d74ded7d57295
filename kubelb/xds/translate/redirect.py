"""Redirects: an IR `Redirect` as Envoy `RedirectAction`s, with Gateway API's port rules.

The Location's port is the redirect's port if given; else the default port of the redirect's
scheme if one is given (http 80, https 443); else the request's own. A port that is the default
of the Location's scheme is left out.

Envoy builds the Location from the request's Host as the client sent it (the listener keeps the
port in Host and ignores it only to pick a virtual host), which is what "the request's own port"
needs: the translator cannot know it, since clients may reach the listener through another port
(a Service in front). Envoy writes `port_redirect` whenever it is set, even 443 for https, and
otherwise keeps the Host's port. So a redirect to a default port becomes two Envoy routes with
the route's match: when the Host names a port, `port_redirect` replaces it (the Location says
`:443`, correct if not minimal); else no `port_redirect`, and the Location has no port.

Envoy drops the Host's port when it redirects to another host (`host_redirect`), so a hostname
redirect without scheme or port goes to the default port rather than the request's. Listeners
are plain HTTP, so a request's own scheme is `http`.
"""

from __future__ import annotations

from envoy.config.route.v3 import route_components_pb2 as rc

from kubelb.ir import proxy
from kubelb.xds.translate import filters, routematch

DEFAULT_PORTS = {"http": 80, "https": 443}
REQUEST_SCHEME = "http"

_CODES = {
    301: rc.RedirectAction.MOVED_PERMANENTLY,
    302: rc.RedirectAction.FOUND,
    303: rc.RedirectAction.SEE_OTHER,
    307: rc.RedirectAction.TEMPORARY_REDIRECT,
    308: rc.RedirectAction.PERMANENT_REDIRECT,
}

# A Host that names a port: `name:8080`, `[::1]:8080` (never a bare IPv6 literal `[::1]`).
HOST_WITH_PORT = rc.HeaderMatcher(
    name=":authority",
    string_match=routematch.string_match(proxy.ValueMatchKind.REGEX, r".*:[0-9]+"),
)


def build_redirects(
    r: proxy.Redirect, match: proxy.PathMatch
) -> list[tuple[rc.HeaderMatcher | None, rc.RedirectAction]]:
    """The redirect actions for one IR redirect, in match order, each with the extra condition
    on the request (None: none) under which it answers."""
    out = rc.RedirectAction(response_code=_CODES[r.status_code])
    scheme = r.scheme.lower() if r.scheme else None
    if scheme is not None:
        out.scheme_redirect = scheme
    if r.hostname:
        out.host_redirect = r.hostname
    if r.path is not None:
        filters.rewrite_path(out, r.path, match)
    port = location_port(scheme, r.port)
    if port is None:
        return [(None, out)]
    with_port = rc.RedirectAction()
    with_port.CopyFrom(out)
    with_port.port_redirect = port
    if port != DEFAULT_PORTS.get(scheme or REQUEST_SCHEME):
        return [(None, with_port)]
    return [(HOST_WITH_PORT, with_port), (None, out)]


def location_port(scheme: str | None, port: int | None) -> int | None:
    """The Location's port; None keeps the request's own."""
    if port is not None:
        return port
    if scheme is not None:
        # Gateway API: a scheme without a well-known port keeps the listener's, i.e. the request's.
        return DEFAULT_PORTS.get(scheme)
    return None
