"""HTTP route selection with Envoy's semantics, so one IR routes the same on both data planes.

Input: an HTTP listener's IR virtual hosts, each route paired with whatever the caller routes to
(a picker). Output: a `RouteTable` answering `match(host, path)`. A request's host selects
exactly one virtual host the way Envoy does: an exact domain, else the longest matching
`*suffix`, else the longest matching `prefix*`, else `*`; a wildcard stands for at least one
character. Within the virtual host the first route (in IR order) whose match holds answers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from kubelb.dataplane import http_messages
from kubelb.ir import proxy

logger = logging.getLogger(__name__)

T = TypeVar("T")

WILDCARD = proxy.WILDCARD_HOST

Entries = tuple[tuple[proxy.HTTPRoute, T], ...]


class RouteTable(Generic[T]):
    __slots__ = ("_default", "_exact", "_prefixes", "_suffixes")

    def __init__(
        self,
        virtual_hosts: Sequence[proxy.VirtualHost],
        value: Callable[[proxy.HTTPRoute], T],
    ) -> None:
        """`value(route)` is called once per distinct route, so hosts sharing a route share it."""
        values: dict[int, T] = {}

        def value_of(r: proxy.HTTPRoute) -> T:
            if id(r) not in values:
                values[id(r)] = value(r)
            return values[id(r)]

        self._exact: dict[str, Entries[T]] = {}
        suffixes: list[tuple[str, Entries[T]]] = []
        prefixes: list[tuple[str, Entries[T]]] = []
        self._default: Entries[T] = ()
        for vh in virtual_hosts:
            entries = tuple((r, value_of(r)) for r in vh.routes)
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

    def match(self, host: str, path: str) -> T | None:
        """`host` lower-case without port. None when no route of the selected host matches."""
        for r, value in self.virtual_host(host):
            if _path_holds(r.match.path, path):
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


def _path_holds(m: proxy.PathMatch, path: str) -> bool:
    if m.kind is proxy.PathMatchKind.PREFIX:
        return http_messages.path_matches(m.value, path)
    if m.kind is proxy.PathMatchKind.EXACT:
        return path.partition("?")[0] == m.value
    raise NotImplementedError(f"path match {m.kind} is not supported yet")
