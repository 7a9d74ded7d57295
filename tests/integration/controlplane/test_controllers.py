"""kube-controller-manager runs: namespaces finish deleting, the garbage collector removes
dependents, and new namespaces get their `default` ServiceAccount. Without the controllers each
of these waits forever, so these tests fail rather than pass by accident."""

from __future__ import annotations

import asyncio

import pytest
from kubernetes_asyncio import client

pytestmark = pytest.mark.integration

DEADLINE_SECONDS = 120


async def _gone(read) -> None:
    async with asyncio.timeout(DEADLINE_SECONDS):
        while True:
            try:
                await read()
            except client.ApiException as exc:
                if exc.status == 404:
                    return
                raise
            await asyncio.sleep(0.2)


async def test_namespace_deletion_completes(management, management_api):
    core = client.CoreV1Api(management_api)
    name = await management.create_namespace("doomed")
    await core.create_namespaced_config_map(
        name, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="content"))
    )
    await management.delete_namespace(name)
    phase = (await core.read_namespace(name)).status.phase
    assert phase == "Terminating"
    await _gone(lambda: core.read_namespace(name))


async def test_garbage_collector_deletes_dependents(tenant_api, tenant_namespace):
    core = client.CoreV1Api(tenant_api)
    owner = await core.create_namespaced_config_map(
        tenant_namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"))
    )
    reference = client.V1OwnerReference(
        api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid
    )
    await core.create_namespaced_config_map(
        tenant_namespace,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="dependent", owner_references=[reference])
        ),
    )
    await core.delete_namespaced_config_map("owner", tenant_namespace)
    await _gone(lambda: core.read_namespaced_config_map("dependent", tenant_namespace))


async def test_new_namespace_gets_default_service_account(tenant, tenant_api, tenant_namespace):
    core = client.CoreV1Api(tenant_api)
    async with asyncio.timeout(DEADLINE_SECONDS):
        while True:
            accounts = await core.list_namespaced_service_account(tenant_namespace)
            if "default" in {a.metadata.name for a in accounts.items}:
                break
            await asyncio.sleep(0.2)
