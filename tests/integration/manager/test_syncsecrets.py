"""The manager process with its SyncSecret controller: a SyncSecret becomes Secret `<uid>`; a
Tenant deleted while Routes and SyncSecrets carry `kubelb.k8c.io/cleanup` (as an upstream agent
leaves them, finalizer set at creation, and a Route the manager does not serve) finishes."""

from __future__ import annotations

import base64
import uuid

import pytest

from kubelb.kube import resources
from tests.integration.manager.helpers import eventually, free_port, get
from tests.integration.manager.test_routes import NODE_ADDRESS, ingress_route

pytestmark = pytest.mark.integration

CLEANUP = "kubelb.k8c.io/cleanup"


async def test_tenant_deletion_finishes_with_finalized_routes_and_sync_secrets(
    kube, managers, manager_settings
):
    name = f"ss{uuid.uuid4().hex[:8]}"
    ns = f"tenant-{name}"
    async with managers(manager_settings, envoy_deployer="process",
                        address_pool=("127.0.0.61",)):  # fmt: skip
        await kube.create(resources.TENANTS, {"metadata": {"name": name}})
        await eventually(lambda: get(kube, resources.NAMESPACES, "", ns), what="the namespace")

        async def settings_honoured() -> bool:
            tenant = await get(kube, resources.TENANTS, "", name)
            found = [c for c in ((tenant or {}).get("status") or {}).get("conditions") or ()
                     if c.get("type") == "SettingsApplied"]  # fmt: skip
            return bool(found) and found[0]["reason"] == "Honoured"

        # The process deployer reports on the Tenant what it honours (nothing asked: all of it).
        await eventually(settings_honoured, what="the Tenant's SettingsApplied condition")
        route = ingress_route(str(uuid.uuid4()), host="a.example",
                              node_port=free_port(NODE_ADDRESS))  # fmt: skip
        route["metadata"]["finalizers"] = [CLEANUP]
        await kube.create(resources.ROUTES, route, namespace=ns)
        # A Gateway other than `kubelb`: upstream's manager skips it, so does nothing serve it.
        other = ingress_route(str(uuid.uuid4()), host="b.example",
                              node_port=free_port(NODE_ADDRESS))  # fmt: skip
        other["metadata"]["finalizers"] = [CLEANUP]
        other["spec"]["source"]["kubernetes"]["resource"] = {
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "not-kubelb", "namespace": "default"},
            "spec": {"gatewayClassName": "kubelb", "listeners": [
                {"name": "http", "port": 80, "protocol": "HTTP"}]},
        }  # fmt: skip
        await kube.create(resources.ROUTES, other, namespace=ns)
        ss = await kube.create(resources.SYNC_SECRETS, {
            "metadata": {"name": str(uuid.uuid4()), "finalizers": [CLEANUP],
                         "labels": {"kubelb.k8c.io/origin-name": "tls",
                                    "kubelb.k8c.io/origin-ns": "default"}},
            "data": {"k": base64.b64encode(b"v").decode()},
        }, namespace=ns)  # fmt: skip

        async def synced():
            secret = await get(kube, resources.SECRETS, ns, ss["metadata"]["uid"])
            current = await get(kube, resources.SYNC_SECRETS, ns, ss["metadata"]["name"])
            phase = ((current or {}).get("status") or {}).get("phase")
            return secret is not None and phase == "Synced"

        await eventually(synced, what="the SyncSecret's Secret and status")
        await kube.delete(resources.TENANTS, name)

        async def tenant_gone():
            return await get(kube, resources.TENANTS, "", name) is None

        await eventually(tenant_gone, what="the Tenant drained and deleted")
        for resource, obj_name in ((resources.ROUTES, route["metadata"]["name"]),
                                   (resources.ROUTES, other["metadata"]["name"]),
                                   (resources.SYNC_SECRETS, ss["metadata"]["name"])):  # fmt: skip
            assert await get(kube, resource, ns, obj_name) is None
