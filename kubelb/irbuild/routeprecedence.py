"""Gateway API hostnames and route precedence. Pure.

Hostnames are lower-case; `*.example.com` stands for one or more labels before `.example.com`
(so `a.example.com` and `a.b.example.com`, never `example.com`). A route's hostnames meet its
listener's by `intersect`; a request's host then selects the most specific hostname that covers
it (`covers`, `specificity`), and within it the routes are tried in `match_order`: Exact path,
then regular expressions, then the longest prefix, then a method match, the most header matches,
the most query parameter matches (a GRPCRoute's in `grpc_order`: exact before regular
expressions, then the longest service, the longest method, the most header matches); ties go to
the oldest route, then to its namespace/name, then to rule and match order (the caller's).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

from kubelb.ir import proxy


def normalize(hostname: str) -> str:
    return hostname.lower().rstrip(".")


def is_wildcard(hostname: str) -> bool:
    return hostname.startswith("*.")


def covers(pattern: str, hostname: str) -> bool:
    """Whether every host `hostname` stands for is one `pattern` stands for."""
    if pattern == hostname:
        return True
    if not is_wildcard(pattern):
        return False
    suffix = pattern[1:]  # `.example.com`
    return hostname.endswith(suffix) and len(hostname) > len(suffix)


def covering(hostname: str) -> tuple[str, ...]:
    """Every hostname that covers `hostname`, itself first, then ever shorter wildcards:
    `a.b.example.com` -> itself, `*.b.example.com`, `*.example.com`, `*.com`."""
    labels = hostname.split(".")
    wildcards = ("*." + ".".join(labels[i:]) for i in range(1, len(labels)))
    return tuple(dict.fromkeys((hostname, *wildcards)))


def intersect(listener: str | None, hostnames: Iterable[str]) -> tuple[str, ...] | None:
    """The hostnames a route serves on a listener: () for every host, None when the two have
    no host in common (the route does not attach to that listener)."""
    wanted = tuple(dict.fromkeys(normalize(h) for h in hostnames if h))
    if not listener:
        return wanted
    listener = normalize(listener)
    if not wanted:
        return (listener,)
    out: list[str] = []
    for h in wanted:
        if covers(listener, h):
            out.append(h)
        elif covers(h, listener):
            out.append(listener)
    return tuple(dict.fromkeys(out)) or None


def specificity(hostname: str | None) -> tuple[int, int]:
    """Sort key, most specific first: exact hostnames, longer wildcards, then any host (None)."""
    if hostname is None:
        return (2, 0)
    return (1 if is_wildcard(hostname) else 0, -len(hostname))


class Uncovered(enum.Enum):
    """No candidate covers the hostname (None already means "any host")."""

    UNCOVERED = "uncovered"


UNCOVERED = Uncovered.UNCOVERED


def most_specific(
    candidates: Iterable[str | None], hostname: str
) -> str | Literal[Uncovered.UNCOVERED] | None:
    """The most specific of `candidates` (None: any host) covering `hostname`, UNCOVERED when
    none does. `*` (the catch-all virtual host) is covered by None only."""
    covering = [
        c
        for c in candidates
        if c is None or (hostname != proxy.WILDCARD_HOST and covers(c, hostname))
    ]
    if not covering:
        return UNCOVERED
    return min(covering, key=specificity)


_PATH_ORDER = {
    proxy.PathMatchKind.EXACT: 0,
    proxy.PathMatchKind.REGEX: 1,
    proxy.PathMatchKind.PREFIX: 2,
}


def match_order(match: proxy.RouteMatch) -> tuple[int, int, int, int, int]:
    """Sort key of one match, the one that must be tried first first."""
    return (
        _PATH_ORDER[match.path.kind],
        -len(match.path.value),
        0 if match.method else 1,
        -len(match.headers),
        -len(match.query_params),
    )


def grpc_order(
    path: proxy.PathMatchKind, service: str, method: str, headers: int
) -> tuple[int, int, int, int, int]:
    """Sort key of one GRPCRoute match, shaped like `match_order`'s."""
    return (_PATH_ORDER[path], -len(service), -len(method), -headers, 0)


def shadowed(
    entries: Sequence[tuple[str | None, proxy.HTTPRoute, tuple[Any, ...]]],
    owner: Callable[[tuple[Any, ...]], Any],
) -> list[tuple[tuple[Any, ...], tuple[Any, ...], proxy.RouteMatch]]:
    """Matches of one virtual host that never take a request because another owner's route
    makes the same match on the same route hostname and comes first: (its key, the key of
    the route that takes them, the match). Entries as for `ordered`; `owner(key)` names the
    Route a key belongs to (one Route's own repeated matches are Gateway API's rule order)."""
    first: dict[tuple[str | None, proxy.RouteMatch], tuple[Any, ...]] = {}
    out = []
    for hostname, route, key in sorted(entries, key=lambda e: (specificity(e[0]), e[2])):
        taken = first.setdefault((hostname, route.match), key)
        if owner(taken) != owner(key):
            out.append((key, taken, route.match))
    return out


def ordered(
    entries: Sequence[tuple[str | None, proxy.HTTPRoute, tuple[Any, ...]]],
) -> tuple[proxy.HTTPRoute, ...]:
    """Routes of one virtual host in match order. Each entry is the route's hostname that
    covers the virtual host's domain (None: any host), the route and its key: its match order
    (`match_order`, `grpc_order`) and then the tiebreak (age, namespace/name, rule, match)."""
    ranked = sorted(entries, key=lambda e: (specificity(e[0]), e[2]))
    return tuple(dict.fromkeys(route for _, route, _ in ranked))
