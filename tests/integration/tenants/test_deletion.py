"""Tenant deletion drains the tenant's LoadBalancers and SyncSecrets first (their finalizers belong
to other controllers, removed here by hand), then removes its credentials, RBAC and namespace;
the issued kubeconfig stops working. A Tenant recreated meanwhile waits for the old namespace."""

from __future__ import annotations

import pytest

from kubelb.kube import errors, objects, resources
from tests.integration.kube.helpers import load_balancer
from tests.integration.tenants.conftest import find, until

pytestmark = pytest.mark.integration

CLEANUP = "kubelb.k8c.io/cleanup"
HOLD = "test.kubelb.k8c.io/hold"


async def test_deletion_drains_then_removes_everything(harness):
    kube = harness.kube
    name = await harness.create_tenant()
    await harness.ready(name)
    ns = f"tenant-{name}"
    held = [
        (resources.LOAD_BALANCERS, {**load_balancer("lb"), "metadata": {
            "name": "lb", "finalizers": [CLEANUP]}}),
        (resources.SYNC_SECRETS, {"metadata": {"name": "ss", "finalizers": [CLEANUP]},
                                  "data": {}}),
    ]  # fmt: skip
    for resource, body in held:
        await kube.create(resource, body, namespace=ns)
    # Keeps the namespace Terminating after the Tenant is gone, until the end of the test.
    await kube.create(resources.CONFIG_MAPS, {"metadata": {"name": "hold",
                      "finalizers": [HOLD]}}, namespace=ns)  # fmt: skip

    async with harness.tenant_client(name) as agent:
        await agent.list(resources.LOAD_BALANCERS, namespace=ns)  # the kubeconfig works
        await kube.delete(resources.TENANTS, name)

        async def waiting():
            tenant = await harness.tenant(name)
            status = (tenant or {}).get("status") or {}
            message = (status.get("conditions") or [{}])[0].get("message", "")
            return status if status.get("phase") == "Terminating" and "waiting for 2" in message \
                else None  # fmt: skip

        status = await until(waiting, what="Terminating, waiting for the LoadBalancers")
        assert status["conditions"][0]["reason"] == "Terminating"
        for resource, body in held:
            obj = await kube.get(resource, body["metadata"]["name"], namespace=ns)
            assert objects.is_deleting(obj)
        # Nothing else goes while they remain.
        namespace = await kube.get(resources.NAMESPACES, ns)
        assert not objects.is_deleting(namespace)
        assert await find(kube, resources.SERVICE_ACCOUNTS, "kubelb-ccm", ns) is not None
        assert await find(kube, resources.SECRETS, "kubelb-ccm-kubeconfig", ns) is not None
        await agent.list(resources.LOAD_BALANCERS, namespace=ns)

        # The LoadBalancer controller would now remove its finalizers.
        for resource, body in held:
            await kube.patch(resource, body["metadata"]["name"],
                             {"metadata": {"finalizers": None}}, namespace=ns)  # fmt: skip

        async def tenant_gone():
            return await harness.tenant(name) is None

        await until(tenant_gone, what="the Tenant to be deleted")
        for resource, obj_name in [
            (resources.SERVICE_ACCOUNTS, "kubelb-ccm"),
            (resources.ROLES, "kubelb-ccm"),
            (resources.ROLE_BINDINGS, "kubelb-ccm"),
            (resources.SECRETS, "kubelb-ccm-kubeconfig"),
        ]:
            assert await find(kube, resource, obj_name, ns) is None, resource.kind

        # Deleting the ServiceAccount revokes the issued token (once the API server's cache of
        # ServiceAccounts has seen it; until then the deleted Role already denies everything).
        async def revoked():
            try:
                await agent.list(resources.LOAD_BALANCERS, namespace=ns)
            except errors.UnauthorizedError:
                return True
            except errors.ForbiddenError:
                return False
            raise AssertionError("the deleted tenant's kubeconfig still works")

        await until(revoked, what="the token to be rejected")

    namespace = await kube.get(resources.NAMESPACES, ns)
    assert objects.is_deleting(namespace)

    # Recreated while its old namespace is still being deleted: Pending, with the reason.
    await kube.create(resources.TENANTS, {"metadata": {"name": name}})

    async def pending():
        status = ((await harness.tenant(name)) or {}).get("status") or {}
        return status if status.get("phase") == "Pending" else None

    status = await until(pending, what="Pending while the old namespace is deleted")
    assert "still being deleted" in status["conditions"][0]["message"]
    assert status["conditions"][0]["status"] == "False"
    # Ready once the namespace controller has finished, with a fresh working kubeconfig.
    await kube.patch(resources.CONFIG_MAPS, "hold", {"metadata": {"finalizers": None}},
                     namespace=ns)  # fmt: skip
    await harness.ready(name)
    namespace = await kube.get(resources.NAMESPACES, ns)
    assert not objects.is_deleting(namespace)
    async with harness.tenant_client(name) as agent:
        await agent.list(resources.LOAD_BALANCERS, namespace=ns)
