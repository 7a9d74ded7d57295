"""HTTP route selection with Envoy's semantics, so one IR routes the same on both data planes.

Input: an HTTP listener's IR virtual hosts, each route paired with whatever the caller routes to
(a picker). Output: a `RouteTable` answering `match(host, target, method, headers)`. A request's
host selects exactly one virtual host the way Envoy does: an exact domain, else the longest
matching `*suffix`, else the longest matching `prefix*`, else `*`; a wildcard stands for at least
one character. Within the virtual host the first route (in IR order) whose match holds answers.

Matches follow Envoy: the path conditions see the path without its query string (a PathPrefix
matches whole segments, as `path_separated_prefix`; a regex must match the whole path); a header
condition holds when one line of the header matches, compared whole (names case-insensitive, as
Envoy 1.40 compares them); a query condition sees the value of a parameter's first occurrence as
sent (never percent-decoded). Regexes are compiled when the table is built (once per config),
with Python's `re` (differences from RE2: docs/dataplane-differences.md).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from kubelb.ir import proxy

logger = logging.getLogger(__name__)

T = TypeVar("T")

WILDCARD = proxy.WILDCARD_HOST

Headers = Sequence[tuple[bytes, bytes]]

NEVER = re.compile(r"(?!)")


class Matcher:
    """One route's `RouteMatch`, compiled: the checks in cheapest-first order."""

    __slots__ = ("_exact", "_headers", "_method", "_prefix", "_query", "_regex")

    def __init__(self, match: proxy.RouteMatch, compile_regex: Callable[[str], re.Pattern[str]]):
        path = match.path
        self._exact: str | None = None
        self._prefix: str | None = None
        self._regex: re.Pattern[str] | None = None
        if path.kind is proxy.PathMatchKind.EXACT:
            self._exact = path.value
        elif path.kind is proxy.PathMatchKind.PREFIX:
            self._prefix = "" if path.value == "/" else path.value.rstrip("/")
        else:
            self._regex = compile_regex(path.value)
        self._method = match.method.encode() if match.method else None
        self._headers = tuple(
            (
                h.name.lower().encode("latin-1"),
                h.value if h.kind is proxy.ValueMatchKind.EXACT else compile_regex(h.value),
            )
            for h in match.headers
        )
        self._query = tuple(
            (q.name, q.value if q.kind is proxy.ValueMatchKind.EXACT else compile_regex(q.value))
            for q in match.query_params
        )

    def holds(self, path: str, query: str | None, method: bytes, headers: Headers) -> bool:
        """`path` without its query string; `query` after the `?` (None: no `?`)."""
        if self._prefix is not None:
            prefix = self._prefix
            if prefix and not (
                path.startswith(prefix) and (len(path) == len(prefix) or path[len(prefix)] == "/")
            ):
                return False
        elif self._exact is not None:
            if path != self._exact:
                return False
        elif self._regex is not None and self._regex.fullmatch(path) is None:
            return False
        if self._method is not None and method != self._method:
            return False
        for name, expected in self._headers:
            if not header_holds(headers, name, expected):
                return False
        if self._query:
            params = query_params(query)
            for param, wanted in self._query:
                found = params.get(param)
                if found is None or not _value_holds(wanted, found):
                    return False
        return True


def _value_holds(expected: str | re.Pattern[str], value: str) -> bool:
    if isinstance(expected, str):
        return value == expected
    return expected.fullmatch(value) is not None


def header_holds(headers: Headers, name: bytes, expected: str | re.Pattern[str]) -> bool:
    """Some line of header `name` (lower-case) matches, its value compared whole (Envoy 1.40);
    an absent header never does."""
    for n, v in headers:
        if (
            len(n) == len(name)
            and n.lower() == name
            and _value_holds(expected, v.decode("latin-1"))
        ):
            return True
    return False


def query_params(query: str | None) -> dict[str, str]:
    """The first value of each parameter, names and values as sent: Envoy's route matching does
    not percent-decode them (`%6E` is not `n`, `+` is not a space); a parameter without `=` has
    the value ""."""
    params: dict[str, str] = {}
    if not query:
        return params
    for part in query.split("&"):
        name, _, value = part.partition("=")
        if name not in params:
            params[name] = value
    return params


Entries = tuple[tuple[Matcher, T], ...]


class RouteTable(Generic[T]):
    __slots__ = ("_default", "_exact", "_prefixes", "_suffixes")

    def __init__(
        self,
        virtual_hosts: Sequence[proxy.VirtualHost],
        value: Callable[[proxy.HTTPRoute], T],
    ) -> None:
        """`value(route)` is called once per distinct route, so hosts sharing a route share it.
        A regex Python cannot compile is logged and never matches (Envoy refuses the config)."""
        values: dict[int, tuple[Matcher, T]] = {}
        patterns: dict[str, re.Pattern[str]] = {}

        def compile_regex(pattern: str) -> re.Pattern[str]:
            if pattern not in patterns:
                try:
                    patterns[pattern] = re.compile(pattern)
                except re.error as err:
                    logger.error("regex %r does not compile (%s); it never matches", pattern, err)
                    patterns[pattern] = NEVER
            return patterns[pattern]

        def entry_of(r: proxy.HTTPRoute) -> tuple[Matcher, T]:
            if id(r) not in values:
                values[id(r)] = (Matcher(r.match, compile_regex), value(r))
            return values[id(r)]

        self._exact: dict[str, Entries[T]] = {}
        suffixes: list[tuple[str, Entries[T]]] = []
        prefixes: list[tuple[str, Entries[T]]] = []
        self._default: Entries[T] = ()
        for vh in virtual_hosts:
            entries = tuple(entry_of(r) for r in vh.routes)
            for domain in vh.domains:
                host = domain.lower().rstrip(".")
                if host == WILDCARD:
                    self._default = entries
                elif host.startswith(WILDCARD):
                    suffixes.append((host[1:], entries))
                elif host.endswith(WILDCARD):
                    prefixes.append((host[:-1], entries))
                else:
                    self._exact[host] = entries
        self._suffixes = sorted(suffixes, key=lambda s: -len(s[0]))
        self._prefixes = sorted(prefixes, key=lambda s: -len(s[0]))

    def match(
        self, host: str, target: str, method: bytes = b"GET", headers: Headers = ()
    ) -> T | None:
        """`host` lower-case without port; `target` the request target (path and query). None
        when no route of the selected host matches."""
        mark = target.find("?")
        path, query = (target, None) if mark < 0 else (target[:mark], target[mark + 1 :])
        for matcher, value in self.virtual_host(host):
            if matcher.holds(path, query, method, headers):
                return value
        return None

    def virtual_host(self, host: str) -> Entries[T]:
        exact = self._exact.get(host)
        if exact is not None:
            return exact
        for suffix, routes in self._suffixes:
            if len(host) > len(suffix) and host.endswith(suffix):
                return routes
        for prefix, routes in self._prefixes:
            if len(host) > len(prefix) and host.startswith(prefix):
                return routes
        return self._default
