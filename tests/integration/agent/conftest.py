"""Fixtures for the agent against two real API servers.

`tenant_setup` makes what the manager's Tenant controller would: namespace `tenant-<name>` in the
management cluster (managed-by label), ServiceAccount + Role + RoleBinding `kubelb-ccm` with the
permissions upstream gives a tenant in its namespace, and a kubeconfig for that account. The
agent gets exactly those credentials. It also plays the manager's part in deleting a
LoadBalancer or a Route: removing the clean-up finalizer the agent creates them with.
`services_ns` is a tenant-cluster namespace for the test's Services; `agent` starts agents (in
process) confined to that namespace and to Nodes labelled for the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from kubelb.agent import common
from kubelb.api import finalizers, labels
from kubelb.app import agent as agent_app
from kubelb.kube import client, errors, objects, resources
from tests.support import cluster

ACCOUNT = "kubelb-ccm"
_KUBELB_KINDS = ["loadbalancers", "routes", "addresses", "syncsecrets"]
# What a tenant may do in its namespace of the management cluster (upstream's tenant Role).
TENANT_RULES: list[dict[str, Any]] = [
    {"apiGroups": ["kubelb.k8c.io"], "resources": _KUBELB_KINDS,
     "verbs": ["create", "update", "get", "list", "delete", "patch", "watch"]},
    {"apiGroups": ["kubelb.k8c.io"], "resources": [f"{k}/status" for k in _KUBELB_KINDS],
     "verbs": ["update", "get", "patch"]},
    {"apiGroups": ["kubelb.k8c.io"], "resources": ["tenantstates"],
     "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["kubelb.k8c.io"], "resources": ["tenantstates/status"], "verbs": ["get"]},
]  # fmt: skip


@pytest.fixture
async def mgmt(management_api) -> client.Client:
    """Admin on the management cluster (plays the manager and the operator)."""
    return client.Client(management_api, field_manager="kubelb-test")


@pytest.fixture
async def tkube(tenant_api) -> client.Client:
    """Admin on the tenant cluster (plays the user)."""
    return client.Client(tenant_api, field_manager="kubelb-test")


@dataclass(frozen=True)
class TenantSetup:
    tenant: common.Tenant
    kubeconfig: Path  # the restricted management kubeconfig issued to the agent
    node_label: str  # nodes of this test carry `node_label=true`

    @property
    def namespace(self) -> str:
        return self.tenant.namespace


async def grant_tenant_role(mgmt: client.Client, namespace: str, account: str) -> None:
    role = {"metadata": {"name": ACCOUNT, "namespace": namespace}, "rules": TENANT_RULES}
    with contextlib.suppress(errors.AlreadyExistsError):
        await mgmt.create(resources.ROLES, role)
    binding = {
        "metadata": {"name": account, "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": ACCOUNT},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
    }
    await mgmt.create(resources.ROLE_BINDINGS, binding)


@pytest.fixture
async def tenant_setup(
    management: cluster.Cluster, mgmt: client.Client, tmp_path: Path
) -> AsyncIterator[TenantSetup]:
    async with provision_tenant(management, mgmt, tmp_path) as setup:
        yield setup


@contextlib.asynccontextmanager
async def provision_tenant(
    management: cluster.Cluster, mgmt: client.Client, tmp_path: Path
) -> AsyncIterator[TenantSetup]:
    """A tenant namespace with the tenant's role and kubeconfig, removed afterwards."""
    token = secrets.token_hex(3)
    tenant = common.Tenant.from_cluster_name(f"agent-{token}")
    managed = {labels.MANAGED_BY: labels.MANAGED_BY_VALUE}
    await mgmt.create(resources.NAMESPACES, {"metadata": {"name": tenant.namespace,
                                                          "labels": managed}})  # fmt: skip
    try:
        await grant_tenant_role(mgmt, tenant.namespace, ACCOUNT)
        path = await management.service_account_kubeconfig(
            tenant.namespace, ACCOUNT, tmp_path / f"kubelb-{token}.kubeconfig"
        )
        cleanup = asyncio.create_task(_manager_cleanup(mgmt, tenant.namespace))
        try:
            yield TenantSetup(tenant, path, f"kubelb-test-{token}")
        finally:
            cleanup.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await cleanup
            await _release_finalized(mgmt, tenant.namespace, deleting_only=False)
    finally:
        await management.delete_namespace(tenant.namespace)


async def _release_finalized(mgmt: client.Client, namespace: str, *, deleting_only: bool) -> None:
    """Remove the manager's clean-up finalizer (the agent creates LoadBalancers and Routes with
    it)."""
    for resource in (resources.LOAD_BALANCERS, resources.ROUTES):
        for obj in (await mgmt.list(resource, namespace=namespace)).items:
            if finalizers.CLEANUP in objects.finalizers(obj) and (
                objects.is_deleting(obj) or not deleting_only
            ):
                kept = [f for f in objects.finalizers(obj) if f != finalizers.CLEANUP]
                version = objects.resource_version(obj)
                patch = {"metadata": {"finalizers": kept or None, "resourceVersion": version}}
                with contextlib.suppress(errors.NotFoundError, errors.ConflictError):
                    await mgmt.patch(resource, objects.name(obj), patch, namespace=namespace)


async def _manager_cleanup(mgmt: client.Client, namespace: str) -> None:
    """Plays the manager's part in deletion, which these tests run without: a LoadBalancer or
    Route being deleted loses the clean-up finalizer."""
    while True:
        await _release_finalized(mgmt, namespace, deleting_only=True)
        await asyncio.sleep(0.1)


# Kinds an agent puts its finalizer on (the Gateway API ones only where their CRDs are served).
_FINALIZED = (resources.SERVICES, resources.INGRESSES, resources.GATEWAYS,
              resources.HTTP_ROUTES, resources.GRPC_ROUTES, resources.SECRETS,
              resources.SYNC_SECRETS)  # fmt: skip


async def release_finalizers(tkube: client.Client, namespace: str) -> None:
    """Remove the finalizers an agent left, so the namespace can go."""
    for resource in _FINALIZED:
        try:
            listed = await tkube.list(resource, namespace=namespace)
        except errors.NotFoundError:  # kind not served
            continue
        for obj in listed.items:
            if objects.finalizers(obj):
                with contextlib.suppress(errors.NotFoundError):
                    await tkube.patch(resource, objects.name(obj),
                                      {"metadata": {"finalizers": None}},
                                      namespace=namespace)  # fmt: skip


@pytest.fixture
async def services_ns(tenant_namespace: str, tkube: client.Client) -> AsyncIterator[str]:
    """The test's Services (and L7 sources) live here; afterwards finalizers an agent left are
    removed so the namespace can go."""
    yield tenant_namespace
    await release_finalizers(tkube, tenant_namespace)


AgentFactory = Callable[..., AbstractAsyncContextManager[agent_app.Agent]]


@pytest.fixture
def agent(tenant: cluster.Cluster, tenant_setup: TenantSetup, services_ns: str) -> AgentFactory:
    """`async with agent(**settings) as a:` runs an agent for the block and stops it after."""
    base = agent_app.Settings(
        tenant=tenant_setup.tenant,
        kubeconfig=tenant.kubeconfig,
        kubelb_kubeconfig=tenant_setup.kubeconfig,
        metrics_addr="127.0.0.1:0",
        health_probe_bind_address="127.0.0.1:0",
        enable_leader_election=False,
        leader_election_namespace=services_ns,
        service_namespace=services_ns,
        node_label_selector=f"{tenant_setup.node_label}=true",
        kubeconfig_check_interval=0.5,
    )

    @contextlib.asynccontextmanager
    async def start(
        setup: TenantSetup | None = None, **overrides: Any
    ) -> AsyncIterator[agent_app.Agent]:
        if setup is not None:  # another tenant than `tenant_setup`
            overrides = {"tenant": setup.tenant, "kubelb_kubeconfig": setup.kubeconfig,
                         **overrides}  # fmt: skip
        running = await agent_app.Agent.open(replace(base, **overrides))
        task = asyncio.create_task(running.run(), name="agent-under-test")
        try:
            yield running
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return start
