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
