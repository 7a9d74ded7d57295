"""Leader election on a real Lease: exactly one of two candidates leads; when the leader releases
or dies the other takes over; a leader that loses its lease stops leader-only work."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from kubelb.kube import leader, resources
from tests.integration.kube.helpers import DEADLINE, eventually

pytestmark = pytest.mark.integration

# Short timings so failover tests are quick; the order lease > renew > retry still holds.
TIMINGS = {"lease_duration": 3.0, "renew_deadline": 2.0, "retry_period": 0.25}


class Work:
    """Leader-only work that records who runs and checks that only one runs at a time."""

    running: set[str]

    def __init__(self) -> None:
        self.running = set()
        self.started: list[str] = []
        self.cancelled: list[str] = []
        self.overlaps = 0

    def for_(self, identity: str):
        async def work() -> None:
            if self.running:
                self.overlaps += 1
            self.running.add(identity)
            self.started.append(identity)
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled.append(identity)
                raise
            finally:
                self.running.discard(identity)

        return work


def candidate(kube, ns: str, identity: str, **options) -> leader.LeaderElector:
    return leader.LeaderElector(
        kube, namespace=ns, name="kubelb-test", identity=identity, **{**TIMINGS, **options}
    )


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def holder(kube, ns: str) -> str:
    lease = await kube.get(resources.LEASES, "kubelb-test", namespace=ns)
    return str(lease["spec"].get("holderIdentity") or "")


async def test_one_leads_and_the_other_takes_over_on_release(kube, ns):
    work = Work()
    a, b = candidate(kube, ns, "a"), candidate(kube, ns, "b")
    tasks = {
        "a": asyncio.create_task(a.run(work.for_("a"))),
        "b": asyncio.create_task(b.run(work.for_("b"))),
    }
    try:
        await eventually(lambda: a.is_leader or b.is_leader, what="a leader")
        # Over a few lease periods, never two leaders at once.
        loop = asyncio.get_running_loop()
        until = loop.time() + 2 * TIMINGS["lease_duration"]
        while loop.time() < until:
            assert not (a.is_leader and b.is_leader)
            await asyncio.sleep(0.05)
        await eventually(lambda: a.is_leader or b.is_leader, what="a leader")
        first, second = (a, b) if a.is_leader else (b, a)
        assert await holder(kube, ns) == first.identity
        assert second.leader == first.identity  # the follower sees who leads
        await stop(tasks[first.identity])  # releases the lease
        assert work.cancelled == [first.identity]
        await eventually(lambda: second.identity in work.running, what="takeover after release")
        assert work.started[-2:] == [first.identity, second.identity]
        assert await holder(kube, ns) == second.identity
        lease = await kube.get(resources.LEASES, "kubelb-test", namespace=ns)
        assert lease["spec"]["leaseTransitions"] == len(work.started) - 1
    finally:
        for task in tasks.values():
            await stop(task)
    assert work.overlaps == 0


async def test_the_other_takes_over_when_the_leader_dies(kube, ns):
    work = Work()
    a = candidate(kube, ns, "a", release_on_cancel=False)  # dies: never releases
    task_a = asyncio.create_task(a.run(work.for_("a")))
    await eventually(lambda: a.is_leader, what="a leads")
    b = candidate(kube, ns, "b")
    task_b = asyncio.create_task(b.run(work.for_("b")))
    try:
        await eventually(lambda: b.leader == "a", what="b sees a lead")
        await stop(task_a)
        assert await holder(kube, ns) == "a"  # not released
        await eventually(lambda: "b" in work.running, what="takeover after expiry")
        assert await holder(kube, ns) == "b"
    finally:
        await stop(task_a)
        await stop(task_b)
    assert work.overlaps == 0


async def test_losing_the_lease_stops_leader_work_and_campaigns_again(kube, ns):
    work = Work()
    a = candidate(kube, ns, "a")
    task = asyncio.create_task(a.run(work.for_("a")))
    try:
        await eventually(lambda: a.is_leader, what="a leads")
        lease = await kube.get(resources.LEASES, "kubelb-test", namespace=ns)
        # Someone else grabs the lease (e.g. after a network partition), for a long time.
        lease["spec"].update(holderIdentity="intruder", leaseDurationSeconds=3600)
        await kube.replace(resources.LEASES, lease)
        await eventually(lambda: work.cancelled == ["a"], what="leader-only work stopped")
        assert not a.is_leader
        assert not task.done()  # still a candidate
        # Deliberately let a's own lease duration pass: proves something does not happen.
        await asyncio.sleep(TIMINGS["lease_duration"])
        assert not a.is_leader  # the intruder's lease is valid: a does not steal it
        assert a.leader == "intruder"
        # The intruder releases: a leads again, with fresh work.
        lease = await kube.get(resources.LEASES, "kubelb-test", namespace=ns)
        lease["spec"].update(holderIdentity="")
        await kube.replace(resources.LEASES, lease)
        await eventually(lambda: work.started == ["a", "a"], what="leads again")
    finally:
        await stop(task)


async def test_work_failure_ends_run_and_releases(kube, ns):
    a = candidate(kube, ns, "a")

    async def broken() -> None:
        raise RuntimeError("leader work crashed")

    with pytest.raises(RuntimeError, match="leader work crashed"):
        await asyncio.wait_for(a.run(broken), DEADLINE)
    assert await holder(kube, ns) == ""


def test_timings_must_be_ordered(kube):
    with pytest.raises(ValueError, match="lease_duration > renew_deadline"):
        leader.LeaderElector(kube, namespace="x", name="y", lease_duration=5, renew_deadline=10)
