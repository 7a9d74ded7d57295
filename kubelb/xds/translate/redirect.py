"""Redirects: an IR `Redirect` as an Envoy `RedirectAction`, with Gateway API's port rules.

The Location's port is the redirect's port if given; else the default port of the redirect's
scheme if one is given (http 80, https 443); else the listener's port. A port that is the
default of the Location's scheme is left out. Envoy already strips the port from the request's
Host (`strip_any_host_port`), so leaving `port_redirect` unset leaves the port out, and setting
it (even to 443) always writes it: the translator sets it only for a non-default port.

The listener's port stands for the request's own port (what the IR asks for when neither scheme
nor port is given): Envoy has lost the Host's port by the time it builds the Location. The two
are the same whenever clients connect to the listener's port itself. Listeners are plain HTTP,
so a request's own scheme is `http`.
"""

from __future__ import annotations

from envoy.config.route.v3 import route_components_pb2 as rc

from kubelb.ir import proxy
from kubelb.xds.translate import filters

DEFAULT_PORTS = {"http": 80, "https": 443}
REQUEST_SCHEME = "http"

_CODES = {
    301: rc.RedirectAction.MOVED_PERMANENTLY,
    302: rc.RedirectAction.FOUND,
    303: rc.RedirectAction.SEE_OTHER,
    307: rc.RedirectAction.TEMPORARY_REDIRECT,
    308: rc.RedirectAction.PERMANENT_REDIRECT,
}


def build_redirect(
    r: proxy.Redirect, match: proxy.PathMatch, listener_port: int
) -> rc.RedirectAction:
    out = rc.RedirectAction(response_code=_CODES[r.status_code])
    scheme = r.scheme.lower() if r.scheme else None
    if scheme is not None:
        out.scheme_redirect = scheme
    if r.hostname:
        out.host_redirect = r.hostname
    port = location_port(scheme, r.port, listener_port)
    if port != DEFAULT_PORTS.get(scheme or REQUEST_SCHEME):
        out.port_redirect = port
    if r.path is not None:
        filters.rewrite_path(out, r.path, match)
    return out


def location_port(scheme: str | None, port: int | None, listener_port: int) -> int:
    if port is not None:
        return port
    if scheme is not None:
        return DEFAULT_PORTS.get(scheme, listener_port)
    return listener_port
