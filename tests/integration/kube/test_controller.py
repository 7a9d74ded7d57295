"""The controller runner on the real API server: primary and secondary watches, no reconcile
storm from our own status writes, retries with backoff, requeue, bounded concurrency, resync,
and graceful shutdown."""

from __future__ import annotations

import asyncio
import collections
import functools
from collections.abc import Sequence

import pytest

from kubelb.kube import client, controller, informer, objects, resources, watches, writer
from tests.integration.kube.helpers import DEADLINE, eventually, load_balancer, running

pytestmark = pytest.mark.integration

Key = objects.ObjectKey


class LoadBalancerReconciler:
    """Writes status.conditions[Ready] with the number of ConfigMaps labelled lb=<name>."""

    name = "test-lbs"

    def __init__(self, informers: informer.Informers, writer_: writer.Writer, ns: str) -> None:
        self.primary = watches.Watch(
            resource=resources.LOAD_BALANCERS, namespace=ns, predicate=watches.spec_changed
        )
        self.watches: Sequence[watches.Watch] = (
            watches.Watch(
                resource=resources.CONFIG_MAPS, namespace=ns, mapper=watches.label_keys("lb")
            ),
        )
        self.lbs = informers.get(resources.LOAD_BALANCERS, namespace=ns).store
        self.config_maps = informers.get(resources.CONFIG_MAPS, namespace=ns)
        self.config_maps.add_indexer("lb", lambda o: [objects.labels(o).get("lb", "")])
        self.writer = writer_
        self.calls: collections.Counter[Key] = collections.Counter()
        self.fail: collections.Counter[Key] = collections.Counter()  # failures still to raise
        self.requeue: collections.Counter[Key] = collections.Counter()  # requeues still to ask
        self.in_flight: set[Key] = set()
        self.max_in_flight = 0
        self.overlaps: list[Key] = []
        self.hold: asyncio.Event | None = None  # when set, reconciles wait for it
        self.finished: list[Key] = []

    async def reconcile(self, key: Key) -> controller.Result:
        if key in self.in_flight:
            self.overlaps.append(key)
        self.in_flight.add(key)
        self.max_in_flight = max(self.max_in_flight, len(self.in_flight))
        try:
            return await self._reconcile(key)
        finally:
            self.in_flight.discard(key)

    async def _reconcile(self, key: Key) -> controller.Result:
        self.calls[key] += 1
        if self.hold is not None:
            await self.hold.wait()
        await asyncio.sleep(0)  # hold the key across a suspension: other workers run meanwhile
        if self.fail[key]:
            self.fail[key] -= 1
            raise RuntimeError(f"injected failure for {key}")
        lb = self.lbs.get(key)
        if lb is None:
            self.finished.append(key)
            return controller.DONE
        count = len(self.config_maps.store.by_index("lb", key.name))
        condition = {
            "type": "Ready",
            "status": "True",
            "reason": "Reconciled",
            "message": f"{count} config maps",
            "lastTransitionTime": "2025-01-01T00:00:00Z",
            "observedGeneration": objects.generation(lb),
        }
        await self.writer.update_status(
            resources.LOAD_BALANCERS, key, lambda s: {**s, "conditions": [condition]}, current=lb
        )
        self.finished.append(key)
        if self.requeue[key]:
            self.requeue[key] -= 1
            return controller.Result(requeue_after=0.05)
        return controller.DONE


def message(kube_obj: objects.RawObject) -> str:
    conditions = (kube_obj.get("status") or {}).get("conditions") or [{}]
    return str(conditions[0].get("message", ""))


async def setup(kube, ns, **options):
    informers = informer.Informers(kube)
    reconciler = LoadBalancerReconciler(informers, writer.Writer(kube), ns)
    ctrl = controller.Controller(reconciler, informers, **options)
    return informers, reconciler, ctrl


async def test_reconciles_primary_and_secondary_without_status_storms(kube, ns):
    informers, rec, ctrl = await setup(kube, ns, workers=1, resync_period=None)
    await kube.create(resources.LOAD_BALANCERS, load_balancer("web"), namespace=ns)
    web = Key(ns, "web")
    async with running(informers.run()), running(ctrl.run()):
        await eventually(lambda: web in rec.finished, what="first reconcile")
        live = await kube.get(resources.LOAD_BALANCERS, "web", namespace=ns)
        assert message(live) == "0 config maps"
        # A secondary object maps to its LoadBalancer by label.
        await kube.create(
            resources.CONFIG_MAPS,
            {"metadata": {"name": "c1", "labels": {"lb": "web"}}},
            namespace=ns,
        )
        await eventually(
            lambda: message(rec.lbs.get(web) or {}) == "1 config maps",
            what="status after the secondary change",
        )
        # Barrier: our status writes reached the informer before this add (watch order), and the
        # one worker takes keys in order, so reconciles caused by them would have run by now.
        await kube.create(resources.LOAD_BALANCERS, load_balancer("other"), namespace=ns)
        await eventually(lambda: Key(ns, "other") in rec.finished, what="barrier")
        # Exactly the creation and the ConfigMap: our own status writes caused none.
        assert rec.calls[web] == 2
        await kube.patch(
            resources.LOAD_BALANCERS,
            "web",
            {"spec": {"ports": [{"name": "http", "port": 9090, "protocol": "TCP"}]}},
            namespace=ns,
        )
        await eventually(lambda: rec.calls[web] == 3, what="reconcile after the spec change")
    assert ctrl.errors == 0


async def test_failures_retry_with_backoff_and_requeue_after(kube, ns):
    informers, rec, ctrl = await setup(kube, ns, workers=2, resync_period=None)
    flaky, again = Key(ns, "flaky"), Key(ns, "again")
    rec.fail[flaky] = 3
    rec.requeue[again] = 2
    await kube.create(resources.LOAD_BALANCERS, load_balancer("flaky"), namespace=ns)
    await kube.create(resources.LOAD_BALANCERS, load_balancer("again"), namespace=ns)
    async with running(informers.run()), running(ctrl.run()) as task:
        await eventually(lambda: flaky in rec.finished, what="flaky key to succeed")
        await eventually(lambda: rec.finished.count(again) == 3, what="two requeues")
        assert not task.done()  # errors never stop the controller
    assert rec.calls[flaky] == 4
    assert ctrl.errors == 3
    assert ctrl.queue.failures(flaky) == 0  # forgotten after the success


async def test_bounded_concurrency_and_one_worker_per_key(kube, ns):
    informers, rec, ctrl = await setup(kube, ns, workers=3, resync_period=None)
    names = [f"lb{i}" for i in range(8)]
    for name in names:
        await kube.create(resources.LOAD_BALANCERS, load_balancer(name), namespace=ns)
    async with running(informers.run()), running(ctrl.run()):
        await eventually(lambda: all(Key(ns, n) in rec.finished for n in names))
        for _ in range(3):  # churn: many events for the same keys while they are processed
            started = rec.calls.total()
            for name in names[:4]:
                for i in range(3):
                    ctrl.enqueue(Key(ns, name))
                    ctrl.enqueue(Key(ns, name), after=0.01 * i)
            await eventually(functools.partial(_called_more, rec, started), what="the churn run")
        await eventually(
            lambda: len(ctrl.queue) == 0 and ctrl.queue.processing == 0 and ctrl.queue.waiting == 0
        )
    assert rec.overlaps == []
    assert 1 < rec.max_in_flight <= 3


def _called_more(rec: LoadBalancerReconciler, than: int) -> bool:
    return rec.calls.total() > than


async def test_periodic_resync_reconciles_every_key(kube, ns):
    informers, rec, ctrl = await setup(kube, ns, resync_period=0.3)
    await kube.create(resources.LOAD_BALANCERS, load_balancer("quiet"), namespace=ns)
    quiet = Key(ns, "quiet")
    async with running(informers.run()), running(ctrl.run()):
        await eventually(lambda: rec.calls[quiet] >= 3, what="resyncs without any change")


async def test_shutdown_lets_in_flight_reconciles_finish(kube, ns):
    informers, rec, ctrl = await setup(
        kube, ns, workers=2, resync_period=None, shutdown_timeout=DEADLINE
    )
    rec.hold = asyncio.Event()
    await kube.create(resources.LOAD_BALANCERS, load_balancer("slow"), namespace=ns)
    async with running(informers.run()):
        task = asyncio.create_task(ctrl.run())
        await eventually(lambda: rec.in_flight == {Key(ns, "slow")}, what="reconcile started")
        task.cancel()
        await eventually(lambda: ctrl.queue.shutting_down, what="the controller stopping")
        assert not task.done()  # draining: waits for the reconcile in flight
        rec.hold.set()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert rec.finished == [Key(ns, "slow")]
    assert ctrl.errors == 0


async def test_shutdown_cancels_reconciles_that_outlive_the_timeout(kube, ns):
    informers, rec, ctrl = await setup(kube, ns, resync_period=None, shutdown_timeout=0.1)
    rec.hold = asyncio.Event()  # never set
    await kube.create(resources.LOAD_BALANCERS, load_balancer("stuck"), namespace=ns)
    async with running(informers.run()):
        task = asyncio.create_task(ctrl.run())
        await eventually(lambda: bool(rec.in_flight), what="reconcile started")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, DEADLINE)
    assert rec.finished == []
    assert rec.in_flight == set()


class CrossClusterReconciler:
    """Primary in the management cluster, secondary in the tenant cluster (the agent's shape)."""

    name = "test-cross-cluster"

    def __init__(self, ns: str, tenant_ns: str) -> None:
        self.primary = watches.Watch(resource=resources.LOAD_BALANCERS, namespace=ns)
        self.watches = (
            watches.Watch(
                resource=resources.CONFIG_MAPS,
                namespace=tenant_ns,
                cluster="tenant",
                mapper=watches.label_keys("lb", namespace=ns),
            ),
        )
        self.calls: collections.Counter[Key] = collections.Counter()

    async def reconcile(self, key: Key) -> controller.Result:
        self.calls[key] += 1
        return controller.DONE


async def test_secondary_watch_in_another_cluster(kube, ns, tenant_api, tenant_namespace):
    tenant_kube = client.Client(tenant_api)
    here, there = informer.Informers(kube), informer.Informers(tenant_kube)
    rec = CrossClusterReconciler(ns, tenant_namespace)
    with pytest.raises(ValueError, match="no Informers were given"):
        controller.Controller(rec, here)
    ctrl = controller.Controller(rec, here, clusters={"tenant": there}, resync_period=None)
    await kube.create(resources.LOAD_BALANCERS, load_balancer("web"), namespace=ns)
    web = Key(ns, "web")
    async with running(here.run()), running(there.run()), running(controller.run_all([ctrl])):
        await eventually(lambda: rec.calls[web] == 1, what="initial reconcile")
        await tenant_kube.create(
            resources.CONFIG_MAPS,
            {"metadata": {"name": "cm", "labels": {"lb": "web"}}},
            namespace=tenant_namespace,
        )
        await eventually(lambda: rec.calls[web] == 2, what="reconcile from the tenant cluster")
