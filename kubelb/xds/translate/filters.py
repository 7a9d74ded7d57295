"""Route filters: header edits, path rewrites and request mirrors, as Envoy route fields.

Header edits: Envoy removes a route's `*_headers_to_remove` before it adds `*_headers_to_add`,
and applies the additions in order, so the IR's order (remove, set, add) holds: set entries
(OVERWRITE_IF_EXISTS_OR_ADD) come before add entries (APPEND_IF_EXISTS_OR_ADD).

Path rewrites (`rewrite_path`) serve both forwarding (RouteAction) and redirects
(RedirectAction), which share the field names `prefix_rewrite` and `regex_rewrite`. Envoy keeps
the query string through both. ReplacePrefixMatch follows Gateway API: the matched segments are
replaced, and the replacement's trailing `/` never doubles the one that follows, so prefix `/foo`
replaced by `/xyz` or `/xyz/` turns `/foo/bar` into `/xyz/bar` and `/foo` into `/xyz`; replaced by
`/` (or ``) it turns `/foo/bar` into `/bar` and `/foo` or `/foo/` into `/`. A plain
`prefix_rewrite: /` cannot do the latter (Envoy gives `//bar`), so that case is a regex.
Prefix `/` matches no segment: `/xyz` in front of the whole path (`/a` to `/xyz/a`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.type.matcher.v3 import regex_pb2
from envoy.type.v3 import percent_pb2

from kubelb.ir import proxy

_SET = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
_ADD = base_pb2.HeaderValueOption.APPEND_IF_EXISTS_OR_ADD
# Mirror fractions in millionths: the IR's percent may have up to four decimals.
_MILLION = percent_pb2.FractionalPercent.MILLION


def headers_to_add(m: proxy.HeaderModifier | None) -> list[base_pb2.HeaderValueOption]:
    if m is None:
        return []
    return [
        base_pb2.HeaderValueOption(
            header=base_pb2.HeaderValue(key=name, value=value), append_action=action
        )
        for action, pairs in ((_SET, m.set), (_ADD, m.add))
        for name, value in pairs
    ]


def headers_to_remove(m: proxy.HeaderModifier | None) -> list[str]:
    return [] if m is None else list(m.remove)


def rewrite_path(target: Any, rewrite: proxy.PathRewrite, match: proxy.PathMatch) -> None:
    """Set `target`'s (a RouteAction or RedirectAction) path rewrite for a route matching
    `match`. The IR guarantees a PREFIX match for ReplacePrefixMatch."""
    if rewrite.kind is proxy.PathRewriteKind.FULL:
        if isinstance(target, rc.RedirectAction):
            target.path_redirect = rewrite.value
        else:
            target.regex_rewrite.CopyFrom(_regex_rewrite("^/.*$", rewrite.value))
        return
    replacement = rewrite.value.rstrip("/")
    if match.value == "/":
        if replacement:
            target.prefix_rewrite = replacement + "/"
        return
    if replacement:
        target.prefix_rewrite = replacement
    else:
        # The prefix and every `/` after it, so `/foo`, `/foo/` and `/foo/bar` keep one `/`.
        target.regex_rewrite.CopyFrom(_regex_rewrite(f"^{regex_literal(match.value)}/*", "/"))


def request_mirror_policies(
    mirrors: Sequence[proxy.Mirror],
) -> list[rc.RouteAction.RequestMirrorPolicy]:
    """One policy per mirror; the copy keeps the request's Host (Envoy would otherwise add
    `-shadow` to it)."""
    out = []
    for m in mirrors:
        policy = rc.RouteAction.RequestMirrorPolicy(
            cluster=m.cluster, disable_shadow_host_suffix_append=True
        )
        if m.percent < 100:
            policy.runtime_fraction.default_value.CopyFrom(
                percent_pb2.FractionalPercent(
                    numerator=max(0, round(m.percent * 10_000)), denominator=_MILLION
                )
            )
        out.append(policy)
    return out


def regex_literal(text: str) -> str:
    """`text` as an RE2 pattern matching exactly it. Only RE2's metacharacters are escaped:
    Python's `re.escape` also escapes characters such as space, which RE2 need not accept."""
    return _RE2_META.sub(r"\\\g<0>", text)


_RE2_META = re.compile(r"[\\.+*?()|\[\]{}^$]")


def _regex_rewrite(pattern: str, substitution: str) -> regex_pb2.RegexMatchAndSubstitute:
    # In a substitution `\` starts a group reference (`\1`); a literal one is `\\`.
    return regex_pb2.RegexMatchAndSubstitute(
        pattern=regex_pb2.RegexMatcher(regex=pattern),
        substitution=substitution.replace("\\", "\\\\"),
    )
