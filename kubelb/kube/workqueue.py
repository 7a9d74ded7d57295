"""A rate-limited work queue of keys for controllers (the client-go workqueue semantics).

Input: keys added by informer handlers, timers and failed reconciles. Output: keys handed to
workers by `get()`, each followed by `done(key)` when the worker finishes it.

- Duplicates merge: a key waiting in the queue is queued once however often it is added.
- A key is never handed to two workers at once: a key added while being processed is queued
  again when `done` is called, so the latest change is always processed after the current run.
- `add_after(key, delay)` schedules an add (an earlier pending schedule for the key wins);
  `add_rate_limited(key)` waits the key's own capped exponential backoff (it grows with each call
  until `forget(key)`), so one failing key never slows the others.
- `shut_down()` stops handing out keys: waiting and future `get()` calls raise `ShutDownError`;
  `wait_idle()` waits until the keys being processed are done.
"""

from __future__ import annotations

import asyncio
import collections
import heapq
import logging
from collections.abc import Hashable
from typing import Generic, TypeVar

from kubelb.util import backoff

logger = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)

DEFAULT_RATE_LIMIT = backoff.Backoff(initial=0.05, cap=300.0)


class ShutDownError(Exception):
    """The queue is shut down: the worker should exit."""


class WorkQueue(Generic[K]):
    def __init__(self, *, rate_limit: backoff.Backoff = DEFAULT_RATE_LIMIT, name: str = "") -> None:
        self.name = name
        self._rate_limit = rate_limit
        self._queue: collections.deque[K] = collections.deque()
        self._dirty: set[K] = set()  # queued, or re-added while processing
        self._processing: set[K] = set()
        self._failures: dict[K, int] = {}
        self._waiting: dict[K, float] = {}  # key -> loop time it is due
        self._heap: list[tuple[float, int, K]] = []
        self._seq = 0
        # uvloop's call_at returns a plain Handle (no when()) for a time already past: keep
        # the due time ourselves.
        self._timer: asyncio.Handle | None = None
        self._timer_due = 0.0
        self._ready = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._shut_down = False

    def __len__(self) -> int:
        """Keys queued and not being processed."""
        return len(self._queue)

    @property
    def processing(self) -> int:
        return len(self._processing)

    @property
    def waiting(self) -> int:
        """Keys scheduled for later (`add_after`, `add_rate_limited`)."""
        return len(self._waiting)

    @property
    def shutting_down(self) -> bool:
        return self._shut_down

    def add(self, key: K) -> None:
        if self._shut_down or key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return  # queued again by done()
        self._queue.append(key)
        self._ready.set()

    def add_after(self, key: K, delay: float) -> None:
        if self._shut_down:
            return
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        due = loop.time() + delay
        current = self._waiting.get(key)
        if current is not None and current <= due:
            return
        self._waiting[key] = due
        heapq.heappush(self._heap, (due, self._seq, key))
        self._seq += 1
        self._schedule(loop)

    def add_rate_limited(self, key: K) -> None:
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        self.add_after(key, self._rate_limit.delay(failures))

    def forget(self, key: K) -> None:
        """Reset `key`'s backoff (after a success)."""
        self._failures.pop(key, None)

    def failures(self, key: K) -> int:
        return self._failures.get(key, 0)

    async def get(self) -> K:
        while True:
            if self._shut_down:
                raise ShutDownError(self.name)
            if self._queue:
                break
            self._ready.clear()
            await self._ready.wait()
        key = self._queue.popleft()
        self._dirty.discard(key)
        self._processing.add(key)
        self._idle.clear()
        return key

    def done(self, key: K) -> None:
        self._processing.discard(key)
        if key in self._dirty and not self._shut_down:
            self._queue.append(key)
            self._ready.set()
        if not self._processing:
            self._idle.set()

    def shut_down(self) -> None:
        self._shut_down = True
        self._ready.set()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def wait_idle(self) -> None:
        await self._idle.wait()

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        heap = self._heap
        while heap and self._waiting.get(heap[0][2]) != heap[0][0]:
            heapq.heappop(heap)  # superseded by an earlier schedule
        if not heap:
            return
        due = heap[0][0]
        if self._timer is not None:
            if self._timer_due == due:
                return
            self._timer.cancel()
        self._timer = loop.call_at(due, self._fire, loop)
        self._timer_due = due

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        now = loop.time() + 0.001  # call_at may fire a hair early; never spin on that
        while self._heap and self._heap[0][0] <= now:
            due, _, key = heapq.heappop(self._heap)
            if self._waiting.get(key) == due:
                del self._waiting[key]
                self.add(key)
        self._schedule(loop)
