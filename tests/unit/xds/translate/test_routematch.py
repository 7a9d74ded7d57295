"""Route matches: path kinds, header, query parameter and method conditions."""

from __future__ import annotations

import pytest

from kubelb.ir import proxy
from kubelb.xds.translate import routematch

EXACT = proxy.ValueMatchKind.EXACT
REGEX = proxy.ValueMatchKind.REGEX


@pytest.mark.parametrize(
    ("kind", "value", "field"),
    [
        (proxy.PathMatchKind.PREFIX, "/", "prefix"),
        (proxy.PathMatchKind.PREFIX, "/api", "path_separated_prefix"),
        (proxy.PathMatchKind.EXACT, "/api", "path"),
        (proxy.PathMatchKind.EXACT, "/", "path"),
    ],
)
def test_path_kinds(kind: proxy.PathMatchKind, value: str, field: str) -> None:
    m = routematch.build_match(proxy.RouteMatch(path=proxy.PathMatch(kind=kind, value=value)))
    assert m.WhichOneof("path_specifier") == field
    assert getattr(m, field) == value
    assert not m.headers
    assert not m.query_parameters


def test_regex_path_is_safe_regex() -> None:
    path = proxy.PathMatch(kind=proxy.PathMatchKind.REGEX, value="/u/[0-9]+")
    m = routematch.build_match(proxy.RouteMatch(path=path))
    assert m.WhichOneof("path_specifier") == "safe_regex"
    assert m.safe_regex.regex == "/u/[0-9]+"


def test_headers_method_and_query_parameters() -> None:
    m = routematch.build_match(
        proxy.RouteMatch(
            headers=(
                proxy.HeaderMatch(name="x-a", value="1"),
                proxy.HeaderMatch(name="host", value="a.example", kind=EXACT),
                proxy.HeaderMatch(name="x-b", value="v[0-9]", kind=REGEX),
            ),
            query_params=(
                proxy.QueryParamMatch(name="Page", value="2"),
                proxy.QueryParamMatch(name="q", value=".*x", kind=REGEX),
            ),
            method="PATCH",
        )
    )
    headers = [(h.name, h.string_match.WhichOneof("match_pattern")) for h in m.headers]
    # The method comes after the IR's headers; Host is Envoy's `:authority`.
    assert headers == [
        ("x-a", "exact"),
        (":authority", "exact"),
        ("x-b", "safe_regex"),
        (":method", "exact"),
    ]
    assert m.headers[3].string_match.exact == "PATCH"
    assert m.headers[2].string_match.safe_regex.regex == "v[0-9]"
    assert [(q.name, q.string_match.WhichOneof("match_pattern")) for q in m.query_parameters] == [
        ("Page", "exact"),
        ("q", "safe_regex"),
    ]
    # Values compare case-sensitively, as in the IR.
    assert not any(h.string_match.ignore_case for h in m.headers)
