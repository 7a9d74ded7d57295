"""Fixtures for the end-to-end tests: three real API servers and KubeLB run as processes.

`e2e_plane` (session) is this suite's own control plane: `management`, `tenant-a` and `tenant-b`.
The agents watch every Node and Service of their tenant cluster, so the e2e tenants get clusters
no other test writes to. `stack` (session) is KubeLB as an operator runs it: the manager
(`--envoy-deployer=process`, addresses from `POOL`), Tenants `alpha` and `beta` created in the
management cluster, and one agent per tenant cluster started with the kubeconfig that the
manager issued for its tenant, so each agent has exactly its tenant's restricted credentials.
Tenant "nodes" are Node objects with InternalIPs 127.0.0.2x (`NODES`); tests stand in for the
NodePorts with backends on those addresses (`tests.e2e.backends`).

Per test: admin clients for each cluster in the test's loop, and a fresh tenant-cluster namespace
(`shop`) deleted afterwards (the agent then cleans up what its Services made).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kubelb.kube import client, resources
from kubelb.localcluster import controlplane
from tests.e2e import stack as stack_mod
from tests.e2e.helpers import find, until
from tests.kube_fixtures import require_binaries, run_in_private_loop
from tests.support import cluster

POOL = ("127.0.0.71", "127.0.0.72", "127.0.0.73")
NODES = {
    "alpha": {"node-a1": "127.0.0.25", "node-a2": "127.0.0.26", "node-a3": "127.0.0.27"},
    "beta": {"node-b1": "127.0.0.28"},
}
CLUSTERS = {"alpha": "tenant-a", "beta": "tenant-b"}
E2E_CLUSTERS = (
    # No kubelet runs, so the Kubernetes-deployer test reports the Envoy pods ready itself; the
    # Deployment controller would overwrite that status with its own count of (no) pods.
    controlplane.ClusterSpec(
        name="management",
        service_cidr="10.96.0.0/16",
        disabled_controllers=("deployment-controller",),
    ),
    controlplane.ClusterSpec(name="tenant-a", service_cidr="10.97.0.0/16"),
    controlplane.ClusterSpec(name="tenant-b", service_cidr="10.98.0.0/16"),
)


@dataclass
class TenantSide:
    name: str
    cluster: cluster.Cluster
    nodes: dict[str, str]  # node name -> InternalIP
    kubeconfig: Path  # issued by the manager
    agent: stack_mod.KubelbProcess

    @property
    def namespace(self) -> str:
        return f"tenant-{self.name}"


@dataclass
class Stack:
    management: cluster.Cluster
    manager: stack_mod.KubelbProcess
    tenants: dict[str, TenantSide]
    workdir: Path


# The process-mode stack while it runs: a test that needs another manager pauses it, since two
# managers on one management cluster would both reconcile every tenant.
ACTIVE: list[Stack] = []


@pytest.fixture(scope="session")
def e2e_plane() -> Iterator[controlplane.ControlPlane]:
    require_binaries()
    plane = controlplane.ControlPlane(clusters=E2E_CLUSTERS)
    try:
        run_in_private_loop(plane.start())
        yield plane
    finally:
        run_in_private_loop(plane.stop())


@pytest.fixture(scope="session")
def management(e2e_plane: controlplane.ControlPlane) -> cluster.Cluster:
    """Overrides the shared fixture inside tests/e2e: the suite's own management cluster."""
    return cluster.Cluster.of(e2e_plane.clusters["management"])


@pytest.fixture(scope="session")
def e2e_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="session")
def stack(
    e2e_plane: controlplane.ControlPlane, management: cluster.Cluster, e2e_workdir: Path
) -> Iterator[Stack]:
    manager = stack_mod.manager_process(management, e2e_workdir, deployer="process", pool=POOL)
    built = Stack(management, manager, {}, e2e_workdir)
    try:
        run_in_private_loop(_start(built, e2e_plane))
        ACTIVE.append(built)
        yield built
    finally:
        with contextlib.suppress(ValueError):
            ACTIVE.remove(built)
        run_in_private_loop(_stop(built))


async def _start(built: Stack, plane: controlplane.ControlPlane) -> None:
    async with built.management.api_client() as api:
        kube = client.Client(api, field_manager="kubelb-e2e")
        await stack_mod.write_manager_identity(built.management, built.workdir)
        await built.manager.start()
        await asyncio.gather(*(_start_tenant(built, kube, plane, name) for name in CLUSTERS))


async def _start_tenant(
    built: Stack, kube: client.Client, plane: controlplane.ControlPlane, name: str
) -> None:
    tenant_cluster = cluster.Cluster.of(plane.clusters[CLUSTERS[name]])
    path = await stack_mod.onboard_tenant(kube, name, built.workdir / f"{name}.kubeconfig")
    for node, address in NODES[name].items():
        await tenant_cluster.create_node(node, addresses=[("InternalIP", address)])
    agent = stack_mod.agent_process(name, tenant_cluster, path, built.workdir)
    side = TenantSide(name, tenant_cluster, dict(NODES[name]), path, agent)
    built.tenants[name] = side
    await agent.start()
    wanted = sorted(NODES[name].values())

    async def addresses_written() -> bool:
        found = await find(kube, resources.ADDRESSES, "default", side.namespace)
        ips = [a["ip"] for a in ((found or {}).get("spec") or {}).get("addresses") or ()]
        return ips == wanted

    await until(addresses_written, what=f"Addresses of tenant {name}")


async def _stop(built: Stack) -> None:
    codes = {}
    for side in built.tenants.values():
        codes[side.agent.name] = await side.agent.stop()
    codes[built.manager.name] = await built.manager.stop()
    failed = {name: code for name, code in codes.items() if code not in (0, None)}
    assert not failed, f"kubelb processes exited badly: {failed}"


@contextlib.asynccontextmanager
async def _admin(on: cluster.Cluster) -> AsyncIterator[client.Client]:
    async with on.api_client() as api:
        yield client.Client(api, field_manager="kubelb-e2e")


@pytest.fixture
async def mgmt(management: cluster.Cluster) -> AsyncIterator[client.Client]:
    """Admin on the management cluster (the operator)."""
    async with _admin(management) as kube:
        yield kube


@pytest.fixture
async def kube_a(stack: Stack) -> AsyncIterator[client.Client]:
    """Admin on tenant alpha's cluster (the tenant's user)."""
    async with _admin(stack.tenants["alpha"].cluster) as kube:
        yield kube


@pytest.fixture
async def kube_b(stack: Stack) -> AsyncIterator[client.Client]:
    async with _admin(stack.tenants["beta"].cluster) as kube:
        yield kube


@pytest.fixture
async def shop(stack: Stack, kube_a: client.Client, kube_b: client.Client) -> AsyncIterator[str]:
    """A fresh namespace of the same name in both tenant clusters, deleted afterwards."""
    name = f"shop-{secrets.token_hex(3)}"
    for kube in (kube_a, kube_b):
        await kube.create(resources.NAMESPACES, {"metadata": {"name": name}})
    yield name
    for kube in (kube_a, kube_b):
        await kube.delete(resources.NAMESPACES, name)
