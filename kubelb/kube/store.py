"""An in-memory cache of raw objects of one kind, keyed by `ObjectKey`, with named indexes.

Informers write it (`upsert`, `delete`, `replace`); reconcilers read it through the `Reader`
protocol (get, list, keys, by_index). Objects are shared, not copied: never modify one you read
(`copy.deepcopy` it first). An indexer maps an object to the index values it is filed under;
`label_index` and `owner_index` build the common ones.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Protocol

from kubelb.kube import objects

logger = logging.getLogger(__name__)

Indexer = Callable[[objects.RawObject], Iterable[str]]


class Reader(Protocol):
    """Read-only view of a store: what reconcilers get."""

    def get(self, key: objects.ObjectKey) -> objects.RawObject | None: ...

    def keys(self) -> list[objects.ObjectKey]: ...

    def list(self, namespace: str | None = None) -> list[objects.RawObject]: ...

    def by_index(self, index: str, value: str) -> builtins.list[objects.RawObject]: ...

    def __len__(self) -> int: ...

    def __contains__(self, key: object) -> bool: ...

    def __iter__(self) -> Iterator[objects.ObjectKey]: ...


class Store:
    """The cache. `indexers` may also be added later with `add_indexer`."""

    def __init__(self, indexers: Mapping[str, Indexer] | None = None) -> None:
        self._objects: dict[objects.ObjectKey, objects.RawObject] = {}
        self._indexers: dict[str, Indexer] = {}
        # index name -> value -> keys; and the values each key is filed under, for removal.
        self._indexes: dict[str, dict[str, set[objects.ObjectKey]]] = {}
        self._filed: dict[str, dict[objects.ObjectKey, tuple[str, ...]]] = {}
        for name, indexer in (indexers or {}).items():
            self.add_indexer(name, indexer)

    # --- reading ---
    def get(self, key: objects.ObjectKey) -> objects.RawObject | None:
        return self._objects.get(key)

    def keys(self) -> builtins.list[objects.ObjectKey]:
        return list(self._objects)

    def list(self, namespace: str | None = None) -> list[objects.RawObject]:
        if namespace is None:
            return list(self._objects.values())
        return [obj for key, obj in self._objects.items() if key.namespace == namespace]

    def by_index(self, index: str, value: str) -> builtins.list[objects.RawObject]:
        if index not in self._indexers:
            raise KeyError(f"no index named {index!r}")
        return [self._objects[k] for k in self._indexes[index].get(value, ())]

    def __len__(self) -> int:
        return len(self._objects)

    def __contains__(self, key: object) -> bool:
        return key in self._objects

    def __iter__(self) -> Iterator[objects.ObjectKey]:
        """The keys, as a snapshot (safe while the store changes)."""
        return iter(list(self._objects))

    # --- writing (informers) ---
    def add_indexer(self, name: str, indexer: Indexer) -> None:
        if name in self._indexers:
            raise ValueError(f"index {name!r} exists")
        self._indexers[name] = indexer
        self._indexes[name] = {}
        self._filed[name] = {}
        for key, obj in self._objects.items():
            self._file(name, key, obj)

    def upsert(self, obj: objects.RawObject) -> objects.RawObject | None:
        """Store `obj`; return the object it replaced, if any."""
        key = objects.key_of(obj)
        old = self._objects.get(key)
        if old is not None:
            self._unfile(key)
        self._objects[key] = obj
        for name in self._indexers:
            self._file(name, key, obj)
        return old

    def delete(self, key: objects.ObjectKey) -> objects.RawObject | None:
        """Remove `key`; return the object removed, if any."""
        old = self._objects.pop(key, None)
        if old is not None:
            self._unfile(key)
        return old

    def replace(
        self, items: Iterable[objects.RawObject]
    ) -> builtins.list[tuple[objects.RawObject | None, objects.RawObject | None]]:
        """Make the content exactly `items` (after a relist). Returns the changes as
        (old, new) pairs: (None, obj) added, (old, obj) changed resourceVersion, (old, None)
        vanished."""
        changes: builtins.list[tuple[objects.RawObject | None, objects.RawObject | None]] = []
        seen: set[objects.ObjectKey] = set()
        for obj in items:
            key = objects.key_of(obj)
            seen.add(key)
            old = self.upsert(obj)
            if old is None:
                changes.append((None, obj))
            elif objects.resource_version(old) != objects.resource_version(obj):
                changes.append((old, obj))
        vanished = [k for k in self._objects if k not in seen]
        changes.extend((self.delete(key), None) for key in vanished)
        return changes

    def _file(self, name: str, key: objects.ObjectKey, obj: objects.RawObject) -> None:
        try:
            values = tuple(dict.fromkeys(self._indexers[name](obj)))
        except Exception:
            logger.exception("indexer %s failed on %s; object not indexed", name, key)
            values = ()
        self._filed[name][key] = values
        index = self._indexes[name]
        for value in values:
            index.setdefault(value, set()).add(key)

    def _unfile(self, key: objects.ObjectKey) -> None:
        for name, filed in self._filed.items():
            index = self._indexes[name]
            for value in filed.pop(key, ()):
                keys = index.get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del index[value]


def label_index(label: str) -> Indexer:
    """File objects under the value of label `label` (objects without it are not filed)."""

    def indexer(obj: objects.RawObject) -> Iterable[str]:
        value = objects.labels(obj).get(label)
        return (value,) if value is not None else ()

    return indexer


def owner_index(kind: str | None = None) -> Indexer:
    """File objects under the uid of each owner (of `kind`, when given)."""

    def indexer(obj: objects.RawObject) -> Iterable[str]:
        return [str(ref.get("uid")) for ref in objects.owner_references(obj)
                if ref.get("uid") and (kind is None or ref.get("kind") == kind)]  # fmt: skip

    return indexer
