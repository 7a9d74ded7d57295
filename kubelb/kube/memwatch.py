"""A watch on the in-memory API server (`memory`): `interface.EventStream` over a queue.

The server offers each committed change to every open watch at once (`memstore.Subscriber`);
the watch keeps the ones of its kind, turns them into the events its namespace and selectors
see (an object moving into or out of the selection is ADDED or DELETED), and ends after
`timeout_seconds` with a BOOKMARK, as kube-apiserver does. An idle watch gets a BOOKMARK every
`bookmark_interval`; a watch without a resourceVersion starts with an ADDED per object and a
BOOKMARK marked `k8s.io/initial-events-end`.
"""

from __future__ import annotations

import asyncio
import enum
from types import TracebackType
from typing import Any, Self

from kubelb.kube import errors, memstore, objects, patching, resources, selectors


class _Mark(enum.Enum):
    INITIAL_END = "initial-events-end"


_INITIAL_END = _Mark.INITIAL_END


class MemoryWatch:
    """One watch (`interface.EventStream`); `MemoryClient.watch` makes them."""

    def __init__(
        self,
        server: memstore.Server,
        resource: resources.Resource,
        *,
        namespace: str | None,
        resource_version: str,
        label_selector: str | None,
        field_selector: str | None,
        timeout_seconds: int,
        allow_bookmarks: bool,
    ) -> None:
        self.resource = resource
        self.rid: memstore.Rid = (resource.group, resource.plural)
        self._server = server
        self._namespace = (namespace or "") if resource.namespaced else ""
        self._since = resource_version
        self._label_selector, self._field_selector = label_selector, field_selector
        self._labels = self._fields = selectors.EVERYTHING
        self._timeout = timeout_seconds
        self._bookmarks = allow_bookmarks
        self._queue: asyncio.Queue[memstore.Change | _Mark | None] = asyncio.Queue()
        self._delivered = resource_version  # version of the last change taken off the queue
        self._error: errors.ApiError | None = None
        self._deadline = 0.0
        self._next_bookmark = 0.0
        self._ended = False
        self._entered = False

    async def __aenter__(self) -> Self:
        self._labels, self._fields = memstore.parse_selectors(
            self._label_selector, self._field_selector
        )
        loop = asyncio.get_running_loop()
        self._deadline = loop.time() + self._timeout
        self._next_bookmark = loop.time() + self._server.bookmark_interval
        if self._since in ("", "0"):
            self._delivered = str(self._server.version)  # the initial events' version
        opened = self._server.subscribe(self, self.rid, self._since)
        if isinstance(opened, errors.ApiError):
            self._error = opened
        else:
            for change in opened:
                self.offer(change)
            if self._since == "" and self._bookmarks:
                # As the real server: the initial ADDED events end with a marked BOOKMARK.
                self._queue.put_nowait(_INITIAL_END)
        self._entered = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.unsubscribe(self)
        self._entered = False

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> objects.WatchEvent:
        if not self._entered:
            raise RuntimeError("use `async with client.watch(...)` before iterating")
        if self._error is not None:
            error, self._error = self._error, None
            self._ended = True
            raise error
        loop = asyncio.get_running_loop()
        while True:
            if self._ended and self._queue.empty():
                raise StopAsyncIteration
            wake = min(self._deadline, self._next_bookmark) if self._bookmarks else self._deadline
            try:
                async with asyncio.timeout_at(wake):
                    change = await self._queue.get()
            except TimeoutError:
                now = loop.time()
                if now >= self._deadline:
                    self._ended = True
                if self._bookmarks:
                    self._next_bookmark = now + self._server.bookmark_interval
                    return self._bookmark()
                continue
            if change is None:
                continue  # `end()`: the next round stops
            if change is _INITIAL_END:
                return self._bookmark({"k8s.io/initial-events-end": "true"})
            self._delivered = str(change.version)
            event = self._event(change)
            if event is not None:
                return event

    def offer(self, change: memstore.Change) -> None:
        if change.rid == self.rid and not self._ended:
            self._queue.put_nowait(change)

    def end(self) -> None:
        self._ended = True
        self._queue.put_nowait(None)

    def _selected(self, obj: objects.RawObject | None) -> bool:
        if obj is None:
            return False
        if self._namespace and objects.namespace(obj) != self._namespace:
            return False
        return self._labels.matches(obj) and self._fields.matches(obj)

    def _event(self, change: memstore.Change) -> objects.WatchEvent | None:
        now, before = self._selected(change.new), self._selected(change.old)
        kind: memstore.ChangeType
        if change.type == "DELETED":
            if not now:
                return None
            kind = "DELETED"
        elif now:
            kind = "MODIFIED" if before and change.type == "MODIFIED" else "ADDED"
        elif before:
            kind = "DELETED"
        else:
            return None
        return {"type": kind, "object": patching.clone(change.new)}

    def _bookmark(self, annotations: dict[str, str] | None = None) -> objects.WatchEvent:
        # Every change was queued when it was made, and whatever is still queued is newer
        # than what was delivered: resuming from the version of the last delivered change
        # (or the watch's start) is safe. Bookmarks sent at an empty queue use the newest.
        version = str(self._server.version) if self._queue.empty() else self._delivered
        meta: dict[str, Any] = {"resourceVersion": version}
        if annotations:
            meta["annotations"] = annotations
        obj = {"apiVersion": self.resource.api_version, "kind": self.resource.kind,
               "metadata": meta}  # fmt: skip
        return {"type": "BOOKMARK", "object": obj}
