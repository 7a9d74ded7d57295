"""Lease-based leader election (coordination.k8s.io/v1 Lease), as controller-runtime does it.

Input: a `Client`, the Lease namespace and name (the election id), this candidate's identity.
Output: `run(work)` calls `work()` while this process leads and cancels it as soon as the lease
is lost; `is_leader` and `leader` (the holder last observed) tell the state.

Candidates poll the Lease every `retry_period`. A lease is free when it does not exist, has no
holder (released), or its holder has not renewed it for `lease_duration` seconds, measured on
this process's monotonic clock from when the record was last seen changing (never by comparing
clocks across machines). The leader renews every `retry_period`; if renewals keep failing for
`renew_deadline` seconds, or another holder is seen, it stops leading at once. Defaults are
controller-runtime's 15 s / 10 s / 2 s. On cancellation the work is cancelled first, then the
lease is released (holder cleared) so another candidate takes over without waiting.

Losing the lease does not end `run`: it cancels `work` and campaigns again, calling `work()`
afresh when it leads again, so `work` must be restartable. An exception from `work` ends `run`.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import math
import os
import random
import socket
import time
import uuid
from collections.abc import Callable, Coroutine
from enum import Enum
from typing import Any

from kubelb.kube import errors, interface, resources

logger = logging.getLogger(__name__)

Work = Callable[[], Coroutine[Any, Any, None]]


class _Attempt(Enum):
    LEADING = "leading"
    HELD_BY_OTHER = "held by another candidate"
    FAILED = "failed"


def default_identity() -> str:
    """Host name plus a random suffix: unique per process, readable in the Lease."""
    return f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


class LeaderElector:
    def __init__(
        self,
        kube: interface.KubeApi,
        *,
        namespace: str,
        name: str,
        identity: str | None = None,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        release_on_cancel: bool = True,
    ) -> None:
        if not lease_duration > renew_deadline > retry_period > 0:
            raise ValueError("need lease_duration > renew_deadline > retry_period > 0")
        self.client = kube
        self.namespace = namespace
        self.name = name
        self.identity = identity or os.environ.get("POD_NAME") or default_identity()
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.release_on_cancel = release_on_cancel
        self.leader = ""  # holder identity last observed
        self.transitions = 0  # times this candidate became leader
        self._leading = asyncio.Event()
        self._observed: tuple[Any, ...] = ()
        self._observed_at = 0.0

    @property
    def is_leader(self) -> bool:
        return self._leading.is_set()

    async def wait_leading(self) -> None:
        await self._leading.wait()

    async def run(self, work: Work) -> None:
        """Campaign, run `work` while leading, until cancelled or `work` ends."""
        try:
            while True:
                await self._acquire()
                if await self._lead(work):
                    return
        finally:
            if self.release_on_cancel:
                await self._release()

    async def _lead(self, work: Work) -> bool:
        """Run `work` while leading; True when `work` ended, False when leadership was lost."""
        self._leading.set()
        self.transitions += 1
        logger.info("leader election %s/%s: %s is the leader", self.namespace, self.name,
                    self.identity)  # fmt: skip
        work_task = asyncio.create_task(work(), name=f"leader-work-{self.name}")
        renew_task = asyncio.create_task(self._keep_renewing(), name=f"leader-renew-{self.name}")
        try:
            await asyncio.wait([work_task, renew_task], return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._leading.clear()
            for task in (work_task, renew_task):
                task.cancel()
            await asyncio.gather(work_task, renew_task, return_exceptions=True)
        if renew_task.done() and not renew_task.cancelled() and work_task.cancelled():
            failure = renew_task.exception()
            if failure is not None:
                logger.error("leader election %s/%s: renewing failed unexpectedly",
                             self.namespace, self.name, exc_info=failure)  # fmt: skip
            logger.warning("leader election %s/%s: %s lost the lease; leader-only work stopped",
                           self.namespace, self.name, self.identity)  # fmt: skip
            return False
        if not work_task.cancelled() and work_task.exception() is not None:
            raise work_task.exception()  # type: ignore[misc]
        return True

    async def _acquire(self) -> None:
        while True:
            attempt = await self._try()
            if attempt is _Attempt.LEADING:
                return
            await asyncio.sleep(self.retry_period * random.uniform(1.0, 1.2))

    async def _keep_renewing(self) -> None:
        """Return when the lease is lost."""
        while True:
            await asyncio.sleep(self.retry_period)
            deadline = time.monotonic() + self.renew_deadline
            while True:
                try:
                    async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                        attempt = await self._try()
                except TimeoutError:
                    attempt = _Attempt.FAILED
                if attempt is _Attempt.LEADING:
                    break
                if attempt is _Attempt.HELD_BY_OTHER or time.monotonic() >= deadline:
                    return
                await asyncio.sleep(min(self.retry_period, max(0.0, deadline - time.monotonic())))

    async def _try(self) -> _Attempt:
        """One acquire-or-renew round trip."""
        try:
            return await self._try_once()
        except errors.ApiError as exc:
            logger.warning("leader election %s/%s: %s", self.namespace, self.name, exc)
            return _Attempt.FAILED

    async def _try_once(self) -> _Attempt:
        try:
            lease = await self.client.get(resources.LEASES, self.name, namespace=self.namespace)
        except errors.NotFoundError:
            body = {"metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": self._spec({}, now=_micro_time())}  # fmt: skip
            try:
                await self.client.create(resources.LEASES, body)
            except errors.AlreadyExistsError:
                return _Attempt.FAILED
            self._saw(body["spec"])
            return _Attempt.LEADING
        spec = lease.get("spec") or {}
        self._saw(spec)
        holder = spec.get("holderIdentity") or ""
        # A leader that sees another holder has lost, expired or not.
        taken = holder and holder != self.identity
        if taken and (self.is_leader or not self._expired(spec)):
            return _Attempt.HELD_BY_OTHER
        body = {**lease, "spec": self._spec(spec, now=_micro_time())}
        try:
            await self.client.replace(resources.LEASES, body)
        except errors.ConflictError:
            return _Attempt.FAILED
        self._saw(body["spec"])
        return _Attempt.LEADING

    def _spec(self, spec: dict[str, Any], *, now: str) -> dict[str, Any]:
        ours = spec.get("holderIdentity") == self.identity
        transitions = int(spec.get("leaseTransitions") or 0)
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": math.ceil(self.lease_duration),
            "acquireTime": spec.get("acquireTime", now) if ours else now,
            "renewTime": now,
            "leaseTransitions": transitions if ours or not spec else transitions + 1,
        }

    def _saw(self, spec: dict[str, Any]) -> None:
        record = (spec.get("holderIdentity"), spec.get("renewTime"),
                  spec.get("leaseDurationSeconds"))  # fmt: skip
        self.leader = str(spec.get("holderIdentity") or "")
        if record != self._observed:
            self._observed, self._observed_at = record, time.monotonic()

    def _expired(self, spec: dict[str, Any]) -> bool:
        duration = float(spec.get("leaseDurationSeconds") or self.lease_duration)
        return time.monotonic() > self._observed_at + duration

    async def _release(self) -> None:
        """Clear the holder if it is us, so another candidate need not wait for expiry."""
        try:
            async with asyncio.timeout(self.renew_deadline):
                try:
                    lease = await self.client.get(resources.LEASES, self.name,
                                                  namespace=self.namespace)  # fmt: skip
                except errors.NotFoundError:
                    return
                spec = lease.get("spec") or {}
                if spec.get("holderIdentity") != self.identity:
                    return
                now = _micro_time()
                released = {**spec, "holderIdentity": "", "leaseDurationSeconds": 1,
                            "renewTime": now, "acquireTime": now}  # fmt: skip
                await self.client.replace(resources.LEASES, {**lease, "spec": released})
            logger.info("leader election %s/%s: %s released the lease", self.namespace,
                        self.name, self.identity)  # fmt: skip
        except (errors.ApiError, TimeoutError) as exc:
            logger.warning("leader election %s/%s: could not release the lease: %s",
                           self.namespace, self.name, exc)  # fmt: skip


def _micro_time() -> str:
    """A MicroTime: RFC 3339 with microseconds, UTC."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
