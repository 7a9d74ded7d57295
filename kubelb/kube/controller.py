"""Run a `Reconciler`: informers -> predicates -> deduplicating work queue -> N workers.

A reconciler declares its `primary` watch and secondary `watches` (`kubelb.kube.watches`) and
implements `reconcile(key) -> Result`. It reads from stores, computes the desired state, applies
the difference and returns; it never sees event types or diffs. Returning
`Result(requeue_after=s)` reconciles the key again after `s` seconds, unless a later successful
reconcile of the key (for any reason) returns first: its own Result replaces the pending
requeue, so a level-triggered reconciler must ask again whenever it still needs to. Raising
retries the key with per-key capped exponential backoff (reset by the next success). Errors are
logged with the key and counted; they never stop the controller.

`Controller.run()` waits for every informer it uses to sync, enqueues every primary key, starts
`workers` workers (a key never runs twice at once) and a periodic resync that enqueues every
primary key again (level-triggered repair of anything missed). It runs until cancelled; then it
stops handing out keys, lets in-flight reconciles finish for up to `shutdown_timeout` seconds,
cancels what is left, and returns to the canceller. It can be run again (e.g. after regaining
leadership). The informers themselves run elsewhere (`Informers.run()`), usually on every
replica. A watch may name another `cluster`; its informers then come from `clusters[name]`.

With `coalesce=s`, a key named by an event waits `s` seconds before it is handed out, so a burst
of events costs one reconcile; the first event of a burst sets the time, so a change never waits
longer than `s` (plus the reconciles ahead of it).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from kubelb.kube import errors, informer, objects, watches, workqueue
from kubelb.util import backoff, logfields, logsafe

logger = logging.getLogger(__name__)

DEFAULT_RETRY = backoff.Backoff(initial=0.1, cap=300.0)

# (controller name, key, "success" | "error", seconds) after each reconcile.
Observer = Callable[[str, objects.ObjectKey, str, float], None]


@dataclass(frozen=True, slots=True)
class Result:
    requeue_after: float | None = None


DONE = Result()


class Reconciler(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def primary(self) -> watches.Watch: ...

    @property
    def watches(self) -> Sequence[watches.Watch]: ...

    async def reconcile(self, key: objects.ObjectKey) -> Result: ...


class Controller:
    def __init__(
        self,
        reconciler: Reconciler,
        informers: informer.Informers,
        *,
        clusters: Mapping[str, informer.Informers] | None = None,
        workers: int = 1,
        resync_period: float | None = 600.0,
        retry: backoff.Backoff = DEFAULT_RETRY,
        shutdown_timeout: float = 30.0,
        observer: Observer | None = None,
        coalesce: float = 0.0,
        tenant_of: Callable[[objects.ObjectKey], str | None] | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        if coalesce < 0:
            raise ValueError("coalesce must be >= 0")
        self.reconciler = reconciler
        self.name = reconciler.name
        self._workers = workers
        self._resync_period = resync_period
        self._retry = retry
        self._shutdown_timeout = shutdown_timeout
        self._observer = observer
        self._coalesce = coalesce
        self._tenant_of = tenant_of  # for the `tenant` of the reconcile's log records
        self.queue: workqueue.WorkQueue[objects.ObjectKey] = self._new_queue()
        # Each key's pending `requeue_after` (at most one): the latest successful reconcile's
        # Result replaces it, since that reconcile already saw everything the earlier one
        # wanted to look at again.
        self._requeues: dict[objects.ObjectKey, asyncio.TimerHandle] = {}
        self.reconciles = 0  # finished reconcile calls, successful or not
        self.errors = 0  # reconcile calls that raised
        sources = {"": informers, **(clusters or {})}
        self.primary = self._subscribe(sources, reconciler.primary)
        self._informers = [self.primary]
        self._informers.extend(self._subscribe(sources, w) for w in reconciler.watches)
        # Set once the caches synced and every existing key is queued for the first time.
        self.started = asyncio.Event()

    def __repr__(self) -> str:
        return f"<Controller {self.name}>"

    @property
    def requeues(self) -> int:
        """Keys with a `requeue_after` still pending."""
        return len(self._requeues)

    def enqueue(self, key: objects.ObjectKey, *, after: float = 0.0) -> None:
        """Reconcile `key` (after `after` seconds): for triggers outside the watched kinds."""
        if after > 0:
            self.queue.add_after(key, after)
        else:
            self.queue.add(key)

    async def run(self) -> None:
        if self.queue.shutting_down:
            self.queue = self._new_queue()
        await asyncio.gather(*(i.wait_synced() for i in self._informers))
        keys = self.primary.store.keys()
        for key in keys:
            self.queue.add(key)
        self.started.set()
        logger.info("controller %s: caches synced, %d keys, %d workers", self.name,
                    len(self.queue), self._workers)  # fmt: skip
        workers = [asyncio.create_task(self._work(), name=f"{self.name}-worker-{i}")
                   for i in range(self._workers)]  # fmt: skip
        helpers = [asyncio.create_task(self._resync(), name=f"{self.name}-resync")]
        try:
            await asyncio.wait([*workers, *helpers], return_when=asyncio.FIRST_EXCEPTION)
        finally:
            await self._stop(workers, helpers)
        for task in [*workers, *helpers]:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise RuntimeError(f"{self!r}: {task.get_name()} failed") from task.exception()

    async def _stop(
        self, workers: list[asyncio.Task[None]], helpers: list[asyncio.Task[None]]
    ) -> None:
        self.queue.shut_down()
        for timer in self._requeues.values():
            timer.cancel()
        self._requeues.clear()
        for task in helpers:
            task.cancel()
        _, pending = await asyncio.wait(workers, timeout=self._shutdown_timeout)
        if pending:
            logger.warning("controller %s: %d reconciles still running after %.0fs; cancelling",
                           self.name, len(pending), self._shutdown_timeout)  # fmt: skip
        for task in pending:
            task.cancel()
        await asyncio.gather(*workers, *helpers, return_exceptions=True)
        logger.info("controller %s: stopped", self.name)

    async def _work(self) -> None:
        queue = self.queue
        while True:
            try:
                key = await queue.get()
            except workqueue.ShutDownError:
                return
            try:
                await self._reconcile(queue, key)
            finally:
                queue.done(key)

    async def _reconcile(
        self, queue: workqueue.WorkQueue[objects.ObjectKey], key: objects.ObjectKey
    ) -> None:
        started = time.monotonic()
        tenant = self._tenant_of(key) if self._tenant_of else None
        try:
            with logfields.scope(object=str(key), tenant=tenant):
                result = await self.reconciler.reconcile(key)
        except Exception as exc:
            self.reconciles += 1
            self.errors += 1
            attempt = queue.failures(key) + 1
            queue.add_rate_limited(key)
            fields = {"object": str(key), "tenant": tenant,
                      "reason": getattr(exc, "reason", None) or type(exc).__name__}  # fmt: skip
            if isinstance(exc, errors.ApiError):
                logger.warning("controller %s: reconcile %s failed (attempt %d): %s",
                               self.name, logsafe.shown(key), attempt, exc,
                               extra=fields)  # fmt: skip
            else:
                logger.exception("controller %s: reconcile %s failed (attempt %d)",
                                 self.name, logsafe.shown(key), attempt, extra=fields)  # fmt: skip
            self._observe(key, "error", started)
            return
        self.reconciles += 1
        queue.forget(key)
        earlier = self._requeues.pop(key, None)
        if earlier is not None:
            earlier.cancel()
        if result.requeue_after is not None and not queue.shutting_down:
            loop = asyncio.get_running_loop()
            self._requeues[key] = loop.call_later(result.requeue_after, self._requeue, queue, key)
        self._observe(key, "success", started)

    def _requeue(
        self, queue: workqueue.WorkQueue[objects.ObjectKey], key: objects.ObjectKey
    ) -> None:
        self._requeues.pop(key, None)
        queue.add(key)

    async def _resync(self) -> None:
        if not self._resync_period:
            return
        while True:
            # Jitter so controllers started together do not resync together.
            await asyncio.sleep(self._resync_period * random.uniform(0.9, 1.1))
            keys = self.primary.store.keys()
            logger.debug("controller %s: resync of %d keys", self.name, len(keys))
            for key in keys:
                self.queue.add(key)

    def _observe(self, key: objects.ObjectKey, result: str, started: float) -> None:
        if self._observer is None:
            return
        try:
            self._observer(self.name, key, result, time.monotonic() - started)
        except Exception:
            logger.exception("controller %s: observer failed", self.name)

    def _new_queue(self) -> workqueue.WorkQueue[objects.ObjectKey]:
        return workqueue.WorkQueue(rate_limit=self._retry, name=self.name)

    def _subscribe(
        self, sources: Mapping[str, informer.Informers], watch: watches.Watch
    ) -> informer.Informer:
        if watch.cluster not in sources:
            raise ValueError(f"{self!r}: watch on {watch.resource} names cluster "
                             f"{watch.cluster!r}, but no Informers were given for it")  # fmt: skip
        source = sources[watch.cluster].get(watch.resource, namespace=watch.namespace,
                               label_selector=watch.label_selector,
                               field_selector=watch.field_selector)  # fmt: skip

        def handle(change: informer.Change) -> None:
            if not watch.predicate(change.old, change.new):
                return
            keys = set(watch.mapper(change.obj))
            if change.old is not None and change.new is not None:
                keys.update(watch.mapper(change.old))
            for key in keys:
                if self._coalesce:
                    self.queue.add_after(key, self._coalesce)
                else:
                    self.queue.add(key)

        source.add_handler(handle)
        return source


async def run_all(controllers: Iterable[Controller]) -> None:
    """Run controllers together until cancelled (e.g. as the leader-only work of
    `LeaderElector.run`); one failing stops all."""
    async with asyncio.TaskGroup() as group:
        for ctrl in controllers:
            group.create_task(ctrl.run(), name=f"controller-{ctrl.name}")
