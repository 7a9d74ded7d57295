"""Informers: keep a `Store` of one kind in step with the API server and report each change.

Input: a `Client`, a `Resource` and optional namespace/selectors. Output: the store (a `Reader`),
a `synced` event set after the first list, and `Change`s (add, update, delete with old and new
object) passed to handlers, which must be quick and not block (controllers only enqueue keys).

Cycle: list (paged) -> watch from the list's resourceVersion with bookmarks and a server-side
timeout of `watch_timeout`..2x seconds -> on a normal end, watch again from the last seen
resourceVersion (bookmarks advance it) -> on 410 Gone, list again and replace the store content,
emitting deletes for objects that vanished meanwhile and updates for those that changed. Other
errors wait a capped exponential backoff and retry forever. `CancelledError` always propagates.

`Informers` shares one informer per (resource, namespace, selectors) among controllers and runs
them all; informers requested after it started are started at once.

The store keeps a `slim` copy of each object: without `metadata.managedFields`, and with its keys
and short strings interned, which halves what a manager of 1,000 LoadBalancers caches.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from kubelb.kube import errors, interface, objects, resources, store as stores
from kubelb.util import backoff

logger = logging.getLogger(__name__)

DEFAULT_BACKOFF = backoff.Backoff(initial=0.5, cap=30.0, jitter=0.2)

# Strings up to this length are interned: names, kinds, label values, protocols, timestamps, which
# repeat across the objects of a kind. Longer ones (certificates, messages) are mostly unique.
_INTERN_MAX = 40
_intern = sys.intern


def slim(obj: objects.RawObject) -> objects.RawObject:
    """The copy of `obj` an informer stores: `metadata.managedFields` left out (the API server's
    record of who set which field, about half of a LoadBalancer or a Service; nothing here reads
    it, and a write without it leaves the server's as they are), dict keys and short strings
    interned, so the objects of a kind share them. `obj` itself is not changed."""
    meta = obj.get("metadata")
    if isinstance(meta, dict) and "managedFields" in meta:
        obj = {**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}
    out: objects.RawObject = _interned(obj)
    return out


def _interned(value: Any) -> Any:
    kind = type(value)
    if kind is str:
        return _intern(value) if len(value) <= _INTERN_MAX else value
    if kind is dict:
        return {_intern(k): _interned(v) for k, v in value.items()}
    if kind is list:
        return [_interned(v) for v in value]
    return value


class ChangeType(StrEnum):
    ADD = "add"
    UPDATE = "update"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class Change:
    """One change seen by an informer: `old` is None for ADD, `new` is None for DELETE (then
    `old` is the last state known)."""

    type: ChangeType
    old: objects.RawObject | None
    new: objects.RawObject | None

    @property
    def obj(self) -> objects.RawObject:
        """The newest state known: `new`, or `old` for a delete."""
        result = self.new if self.new is not None else self.old
        assert result is not None
        return result


Handler = Callable[[Change], None]


class Informer:
    def __init__(
        self,
        kube: interface.KubeApi,
        resource: resources.Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        indexers: Mapping[str, stores.Indexer] | None = None,
        watch_timeout: int = 300,
        retry: backoff.Backoff = DEFAULT_BACKOFF,
        page_size: int = 500,
    ) -> None:
        self.resource = resource
        self.namespace = namespace
        self._client = kube
        self._label_selector = label_selector
        self._field_selector = field_selector
        self._watch_timeout = watch_timeout
        self._retry = retry
        self._page_size = page_size
        self._store = stores.Store(indexers)
        self._handlers: list[Handler] = []
        self._failures = 0
        self.synced = asyncio.Event()
        self.resource_version = ""  # last seen; "" means the next cycle lists
        self.lists = 0  # completed lists (the first, plus relists after 410 Gone)
        self.watches = 0  # watch streams opened
        self.errors = 0  # list/watch failures retried with backoff

    def __repr__(self) -> str:
        where = f" in {self.namespace}" if self.namespace else ""
        return f"<Informer {self.resource}{where}>"

    @property
    def store(self) -> stores.Reader:
        return self._store

    def add_indexer(self, name: str, indexer: stores.Indexer) -> None:
        """Add an index; a name already present is kept (one name, one meaning per informer)."""
        try:
            self._store.add_indexer(name, indexer)
        except ValueError:
            logger.debug("%r already has index %s", self, name)

    def add_handler(self, handler: Handler) -> None:
        """Subscribe; when already synced, the current objects are replayed as adds first."""
        self._handlers.append(handler)
        if self.synced.is_set():
            for obj in self._store.list():
                _call(handler, Change(ChangeType.ADD, None, obj), self)

    async def wait_synced(self) -> None:
        await self.synced.wait()

    async def run(self) -> None:
        """List and watch until cancelled."""
        while True:
            try:
                if not self.resource_version:
                    await self._list()
                await self._watch()
            except errors.GoneError as exc:
                logger.info("%r: %s; listing again", self, exc.message or exc.reason)
                self.resource_version = ""
            except errors.ApiError as exc:
                await self._pause(f"{exc}")
            except Exception:
                # A bug or an unexpected answer: keep the stack, and keep the informer alive.
                logger.exception("%r: unexpected error", self)
                await self._pause("unexpected error")

    async def _pause(self, why: str) -> None:
        delay = self._retry.delay(self._failures)
        self._failures += 1
        self.errors += 1
        logger.warning("%r: %s; retrying in %.1fs", self, why, delay)
        await asyncio.sleep(delay)

    async def _list(self) -> None:
        listed = await self._client.list(
            self.resource, namespace=self.namespace, label_selector=self._label_selector,
            field_selector=self._field_selector, page_size=self._page_size,
        )  # fmt: skip
        changes = self._store.replace(slim(obj) for obj in listed.items)
        self.resource_version = listed.resource_version
        self.lists += 1
        self._failures = 0
        logger.debug("%r: listed %d objects at %s", self, len(listed.items), self.resource_version)
        for old, new in changes:
            if old is None:
                self._emit(Change(ChangeType.ADD, None, new))
            elif new is None:
                self._emit(Change(ChangeType.DELETE, old, None))
            else:
                self._emit(Change(ChangeType.UPDATE, old, new))
        self.synced.set()

    async def _watch(self) -> None:
        timeout = random.randint(self._watch_timeout, 2 * self._watch_timeout)
        stream = self._client.watch(
            self.resource, namespace=self.namespace, resource_version=self.resource_version,
            label_selector=self._label_selector, field_selector=self._field_selector,
            timeout_seconds=timeout,
        )  # fmt: skip
        async with stream:
            self.watches += 1
            self._failures = 0
            async for event in stream:
                self._apply(event)

    def _apply(self, event: objects.WatchEvent) -> None:
        obj = event["object"]
        version = objects.resource_version(obj)
        kind = event["type"]
        if kind == "BOOKMARK":
            pass
        elif kind == "DELETED":
            old = self._store.delete(objects.key_of(obj))
            self._emit(Change(ChangeType.DELETE, old if old is not None else slim(obj), None))
        else:
            obj = slim(obj)
            old = self._store.upsert(obj)
            change_type = ChangeType.ADD if old is None else ChangeType.UPDATE
            self._emit(Change(change_type, old, obj))
        if version:
            self.resource_version = version

    def _emit(self, change: Change) -> None:
        for handler in self._handlers:
            _call(handler, change, self)


def _call(handler: Handler, change: Change, informer: Informer) -> None:
    try:
        handler(change)
    except Exception:
        logger.exception("%r: handler %r failed on %s %s", informer, handler, change.type,
                         objects.key_of(change.obj))  # fmt: skip


class Informers:
    """One shared informer per (resource, namespace, selectors); `run()` runs them all."""

    def __init__(self, kube: interface.KubeApi, *, watch_timeout: int = 300) -> None:
        self.client = kube
        self._watch_timeout = watch_timeout
        self._informers: dict[tuple[object, ...], Informer] = {}
        self._group: asyncio.TaskGroup | None = None

    def get(
        self,
        resource: resources.Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> Informer:
        key = (resource, namespace, label_selector, field_selector)
        informer = self._informers.get(key)
        if informer is None:
            informer = Informer(
                self.client, resource, namespace=namespace, label_selector=label_selector,
                field_selector=field_selector, watch_timeout=self._watch_timeout,
            )  # fmt: skip
            self._informers[key] = informer
            if self._group is not None:
                self._group.create_task(informer.run(), name=repr(informer))
        return informer

    def __iter__(self) -> Iterator[Informer]:
        return iter(list(self._informers.values()))

    async def wait_synced(self) -> None:
        await asyncio.gather(*(i.wait_synced() for i in self._informers.values()))

    async def run(self) -> None:
        """Run every informer (present and future) until cancelled."""
        if self._group is not None:
            raise RuntimeError("Informers.run() is already running")
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                for informer in self._informers.values():
                    group.create_task(informer.run(), name=repr(informer))
                await asyncio.Event().wait()
        finally:
            self._group = None
