"""Record Kubernetes Events (core/v1) about objects, aggregating repeats instead of spamming.

Input: the object concerned (raw, with apiVersion/kind/metadata), type, reason, message.
Output: Event objects in the object's namespace ("default" for cluster-scoped objects) with
involvedObject, reason, message, type, source component/host, count and first/last timestamps.

The same (object uid, type, reason, message) within `window` seconds updates one Event: the
count grows, and the Event is patched at most every `min_interval` seconds (repeats in between
are counted and written with the next patch), so a Service pending for an hour costs a handful
of writes, not one per reconcile. Recording never raises: a failure is logged and dropped, since
an Event is never worth failing a reconcile for.
"""

from __future__ import annotations

import collections
import logging
import time
from dataclasses import dataclass
from typing import Literal

from kubelb.api import meta
from kubelb.kube import errors, interface, objects, resources

logger = logging.getLogger(__name__)

EventKind = Literal["Normal", "Warning"]
_Key = tuple[str, str, str, str]


@dataclass(slots=True)
class _Series:
    name: str
    namespace: str
    count: int
    first_seen: float  # time.monotonic()
    written_at: float
    written_count: int


class EventRecorder:
    def __init__(
        self,
        kube: interface.KubeApi,
        component: str,
        *,
        host: str = "",
        window: float = 600.0,
        min_interval: float = 30.0,
        cache_size: int = 4096,
    ) -> None:
        self.client = kube
        self.component = component
        self.host = host
        self.window = window
        self.min_interval = min_interval
        self._cache_size = cache_size
        self._series: collections.OrderedDict[_Key, _Series] = collections.OrderedDict()
        self.writes = 0  # API writes made

    async def normal(self, obj: objects.RawObject, reason: str, message: str) -> None:
        await self.record(obj, "Normal", reason, message)

    async def warning(self, obj: objects.RawObject, reason: str, message: str) -> None:
        await self.record(obj, "Warning", reason, message)

    async def record(
        self, obj: objects.RawObject, type: EventKind, reason: str, message: str
    ) -> None:
        key = (objects.uid(obj) or str(objects.key_of(obj)), type, reason, message)
        now = time.monotonic()
        series = self._series.get(key)
        if series is not None and now - series.first_seen > self.window:
            series = None
        try:
            if series is None:
                await self._create(key, obj, type, reason, message, now)
                return
            self._series.move_to_end(key)
            series.count += 1
            if now - series.written_at >= self.min_interval:
                await self._bump(key, series, obj, type, reason, message, now)
        except errors.ApiError as exc:
            logger.warning("cannot record event %s on %s %s: %s", reason, obj.get("kind"),
                           objects.key_of(obj), exc)  # fmt: skip

    async def _create(
        self, key: _Key, obj: objects.RawObject, type: EventKind, reason: str, message: str,
        now: float, count: int = 1,
    ) -> None:  # fmt: skip
        namespace = objects.namespace(obj) or "default"
        name = f"{objects.name(obj)}.{time.time_ns():x}"
        stamp = meta.rfc3339()
        event = {
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": _reference(obj),
            "reason": reason,
            "message": message[:1024],
            "type": type,
            "source": {"component": self.component, **({"host": self.host} if self.host else {})},
            "reportingComponent": self.component,
            "reportingInstance": self.host or self.component,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": count,
        }
        await self.client.create(resources.EVENTS, event, namespace=namespace)
        self.writes += 1
        self._series[key] = _Series(name, namespace, count, now, now, count)
        while len(self._series) > self._cache_size:
            self._series.popitem(last=False)

    async def _bump(
        self, key: _Key, series: _Series, obj: objects.RawObject, type: EventKind, reason: str,
        message: str, now: float,
    ) -> None:  # fmt: skip
        patch = {"count": series.count, "lastTimestamp": meta.rfc3339()}
        try:
            await self.client.patch(resources.EVENTS, series.name, patch,
                                    namespace=series.namespace)  # fmt: skip
        except errors.NotFoundError:
            # Events expire (the API server's event TTL): start a new one with the count so far.
            await self._create(key, obj, type, reason, message, series.first_seen, series.count)
            return
        self.writes += 1
        series.written_at, series.written_count = now, series.count

    def pending(self) -> int:
        """Repeats counted but not written yet (they go out with the next write)."""
        return sum(s.count - s.written_count for s in self._series.values())


def _reference(obj: objects.RawObject) -> objects.RawObject:
    ref = {
        "apiVersion": obj.get("apiVersion", ""),
        "kind": obj.get("kind", ""),
        "name": objects.name(obj),
        "uid": objects.uid(obj),
        "resourceVersion": objects.resource_version(obj),
    }
    if objects.namespace(obj):
        ref["namespace"] = objects.namespace(obj)
    return {k: v for k, v in ref.items() if v}
