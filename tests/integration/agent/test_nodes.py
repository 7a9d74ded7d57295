"""The agent's node controller on two real API servers: Ready nodes -> Addresses/default."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator

import pytest

from kubelb.agent import nodes
from kubelb.kube import objects, resources
from tests.integration.agent.helpers import find, idle, wait_for
from tests.support import nodes as support_nodes

pytestmark = pytest.mark.integration


@pytest.fixture
async def node_names(tenant) -> AsyncIterator[list[str]]:
    """Names for this test's nodes; every one is deleted afterwards."""
    token = secrets.token_hex(3)
    names = [f"agent-{token}-{i}" for i in range(4)]
    yield names
    for name in names:
        with contextlib.suppress(Exception):
            await tenant.delete_node(name)


async def addresses_of(mgmt, namespace):
    found = await find(mgmt, resources.ADDRESSES, namespace, "default")
    return objects.lookup(found, "spec.addresses") if found else None


async def wait_addresses(mgmt, namespace, expected):
    async def check():
        return await addresses_of(mgmt, namespace) == expected

    await wait_for(check, what=f"Addresses/default = {expected}")


async def test_ready_nodes_become_addresses(agent, tenant, tenant_setup, node_names, mgmt):
    label = {tenant_setup.node_label: "true"}
    a, b, c, unlabelled = node_names
    ns = tenant_setup.namespace
    await tenant.create_node(a, addresses=[("ExternalIP", "127.0.0.21"),
                                           ("InternalIP", "10.0.0.21")], labels=label)  # fmt: skip
    await tenant.create_node(b, addresses=[("ExternalIP", "127.0.0.3")], labels=label)
    await tenant.create_node(c, addresses=[("ExternalIP", "127.0.0.23")], labels=label,
                             ready=False)  # fmt: skip
    # Another test's node (not selected) never shows up.
    await tenant.create_node(unlabelled, addresses=[("ExternalIP", "127.0.0.99")])
    async with agent() as running:
        # Byte order: .3 before .21.
        await wait_addresses(mgmt, ns, [{"ip": "127.0.0.3"}, {"ip": "127.0.0.21"}])
        await tenant.set_node_ready(c, True)
        await wait_addresses(mgmt, ns, [{"ip": "127.0.0.3"}, {"ip": "127.0.0.21"},
                                        {"ip": "127.0.0.23"}])  # fmt: skip
        await tenant.set_node_ready(a, False)
        await wait_addresses(mgmt, ns, [{"ip": "127.0.0.3"}, {"ip": "127.0.0.23"}])
        await tenant.set_node_addresses(b, [("ExternalIP", "127.0.0.33")])
        await wait_addresses(mgmt, ns, [{"ip": "127.0.0.23"}, {"ip": "127.0.0.33"}])
        await tenant.delete_node(c)
        await wait_addresses(mgmt, ns, [{"ip": "127.0.0.33"}])

        # A node change that is not about readiness or addresses writes nothing.
        await idle(running.node_controller, what="the node controller idle")
        writes = running.node_reconciler.writes
        live = await find(mgmt, resources.ADDRESSES, ns, "default")
        assert live is not None
        before = running.node_controller.reconciles
        await tenant.set_node_ready(b, True)  # same status: a heartbeat, nothing else
        await tenant.set_node_addresses(a, [("ExternalIP", "127.0.0.41")])  # a NotReady node

        async def reconciled():
            return running.node_controller.reconciles > before

        await wait_for(reconciled, what="a node reconcile")
        again = await find(mgmt, resources.ADDRESSES, ns, "default")
        assert again is not None
        assert objects.resource_version(again) == objects.resource_version(live)
        assert running.node_reconciler.writes == writes

        # Deleting Addresses on the management side is repaired.
        await mgmt.delete(resources.ADDRESSES, "default", namespace=ns)
        await wait_addresses(mgmt, ns, [{"ip": "127.0.0.33"}])


async def test_node_with_unknown_readiness_leaves_the_addresses(
    agent, tenant, tenant_setup, node_names, mgmt
):
    """A silent kubelet: the node lifecycle controller sets Ready to Unknown. Its node must
    leave the endpoints as a NotReady one does, and come back when it reports Ready again."""
    label = {tenant_setup.node_label: "true"}
    a, b, *_ = node_names
    ns = tenant_setup.namespace
    await tenant.create_node(a, addresses=[("ExternalIP", "127.0.0.51")], labels=label)
    await tenant.create_node(b, addresses=[("ExternalIP", "127.0.0.52")], labels=label)
    async with agent():
        await wait_addresses(mgmt, ns, [{"ip": "127.0.0.51"}, {"ip": "127.0.0.52"}])
        await tenant.set_node_ready(a, support_nodes.UNKNOWN)
        await wait_addresses(mgmt, ns, [{"ip": "127.0.0.52"}])
        await tenant.set_node_ready(a, True)
        await wait_addresses(mgmt, ns, [{"ip": "127.0.0.51"}, {"ip": "127.0.0.52"}])


@pytest.mark.parametrize(
    ("address_type", "expected"),
    [
        (nodes.AddressType.INTERNAL_IP, [{"ip": "10.0.0.31"}, {"ip": "10.0.0.32"}]),
        (nodes.AddressType.HOSTNAME, [{"ip": "127.0.0.32"}, {"hostname": "worker-31"}]),
    ],
)
async def test_address_types(agent, tenant, tenant_setup, node_names, mgmt, address_type, expected):
    label = {tenant_setup.node_label: "true"}
    first = [("InternalIP", "10.0.0.31"), ("ExternalIP", "127.0.0.31"), ("Hostname", "worker-31")]
    second = [("InternalIP", "10.0.0.32"), ("Hostname", "127.0.0.32")]
    await tenant.create_node(node_names[0], labels=label, addresses=first)
    await tenant.create_node(node_names[1], labels=label, addresses=second)
    async with agent(node_address_type=address_type):
        await wait_addresses(mgmt, tenant_setup.namespace, expected)


async def test_no_usable_address_writes_nothing_until_there_is_one(
    agent, tenant, tenant_setup, node_names, mgmt
):
    label = {tenant_setup.node_label: "true"}
    await tenant.create_node(node_names[0], labels=label, addresses=[("InternalIP", "10.0.0.5")])
    async with agent() as running:

        async def tried():
            return running.node_controller.reconciles >= 1

        await wait_for(tried, what="a node reconcile")
        assert await addresses_of(mgmt, tenant_setup.namespace) is None
        await tenant.set_node_addresses(node_names[0], [("ExternalIP", "127.0.0.5")])
        await wait_addresses(mgmt, tenant_setup.namespace, [{"ip": "127.0.0.5"}])
