from __future__ import annotations

import asyncio

import pytest

from kubelb.kube import workqueue
from kubelb.util import backoff

DEADLINE = 10.0


async def test_duplicates_merge_and_order_is_fifo():
    q: workqueue.WorkQueue[str] = workqueue.WorkQueue()
    for key in ("a", "b", "a", "c", "b"):
        q.add(key)
    assert len(q) == 3
    assert [await q.get() for _ in range(3)] == ["a", "b", "c"]


async def test_key_added_while_processing_waits_for_done_then_runs_again():
    q: workqueue.WorkQueue[str] = workqueue.WorkQueue()
    q.add("a")
    assert await q.get() == "a"
    q.add("a")
    q.add("a")
    assert len(q) == 0  # not handed to a second worker while the first holds it
    second = asyncio.create_task(q.get())
    # One loop turn runs the getter until it waits; it waits on no timer or I/O, so only
    # `done` can wake it.
    await asyncio.sleep(0)
    assert not second.done()
    q.done("a")
    assert await asyncio.wait_for(second, DEADLINE) == "a"  # processed once more, not twice
    q.done("a")
    assert len(q) == 0
    assert q.processing == 0


async def test_workers_never_share_a_key():
    q: workqueue.WorkQueue[int] = workqueue.WorkQueue()
    running: set[int] = set()
    overlaps = []
    handled = []

    async def worker():
        while True:
            try:
                key = await q.get()
            except workqueue.ShutDownError:
                return
            if key in running:
                overlaps.append(key)
            running.add(key)
            await asyncio.sleep(0)  # hold the key across a suspension: other workers run meanwhile
            running.discard(key)
            handled.append(key)
            q.done(key)

    workers = [asyncio.create_task(worker()) for _ in range(4)]
    for i in range(200):
        q.add(i % 5)
        if i % 7 == 0:
            await asyncio.sleep(0)
    async with asyncio.timeout(DEADLINE):
        while len(q) or q.processing:
            await q.wait_idle()
            await asyncio.sleep(0)
    q.shut_down()
    await asyncio.gather(*workers)
    assert overlaps == []
    assert set(handled) == set(range(5))


async def test_add_after_delivers_later_and_earliest_schedule_wins():
    q: workqueue.WorkQueue[str] = workqueue.WorkQueue()
    q.add_after("late", 0.2)
    q.add_after("soon", 0.05)
    q.add_after("soon", 5.0)  # a later schedule does not postpone the earlier one
    assert len(q) == 0
    assert q.waiting == 2
    assert await asyncio.wait_for(q.get(), DEADLINE) == "soon"
    assert await asyncio.wait_for(q.get(), DEADLINE) == "late"
    assert q.waiting == 0


async def test_earlier_schedule_replaces_a_later_one():
    q: workqueue.WorkQueue[str] = workqueue.WorkQueue()
    q.add_after("k", 60.0)
    q.add_after("k", 0.01)
    assert await asyncio.wait_for(q.get(), DEADLINE) == "k"
    q.done("k")
    assert q.waiting == 0
    q.shut_down()


async def test_rate_limit_grows_per_key_and_forget_resets():
    q: workqueue.WorkQueue[str] = workqueue.WorkQueue(
        rate_limit=backoff.Backoff(initial=0.001, cap=0.004)
    )
    for expected in (1, 2, 3):
        q.add_rate_limited("bad")
        assert q.failures("bad") == expected
        assert await asyncio.wait_for(q.get(), DEADLINE) == "bad"
        q.done("bad")
    assert q.failures("good") == 0
    q.forget("bad")
    assert q.failures("bad") == 0


async def test_shutdown_wakes_waiting_getters_and_drops_new_work():
    q: workqueue.WorkQueue[str] = workqueue.WorkQueue()
    getters = [asyncio.create_task(q.get()) for _ in range(3)]
    await asyncio.sleep(0)
    q.add_after("timer", 30.0)
    q.shut_down()
    for getter in getters:
        with pytest.raises(workqueue.ShutDownError):
            await asyncio.wait_for(getter, DEADLINE)
    q.add("x")
    assert len(q) == 0
    with pytest.raises(workqueue.ShutDownError):
        await q.get()


async def test_wait_idle_waits_for_keys_in_flight():
    q: workqueue.WorkQueue[str] = workqueue.WorkQueue()
    q.add("a")
    key = await q.get()
    idle = asyncio.create_task(q.wait_idle())
    await asyncio.sleep(0)  # one loop turn runs it until it waits (on no timer or I/O)
    assert not idle.done()
    q.done(key)
    await asyncio.wait_for(idle, DEADLINE)


def test_schedules_on_uvloop_when_a_timer_is_already_due():
    """uvloop's call_at answers a time already past with a plain Handle (no `when()`): a second
    schedule while that one is pending used to crash the caller (the manager's workers)."""
    import uvloop

    async def scenario() -> list[str]:
        q: workqueue.WorkQueue[str] = workqueue.WorkQueue()
        q.add_after("due", 1e-12)  # past by the time call_at runs
        q.add_after("later", 0.05)
        q.add_after("sooner", 0.01)
        got = [await asyncio.wait_for(q.get(), DEADLINE) for _ in range(3)]
        q.shut_down()
        return got

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(scenario()) == ["due", "sooner", "later"]
