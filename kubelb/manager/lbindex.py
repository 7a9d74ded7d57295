"""The live LoadBalancers of each namespace, kept up to date from the informer's changes.

Input: every LoadBalancer the informer stores or deletes (`update(key, raw)`), and a parser from
a raw object to its model (None when it does not validate). Output, per namespace, without
listing or parsing the store: the live LoadBalancers (valid, not being deleted) sorted by name,
their number, the listener ports they hold, and which LoadBalancer port recorded each listener
port in its status (the allocator's fast path: a LoadBalancer whose recorded ports nobody else
records keeps them, see `LoadBalancerIndex.keeps_recorded`).

Why: the reconcilers asked these questions on every reconcile by listing and parsing the whole
namespace, which made a burst of n creates cost O(n²).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from kubelb.api import loadbalancer as api_lb, ports as api_ports
from kubelb.kube import objects
from kubelb.manager import lbservice, ports

logger = logging.getLogger(__name__)

Parse = Callable[[objects.RawObject], api_lb.LoadBalancer | None]


class _Namespace:
    __slots__ = ("_versions", "models", "owners", "recorded", "sorted_models", "version", "wanted")

    def __init__(self, versions: Iterator[int]) -> None:
        # A new index-wide number on every change (never reused, even by a namespace emptied
        # and filled again): what the allocator's memo is keyed on.
        self._versions = versions
        self.version = next(versions)
        self.models: dict[str, api_lb.LoadBalancer] = {}
        self.wanted: dict[str, tuple[api_ports.PortKey, ...]] = {}
        # Only the recorded ports of keys the LoadBalancer still wants (what the allocator reads).
        self.recorded: dict[str, dict[api_ports.PortKey, int]] = {}
        self.owners: dict[int, set[tuple[str, api_ports.PortKey]]] = {}
        self.sorted_models: list[api_lb.LoadBalancer] | None = None

    def add(self, name: str, lb: api_lb.LoadBalancer) -> None:
        wanted = tuple(sorted({api_ports.port_key(p) for p in lb.spec.ports}))
        recorded = {k: p for k, p in lbservice.recorded_ports(lb).items() if k in wanted}
        self.models[name], self.wanted[name], self.recorded[name] = lb, wanted, recorded
        for key, port in recorded.items():
            self.owners.setdefault(port, set()).add((name, key))
        self.sorted_models = None
        self.version = next(self._versions)

    def remove(self, name: str) -> None:
        if self.models.pop(name, None) is None:
            return
        del self.wanted[name]
        for key, port in self.recorded.pop(name).items():
            holders = self.owners[port]
            holders.discard((name, key))
            if not holders:
                del self.owners[port]
        self.sorted_models = None
        self.version = next(self._versions)


@dataclass(frozen=True, slots=True)
class AllocationInputs:
    """A namespace's LoadBalancers and their wanted and recorded ports at one index `version`
    (read-only views: valid until the index changes)."""

    namespace: str
    version: int
    models: Mapping[str, api_lb.LoadBalancer]
    wanted: Mapping[str, tuple[api_ports.PortKey, ...]]
    recorded: Mapping[str, Mapping[api_ports.PortKey, int]]


class LoadBalancerIndex:
    def __init__(self, parse: Parse) -> None:
        self._parse = parse
        self._namespaces: dict[str, _Namespace] = {}
        self._versions = itertools.count()

    def update(self, key: objects.ObjectKey, raw: objects.RawObject | None) -> None:
        """The store now holds `raw` under `key` (None: deleted)."""
        entry = self._namespaces.get(key.namespace)
        if entry is not None:
            entry.remove(key.name)
        model = None
        if raw is not None and not objects.is_deleting(raw):
            model = self._parse(raw)
        if model is not None:
            if entry is None:
                entry = self._namespaces[key.namespace] = _Namespace(self._versions)
            entry.add(key.name, model)
        elif entry is not None and not entry.models:
            del self._namespaces[key.namespace]

    def live(self, namespace: str) -> list[api_lb.LoadBalancer]:
        """The valid LoadBalancers of the namespace that are not being deleted, by name."""
        entry = self._namespaces.get(namespace)
        if entry is None:
            return []
        if entry.sorted_models is None:
            entry.sorted_models = [entry.models[n] for n in sorted(entry.models)]
        return list(entry.sorted_models)

    def count(self, namespace: str) -> int:
        entry = self._namespaces.get(namespace)
        return len(entry.models) if entry is not None else 0

    def held(self, namespace: str) -> tuple[int, int]:
        """(listener ports, LoadBalancers holding at least one): what the allocator gives out
        once every live LoadBalancer is allocated."""
        entry = self._namespaces.get(namespace)
        if entry is None:
            return (0, 0)
        wanted = entry.wanted.values()
        return (sum(len(w) for w in wanted), sum(1 for w in wanted if w))

    def allocation_inputs(self, namespace: str) -> AllocationInputs:
        """What `ports.allocate` needs for the whole namespace, as the index holds it."""
        entry = self._namespaces.get(namespace)
        if entry is None:
            return AllocationInputs(namespace, -1, {}, {}, {})
        return AllocationInputs(namespace, entry.version, entry.models, entry.wanted,
                                entry.recorded)  # fmt: skip

    def keeps_recorded(self, lb: api_lb.LoadBalancer) -> Mapping[api_ports.PortKey, int] | None:
        """The LoadBalancer's listener ports when `ports.allocate` over the whole namespace
        would return exactly the ones its status records: every port it wants is recorded,
        valid, and recorded by no other LoadBalancer port. None: allocate for real."""
        entry = self._namespaces.get(lb.namespace)
        name = lb.name
        if entry is None or entry.models.get(name) is not lb:
            return None  # not the version the index holds
        wanted, recorded = entry.wanted[name], entry.recorded[name]
        if len(recorded) != len(wanted):
            return None
        for key, port in recorded.items():
            if not ports.RANGE_START <= port < ports.RANGE_END or port in ports.RESERVED:
                return None
            if entry.owners[port] != {(name, key)}:
                return None
        return dict(recorded)
