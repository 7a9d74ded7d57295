"""The manager's SyncSecret controller on the real management API server, with the Tenant
controller and the tenant's issued kubeconfig: a SyncSecret the agent writes becomes Secret
`<uid>` beside it (data, type, labels, owner), follows its changes, reports its status, and goes
with it; the tenant still reads no Secret; a Tenant deleted while SyncSecrets carry
`kubelb.k8c.io/cleanup` finishes."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator

import pytest

from kubelb.kube import errors, informer, resources
from kubelb.manager import syncsecrets
from kubelb.observe import manager_metrics
from tests.integration.tenants.conftest import find, until

pytestmark = pytest.mark.integration

CLEANUP = "kubelb.k8c.io/cleanup"
SS = resources.SYNC_SECRETS


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.fixture
async def sync_controller(harness) -> AsyncIterator[None]:
    informers = informer.Informers(harness.kube)
    ctrl = syncsecrets.sync_secret_controller(informers, harness.writer, resync_period=None)
    tasks = [asyncio.create_task(informers.run()), asyncio.create_task(ctrl.run())]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_sync_secret_becomes_a_secret_the_tenant_cannot_read(harness, sync_controller):
    kube = harness.kube
    name = await harness.create_tenant()
    await harness.ready(name)
    ns = f"tenant-{name}"
    labels = {"kubelb.k8c.io/origin-name": "web-tls", "kubelb.k8c.io/origin-ns": "shop",
              "kubelb.k8c.io/managed-by": "kubelb"}  # fmt: skip
    before = manager_metrics.SYNC_SECRET_RECONCILES.labels(ns, "success")._value.get()
    async with harness.tenant_client(name) as agent:
        created = await agent.create(SS, {
            "metadata": {"name": "abc-uid", "labels": labels},
            "type": "kubernetes.io/tls",
            "data": {"tls.crt": b64("cert-1"), "tls.key": b64("key-1")},
        }, namespace=ns)  # fmt: skip
        uid = created["metadata"]["uid"]

        async def synced(data: dict[str, str]):
            secret = await find(kube, resources.SECRETS, uid, ns)
            ss = await kube.get(SS, "abc-uid", namespace=ns)
            status = ss.get("status") or {}
            ok = (secret is not None and secret.get("data") == data
                  and status.get("phase") == "Synced"
                  and status.get("observedGeneration") == ss["metadata"]["generation"])  # fmt: skip
            return (secret, ss) if ok else None

        secret, ss = await until(lambda: synced({"tls.crt": b64("cert-1"),
                                                 "tls.key": b64("key-1")}),
                                 what="the Secret and status Synced")  # fmt: skip
        assert secret["type"] == "kubernetes.io/tls"
        assert secret["metadata"]["labels"] == labels
        owner = secret["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"], owner["uid"]) == ("SyncSecret", "abc-uid", uid)
        assert CLEANUP in ss["metadata"]["finalizers"]
        condition = ss["status"]["conditions"][0]
        assert (condition["type"], condition["status"], condition["reason"]) == (
            "Synced", "True", "Synced")  # fmt: skip
        assert manager_metrics.SYNC_SECRET_RECONCILES.labels(ns, "success")._value.get() > before

        # The tenant writes its SyncSecret and still reads no Secret, this one included.
        ss["data"] = {"tls.crt": b64("cert-2"), "tls.key": b64("key-2")}
        await agent.replace(SS, ss)
        await until(lambda: synced({"tls.crt": b64("cert-2"), "tls.key": b64("key-2")}),
                    what="the changed data in the Secret")  # fmt: skip
        denied = {
            "get the synced Secret": agent.get(resources.SECRETS, uid, namespace=ns),
            "list Secrets": agent.list(resources.SECRETS, namespace=ns),
            "list Secrets cluster-wide": agent.list(resources.SECRETS),
            "create a Secret": agent.create(resources.SECRETS, {"metadata": {"name": "x"}},
                                            namespace=ns),
        }  # fmt: skip
        allowed = []
        for what, request in denied.items():
            try:
                await request
            except errors.ForbiddenError:
                continue
            allowed.append(what)
        assert allowed == []

        await agent.delete(SS, "abc-uid", namespace=ns)

        async def gone():
            return (await find(kube, SS, "abc-uid", ns) is None
                    and await find(kube, resources.SECRETS, uid, ns) is None)  # fmt: skip

        await until(gone, what="the SyncSecret and its Secret to be deleted")


async def test_tenant_deletion_finishes_with_finalized_sync_secrets(harness, sync_controller):
    kube = harness.kube
    name = await harness.create_tenant()
    await harness.ready(name)
    ns = f"tenant-{name}"
    # As an upstream agent leaves them: the finalizer already set, a Secret made from one.
    for ss_name in ("one", "two"):
        await kube.create(SS, {"metadata": {"name": ss_name, "finalizers": [CLEANUP]},
                               "data": {"k": b64(ss_name)}}, namespace=ns)  # fmt: skip

    async def secrets_made():
        items = (await kube.list(resources.SECRETS, namespace=ns)).items
        owners = [o["kind"] for s in items for o in s["metadata"].get("ownerReferences") or ()]
        return owners.count("SyncSecret") == 2

    await until(secrets_made, what="the two Secrets")
    await kube.delete(resources.TENANTS, name)

    async def tenant_gone():
        return await harness.tenant(name) is None

    await until(tenant_gone, what="the Tenant deletion to finish")
    for ss_name in ("one", "two"):
        assert await find(kube, SS, ss_name, ns) is None
