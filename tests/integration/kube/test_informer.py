"""Informers against the real API server: events, resume without relisting, relist on 410 Gone
with deletes for objects that vanished meanwhile, retry after errors, shared informers."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from kubelb.kube import client, informer, kubeconfig, objects, resources
from tests.integration.kube.helpers import DEADLINE, eventually, load_balancer, running

pytestmark = pytest.mark.integration


class Recorder:
    def __init__(self) -> None:
        self.changes: list[tuple[str, str]] = []
        self.olds: list[objects.RawObject | None] = []

    def __call__(self, change: informer.Change) -> None:
        self.changes.append((change.type.value, objects.name(change.obj)))
        self.olds.append(change.old)


async def test_sees_adds_updates_and_deletes(kube, ns):
    await kube.create(resources.CONFIG_MAPS, {"metadata": {"name": "before"}}, namespace=ns)
    inf = informer.Informer(kube, resources.CONFIG_MAPS, namespace=ns)
    seen = Recorder()
    inf.add_handler(seen)
    async with running(inf.run()):
        await asyncio.wait_for(inf.wait_synced(), DEADLINE)
        assert objects.ObjectKey(ns, "before") in inf.store
        await kube.create(resources.CONFIG_MAPS, {"metadata": {"name": "x"}}, namespace=ns)
        await kube.patch(resources.CONFIG_MAPS, "x", {"data": {"k": "v"}}, namespace=ns)
        await kube.delete(resources.CONFIG_MAPS, "x", namespace=ns)
        await eventually(lambda: ("delete", "x") in seen.changes)
    ours = [c for c in seen.changes if c[1] in ("before", "x")]
    assert ours == [("add", "before"), ("add", "x"), ("update", "x"), ("delete", "x")]
    update_old = seen.olds[seen.changes.index(("update", "x"))]
    assert update_old is not None
    assert "data" not in update_old  # the old object is the state before the patch
    assert objects.ObjectKey(ns, "x") not in inf.store
    assert inf.lists == 1


async def test_resumes_watches_without_relisting(kube, ns):
    # Server-side timeouts of 1-2 s: the watch ends often and must resume, not relist.
    inf = informer.Informer(kube, resources.CONFIG_MAPS, namespace=ns, watch_timeout=1)
    seen = Recorder()
    inf.add_handler(seen)
    async with running(inf.run()):
        await asyncio.wait_for(inf.wait_synced(), DEADLINE)
        await eventually(lambda: inf.watches >= 3)
        await kube.create(resources.CONFIG_MAPS, {"metadata": {"name": "late"}}, namespace=ns)
        await eventually(lambda: ("add", "late") in seen.changes)
    assert inf.lists == 1
    assert seen.changes.count(("add", "late")) == 1


async def test_relists_on_gone_and_emits_deletes_for_vanished_objects(kube, ns):
    for name in ("kept", "changed", "deleted"):
        await kube.create(resources.LOAD_BALANCERS, load_balancer(name), namespace=ns)
    inf = informer.Informer(kube, resources.LOAD_BALANCERS, namespace=ns)
    seen = Recorder()
    inf.add_handler(seen)
    async with running(inf.run()):
        await asyncio.wait_for(inf.wait_synced(), DEADLINE)
    # While the informer is down: one object deleted, one changed.
    await kube.delete(resources.LOAD_BALANCERS, "deleted", namespace=ns)
    await kube.patch(
        resources.LOAD_BALANCERS,
        "changed",
        {"spec": {"ports": [{"name": "http", "port": 9090, "protocol": "TCP"}]}},
        namespace=ns,
    )
    # Resume from a version the server has expired: a CRD's watch cache starts when the CRD is
    # installed, so version 2 is too old and the watch answers 410 Gone.
    inf.resource_version = "2"
    seen.changes.clear()
    async with running(inf.run()):
        await eventually(lambda: inf.lists == 2 and ("delete", "deleted") in seen.changes)
        await kube.create(resources.LOAD_BALANCERS, load_balancer("after"), namespace=ns)
        await eventually(lambda: ("add", "after") in seen.changes)
    assert seen.changes == [("update", "changed"), ("delete", "deleted"), ("add", "after")]
    assert {k.name for k in inf.store} == {"kept", "changed", "after"}


async def test_retries_errors_until_it_can_list(management, kube, ns, tmp_path):
    path = await management.service_account_kubeconfig(ns, "watcher", tmp_path / "kubeconfig")
    limited = client.Client(kubeconfig.KubeconfigFile(path))
    try:
        inf = informer.Informer(limited, resources.CONFIG_MAPS, namespace=ns)
        async with running(inf.run()) as task:
            await eventually(lambda: inf.errors >= 2)  # 403, retried with backoff
            assert not inf.synced.is_set()
            assert not task.done()
            await kube.create(
                resources.ROLES,
                {
                    "metadata": {"name": "watch-cm"},
                    "rules": [
                        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list", "watch"]}
                    ],
                },
                namespace=ns,
            )
            await kube.create(
                resources.ROLE_BINDINGS,
                {
                    "metadata": {"name": "watch-cm"},
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "Role",
                        "name": "watch-cm",
                    },
                    "subjects": [{"kind": "ServiceAccount", "name": "watcher", "namespace": ns}],
                },
                namespace=ns,
            )
            await asyncio.wait_for(inf.wait_synced(), DEADLINE)
        assert task.cancelled()  # cancellation is never swallowed
    finally:
        await limited.close()


async def test_late_handler_gets_current_objects_and_informers_are_shared(kube, ns):
    await kube.create(resources.CONFIG_MAPS, {"metadata": {"name": "one"}}, namespace=ns)
    shared = informer.Informers(kube)
    first = shared.get(resources.CONFIG_MAPS, namespace=ns)
    assert shared.get(resources.CONFIG_MAPS, namespace=ns) is first
    run = asyncio.create_task(shared.run())
    try:
        await asyncio.wait_for(shared.wait_synced(), DEADLINE)
        late = shared.get(resources.SERVICE_ACCOUNTS, namespace=ns)  # started by the running set
        await asyncio.wait_for(late.wait_synced(), DEADLINE)
        seen = Recorder()
        first.add_handler(seen)
        assert ("add", "one") in seen.changes
        assert set(shared) == {first, late}
    finally:
        run.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run


async def test_store_keeps_no_managed_fields(kube, ns):
    await kube.create(resources.LOAD_BALANCERS, load_balancer("listed"), namespace=ns)
    inf = informer.Informer(kube, resources.LOAD_BALANCERS, namespace=ns)
    async with running(inf.run()):
        await asyncio.wait_for(inf.wait_synced(), DEADLINE)
        await kube.create(resources.LOAD_BALANCERS, load_balancer("watched"), namespace=ns)
        await eventually(lambda: objects.ObjectKey(ns, "watched") in inf.store)
    for name in ("listed", "watched"):
        # The API server records managedFields on every object; the store leaves them out.
        live = await kube.get(resources.LOAD_BALANCERS, name, namespace=ns)
        assert live["metadata"]["managedFields"]
        cached = inf.store.get(objects.ObjectKey(ns, name))
        assert cached is not None
        assert "managedFields" not in cached["metadata"]
        assert cached["spec"] == live["spec"]
        assert cached["metadata"]["uid"] == live["metadata"]["uid"]
