"""Header edits, path rewrites (Gateway API's slash cases) and mirrors."""

from __future__ import annotations

import re
from typing import TypeVar

import pytest
from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2 as rc

from kubelb.ir import proxy
from kubelb.xds.translate import filters

PREFIX = proxy.PathRewriteKind.PREFIX
FULL = proxy.PathRewriteKind.FULL
T = TypeVar("T", rc.RouteAction, rc.RedirectAction)


def rewritten(target: T, kind: proxy.PathRewriteKind, value: str, prefix: str) -> T:
    filters.rewrite_path(
        target, proxy.PathRewrite(kind=kind, value=value), proxy.PathMatch(value=prefix)
    )
    return target


def apply_envoy_rewrite(action: rc.RouteAction, prefix: str, path: str) -> str:
    """What Envoy does with `action`'s rewrite on a path its `path_separated_prefix` matched:
    `prefix_rewrite` replaces the matched prefix; `regex_rewrite` replaces every match."""
    if action.prefix_rewrite:
        return str(action.prefix_rewrite) + path[len(prefix) :]
    if action.HasField("regex_rewrite"):
        pattern = str(action.regex_rewrite.pattern.regex)
        return re.sub(pattern, str(action.regex_rewrite.substitution), path)
    return path


@pytest.mark.parametrize(
    ("prefix", "replacement", "path", "expected"),
    [
        ("/foo", "/xyz", "/foo/bar", "/xyz/bar"),
        ("/foo", "/xyz/", "/foo/bar", "/xyz/bar"),
        ("/foo", "/xyz", "/foo", "/xyz"),
        ("/foo", "/xyz", "/foo/", "/xyz/"),
        ("/foo", "/", "/foo/bar", "/bar"),
        ("/foo", "/", "/foo", "/"),
        ("/foo", "/", "/foo/", "/"),
        ("/foo", "", "/foo/bar", "/bar"),
        ("/foo", "", "/foo", "/"),
        ("/f.o", "/", "/f.o/x", "/x"),
        ("/", "/app", "/a/b", "/app/a/b"),
        ("/", "/app/", "/", "/app/"),
        ("/", "/", "/a", "/a"),
    ],
)
def test_prefix_replacement_follows_gateway_api(
    prefix: str, replacement: str, path: str, expected: str
) -> None:
    action = rewritten(rc.RouteAction(), PREFIX, replacement, prefix)
    assert apply_envoy_rewrite(action, prefix, path) == expected


def test_strip_prefix_escapes_regex_metacharacters() -> None:
    action = rewritten(rc.RouteAction(), PREFIX, "/", "/a.b+c")
    assert action.regex_rewrite.pattern.regex == r"^/a\.b\+c/*"
    # `.` must not stand for any character: `/aXb+c` is another prefix.
    assert apply_envoy_rewrite(action, "/a.b+c", "/aXb+c/d") == "/aXb+c/d"


@pytest.mark.parametrize(
    "text", ["/a.b", "/(x)[y]{z}", "/a|b^$", "/x*y+z?", "/back\\slash", "/a-b_c~d"]
)
def test_regex_literal_matches_exactly_the_text(text: str) -> None:
    pattern = filters.regex_literal(text)
    assert re.fullmatch(pattern, text)
    # Only RE2's metacharacters are escaped.
    assert "\\-" not in pattern
    assert "\\~" not in pattern


def test_full_path_forwarding_is_a_whole_path_regex_with_literal_backslashes() -> None:
    action = rewritten(rc.RouteAction(), FULL, "/new\\1", "/old")
    assert action.regex_rewrite.pattern.regex == "^/.*$"
    assert action.regex_rewrite.substitution == "/new\\\\1"


def test_redirect_paths_use_the_redirect_fields() -> None:
    assert rewritten(rc.RedirectAction(), FULL, "/new", "/old").path_redirect == "/new"
    assert rewritten(rc.RedirectAction(), PREFIX, "/v2/", "/v1").prefix_rewrite == "/v2"
    strip = rewritten(rc.RedirectAction(), PREFIX, "/", "/v1")
    assert strip.regex_rewrite.pattern.regex == "^/v1/*"


def test_set_comes_before_add_and_removal_is_separate() -> None:
    m = proxy.HeaderModifier(set=(("x-a", "1"),), add=(("x-a", "2"), ("x-b", "3")), remove=("x-c",))
    added = filters.headers_to_add(m)
    assert [(h.header.key, h.header.value, h.append_action) for h in added] == [
        ("x-a", "1", base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD),
        ("x-a", "2", base_pb2.HeaderValueOption.APPEND_IF_EXISTS_OR_ADD),
        ("x-b", "3", base_pb2.HeaderValueOption.APPEND_IF_EXISTS_OR_ADD),
    ]
    assert filters.headers_to_remove(m) == ["x-c"]
    assert filters.headers_to_add(None) == []
    assert filters.headers_to_remove(None) == []


@pytest.mark.parametrize(
    ("percent", "millionths"),
    [(100.0, None), (50.0, 500_000), (12.5, 125_000), (0.0001, 1), (0.0, 0)],
)
def test_mirror_fraction(percent: float, millionths: int | None) -> None:
    (policy,) = filters.request_mirror_policies([proxy.Mirror(cluster="m", percent=percent)])
    assert policy.cluster == "m"
    assert policy.disable_shadow_host_suffix_append
    if millionths is None:
        assert not policy.HasField("runtime_fraction")
    else:
        assert policy.runtime_fraction.default_value.numerator == millionths
        assert policy.runtime_fraction.default_value.denominator == 2  # MILLION
