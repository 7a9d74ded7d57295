"""Route matches: an IR `RouteMatch` as an Envoy `RouteMatch`.

Path: PREFIX `/` is Envoy's `prefix: /` (every path); any other PREFIX is
`path_separated_prefix`, which matches whole segments (`/a` matches `/a`, `/a/` and `/a/b`,
never `/ab`), as Gateway API's PathPrefix does; EXACT is `path`; REGEX is `safe_regex` (RE2,
matched against the whole path without its query string). Headers and query parameters compare
case-sensitive values exactly or by RE2 full match; the method is the `:method` pseudo-header.
All conditions must hold, as in the IR. A header sent on several lines holds when one of its
lines matches (Envoy 1.40 compares each line, commas and all, not their comma-joined list).
"""

from __future__ import annotations

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.type.matcher.v3 import regex_pb2, string_pb2

from kubelb.ir import proxy

# Envoy keeps the request's Host as the `:authority` pseudo-header.
_HEADER_ALIASES = {"host": ":authority"}


def build_match(m: proxy.RouteMatch) -> rc.RouteMatch:
    out = rc.RouteMatch()
    path = m.path
    if path.kind is proxy.PathMatchKind.EXACT:
        out.path = path.value
    elif path.kind is proxy.PathMatchKind.REGEX:
        out.safe_regex.CopyFrom(regex_pb2.RegexMatcher(regex=path.value))
    elif path.value == "/":
        # `path_separated_prefix` cannot end with `/`; `/` is every path anyway.
        out.prefix = "/"
    else:
        out.path_separated_prefix = path.value
    out.headers.extend(
        rc.HeaderMatcher(
            name=_HEADER_ALIASES.get(h.name, h.name), string_match=string_match(h.kind, h.value)
        )
        for h in m.headers
    )
    if m.method is not None:
        out.headers.append(
            rc.HeaderMatcher(
                name=":method", string_match=string_match(proxy.ValueMatchKind.EXACT, m.method)
            )
        )
    out.query_parameters.extend(
        rc.QueryParameterMatcher(name=q.name, string_match=string_match(q.kind, q.value))
        for q in m.query_params
    )
    return out


def string_match(kind: proxy.ValueMatchKind, value: str) -> string_pb2.StringMatcher:
    if kind is proxy.ValueMatchKind.REGEX:
        return string_pb2.StringMatcher(safe_regex=regex_pb2.RegexMatcher(regex=value))
    return string_pb2.StringMatcher(exact=value)
