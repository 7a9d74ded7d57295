"""Controller wiring that needs no API server: event-triggered keys, with and without
coalescing (the informers are never started; changes are fed to them directly)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from kubelb.kube import client, controller, informer, objects, resources, watches

KEY = objects.ObjectKey("ns", "web")


class Reconciler:
    name = "test"
    primary = watches.Watch(resource=resources.LOAD_BALANCERS)
    watches = (watches.Watch(resource=resources.CONFIG_MAPS, mapper=watches.constant_keys(KEY)),)

    async def reconcile(self, key: objects.ObjectKey) -> controller.Result:
        return controller.DONE


def config_map(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": "1"}}


def make(coalesce: float) -> tuple[controller.Controller, informer.Informer]:
    informers = informer.Informers(cast(client.Client, None))
    ctrl = controller.Controller(Reconciler(), informers, coalesce=coalesce)
    return ctrl, informers.get(resources.CONFIG_MAPS)


def burst(source: informer.Informer, count: int) -> None:
    for i in range(count):
        source._emit(informer.Change(informer.ChangeType.ADD, None, config_map(f"c{i}")))


async def test_without_coalescing_an_event_queues_its_key_at_once():
    ctrl, source = make(0.0)
    burst(source, 3)
    assert len(ctrl.queue) == 1
    assert ctrl.queue.waiting == 0


async def test_a_burst_of_events_becomes_one_queued_key_after_the_delay():
    ctrl, source = make(0.05)
    burst(source, 20)
    assert len(ctrl.queue) == 0
    assert ctrl.queue.waiting == 1
    async with asyncio.timeout(10):
        assert await ctrl.queue.get() == KEY
    assert len(ctrl.queue) == 0  # the whole burst was this one reconcile
    assert ctrl.queue.waiting == 0
    ctrl.queue.done(KEY)
    ctrl.queue.shut_down()


def test_negative_coalescing_is_refused():
    with pytest.raises(ValueError, match="coalesce"):
        make(-1.0)


class Scripted:
    """Returns the queued results in order (raising the exceptions among them)."""

    name = "scripted"
    primary = watches.Watch(resource=resources.LOAD_BALANCERS)
    watches = ()

    def __init__(self, *results: controller.Result | Exception) -> None:
        self.results = list(results)

    async def reconcile(self, key: objects.ObjectKey) -> controller.Result:
        result = self.results.pop(0)
        if isinstance(result, Exception):
            raise result
        return result


def scripted(*results: controller.Result | Exception) -> controller.Controller:
    informers = informer.Informers(cast(client.Client, None))
    return controller.Controller(Scripted(*results), informers)


async def test_requeue_after_queues_the_key_again():
    ctrl = scripted(controller.Result(requeue_after=0.01))
    await ctrl._reconcile(ctrl.queue, KEY)
    assert ctrl.requeues == 1
    async with asyncio.timeout(10):
        assert await ctrl.queue.get() == KEY
    assert ctrl.requeues == 0


async def test_a_later_successful_reconcile_replaces_the_pending_requeue():
    ctrl = scripted(
        controller.Result(requeue_after=3600),
        controller.DONE,  # saw everything the first one wanted to look at again
        controller.Result(requeue_after=0.01),
    )
    await ctrl._reconcile(ctrl.queue, KEY)
    assert ctrl.requeues == 1
    await ctrl._reconcile(ctrl.queue, KEY)
    assert ctrl.requeues == 0
    await ctrl._reconcile(ctrl.queue, KEY)  # its own, shorter requeue is the one that stays
    assert ctrl.requeues == 1
    async with asyncio.timeout(10):
        assert await ctrl.queue.get() == KEY


async def test_a_failed_reconcile_keeps_the_pending_requeue():
    ctrl = scripted(controller.Result(requeue_after=3600), RuntimeError("boom"))
    await ctrl._reconcile(ctrl.queue, KEY)
    await ctrl._reconcile(ctrl.queue, KEY)
    assert ctrl.requeues == 1
    assert ctrl.queue.waiting == 1  # and the failure's own retry is scheduled
    ctrl.queue.shut_down()
