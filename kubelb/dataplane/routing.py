"""HTTP route selection with Envoy's semantics, so one IR routes the same on both data planes.

Input: an HTTP listener's IR routes, each paired with whatever the caller routes to (a picker).
Output: a `RouteTable` answering `match(host, path)`. As in `kubelb.xds.translate.http`, the
routes form virtual hosts: one per hostname (holding its routes plus the hostname-less ones as a
fallback) and `*` for the hostname-less routes (plus any naming `*`). A request's host selects
exactly one virtual host the way Envoy does: an exact name, else the longest matching `*suffix`,
else the longest matching `prefix*`, else `*`; a wildcard stands for at least one character.
Within the virtual host, longer path prefixes are tried first, and at equal length a route naming
hostnames beats a fallback. Path prefixes match whole segments (`http_messages.path_matches`):
see docs/dataplane-differences.md for how that differs from Envoy's plain string prefix.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Generic, TypeVar

from kubelb.dataplane import http_messages
from kubelb.ir import proxy

logger = logging.getLogger(__name__)

T = TypeVar("T")

WILDCARD = "*"


class RouteTable(Generic[T]):
    __slots__ = ("_default", "_exact", "_prefixes", "_suffixes")

    def __init__(self, routes: Sequence[tuple[proxy.HTTPRoute, T]]) -> None:
        catch_all = [(r, v) for r, v in routes if not r.hostnames]
        by_host: dict[str, list[tuple[proxy.HTTPRoute, T]]] = {}
        for r, v in routes:
            for host in dict.fromkeys(h.lower().rstrip(".") for h in r.hostnames):
                by_host.setdefault(host, []).append((r, v))
        self._exact: dict[str, tuple[tuple[proxy.HTTPRoute, T], ...]] = {}
        suffixes: list[tuple[str, tuple[tuple[proxy.HTTPRoute, T], ...]]] = []
        prefixes: list[tuple[str, tuple[tuple[proxy.HTTPRoute, T], ...]]] = []
        for host, own in by_host.items():
            ordered = _ordered([*own, *(c for c in catch_all if c not in own)])
            if host == WILDCARD:
                continue
            if host.startswith(WILDCARD):
                suffixes.append((host[1:], ordered))
            elif host.endswith(WILDCARD):
                prefixes.append((host[:-1], ordered))
            else:
                self._exact[host] = ordered
        self._suffixes = sorted(suffixes, key=lambda s: -len(s[0]))
        self._prefixes = sorted(prefixes, key=lambda s: -len(s[0]))
        self._default = _ordered([*by_host.get(WILDCARD, ()), *catch_all])

    def match(self, host: str, path: str) -> T | None:
        """`host` lower-case without port. None when no route of the selected host matches."""
        for r, value in self.virtual_host(host):
            if http_messages.path_matches(r.path_prefix, path):
                return value
        return None

    def virtual_host(self, host: str) -> tuple[tuple[proxy.HTTPRoute, T], ...]:
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


def _ordered(
    routes: Sequence[tuple[proxy.HTTPRoute, T]],
) -> tuple[tuple[proxy.HTTPRoute, T], ...]:
    return tuple(
        sorted(
            routes,
            key=lambda rv: (
                -len(rv[0].path_prefix),
                not rv[0].hostnames,
                rv[0].path_prefix,
                rv[0].name,
            ),
        )
    )
