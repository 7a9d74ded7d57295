"""Endpoint choice: round-robin over healthy targets, or Maglev consistent hashing on the client IP.

Input: the clusters behind a listener or route (`upstreams.ClusterState`, each with `targets` and a
`version` bumped on any endpoint or health change). Output: `Picker.pick(client_ip)` returns a
`Target` or None when nothing can take traffic. Choices are flat over the targets of all clusters
(each endpoint weighs the same). Targets still waiting for their first health check are used only
when no target is known healthy, so a fresh listener serves at once.

Maglev (Eisenbud et al., NSDI 2016) keeps most clients on the same target when another target is
added or removed; hashes are stable across processes so every worker agrees.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import logging
import zlib
from collections.abc import Sequence
from typing import Generic, Protocol, TypeVar

logger = logging.getLogger(__name__)

# One prime table size for every target count: Maglev only keeps clients in place when the size
# stays the same. Envoy uses 65537; 16381 builds four times faster in Python and stays within 1%
# of even load up to about 160 targets.
TABLE_SIZE = 16381


class Target(Protocol):
    @property
    def key(self) -> str: ...
    @property
    def available(self) -> bool: ...
    @property
    def pending(self) -> bool: ...


T = TypeVar("T", bound=Target)


class Versioned(Protocol[T]):  # type: ignore[misc]
    @property
    def version(self) -> int: ...
    @property
    def targets(self) -> Sequence[T]: ...


def stable_hash(text: str) -> int:
    return zlib.crc32(text.encode())


def maglev_table(keys: Sequence[str]) -> list[int]:
    """Index into `keys` for every slot of a Maglev lookup table."""
    n = len(keys)
    size = TABLE_SIZE
    offsets: list[int] = []
    skips: list[int] = []
    for key in keys:
        digest = hashlib.blake2b(key.encode(), digest_size=16).digest()
        offsets.append(int.from_bytes(digest[:8], "little") % size)
        skips.append(int.from_bytes(digest[8:], "little") % (size - 1) + 1)
    table = [-1] * size
    nexts = [0] * n
    filled = 0
    while True:
        for i in range(n):
            slot = (offsets[i] + nexts[i] * skips[i]) % size
            while table[slot] >= 0:
                nexts[i] += 1
                slot = (offsets[i] + nexts[i] * skips[i]) % size
            table[slot] = i
            nexts[i] += 1
            filled += 1
            if filled == size:
                return table


class Picker(Generic[T]):
    """Chooses a target among the current targets of `clusters`; cheap when nothing changed."""

    __slots__ = ("_candidates", "_rr", "_table", "_versions", "clusters", "persistent")

    def __init__(self, clusters: Sequence[Versioned[T]], *, persistent: bool) -> None:
        self.clusters = tuple(clusters)
        self.persistent = persistent
        self._versions: tuple[int, ...] = ()
        self._candidates: list[T] = []
        self._table: list[int] = []
        self._rr = 0

    def candidates(self) -> list[T]:
        versions = tuple(c.version for c in self.clusters)
        if versions != self._versions:
            self._versions = versions
            targets = [t for c in self.clusters for t in c.targets]
            healthy = [t for t in targets if t.available]
            if not healthy:
                healthy = [t for t in targets if t.pending]
            healthy.sort(key=lambda t: t.key)
            self._candidates = healthy
            self._table = (
                maglev_table([t.key for t in healthy]) if self.persistent and healthy else []
            )
        return self._candidates

    def pick(self, client_ip: str = "", exclude: T | None = None) -> T | None:
        candidates = self.candidates()
        if not candidates:
            return None
        if self.persistent and client_ip and exclude is None:
            table = self._table
            return candidates[table[stable_hash(client_ip) % len(table)]]
        for _ in range(len(candidates)):
            self._rr = (self._rr + 1) % len(candidates)
            target = candidates[self._rr]
            if target is not exclude:
                return target
        return None


class Weighted(Generic[T]):
    """A route's backends: one picker per backend cluster, chosen by weight, then the picker
    chooses the endpoint within it. Smooth weighted round robin (nginx's), so every window of
    `sum(weights)` requests follows the weights exactly; with `persistent`, a hash of the client
    IP chooses the backend, so a client stays on one backend as on one endpoint. Weight 0 is
    never chosen."""

    __slots__ = ("_current", "_edges", "_total", "persistent", "pickers", "weights")

    def __init__(self, backends: Sequence[tuple[Picker[T], int]], *, persistent: bool) -> None:
        chosen = [(p, w) for p, w in backends if w > 0]
        self.pickers = tuple(p for p, _ in chosen)
        self.weights = tuple(w for _, w in chosen)
        self.persistent = persistent
        self._total = sum(self.weights)
        self._current = [0] * len(chosen)
        # Cumulative weights: the backend of a hash slot is the first edge above it.
        self._edges = list(itertools.accumulate(self.weights))

    def pick(self, client_ip: str = "") -> T | None:
        pickers = self.pickers
        if len(pickers) == 1:
            return pickers[0].pick(client_ip)
        if not pickers:
            return None
        return self.backend(client_ip).pick(client_ip)

    def backend(self, client_ip: str = "") -> Picker[T]:
        if self.persistent and client_ip:
            slot = stable_hash("backend:" + client_ip) % self._total
            return self.pickers[bisect.bisect_right(self._edges, slot)]
        current = self._current
        best = 0
        for i, w in enumerate(self.weights):
            current[i] += w
            if current[i] > current[best]:
                best = i
        current[best] -= self._total
        return self.pickers[best]
