"""The manager with the process deployer on the real API server and real Envoy processes: an LB
gets an address from the pool, Envoy serves it to a backend standing in for a NodePort, the
assignment and ports survive a manager restart, and deleting the LB cleans everything up."""

from __future__ import annotations

import socket

import pytest

from kubelb.api import loadbalancer as api_lb, ports as api_ports
from kubelb.app import manager as app_manager
from kubelb.infra import process as process_infra
from kubelb.kube import client, objects, resources
from kubelb.manager import effective as tenant_effective, lbservice
from tests.integration.manager.helpers import (
    addresses,
    echo_server,
    eventually,
    exchange,
    free_port,
    get,
    ingress_ips,
    load_balancer,
    ready,
    settled,
)

pytestmark = pytest.mark.integration

POOL_ADDRESS = "127.0.0.41"
NODE_ADDRESS = "127.0.0.21"


async def test_served_restarted_and_cleaned_up(kube, tenants, managers, manager_settings):
    ns = await tenants()
    node_port, lb_port = free_port(NODE_ADDRESS), free_port(POOL_ADDRESS)
    settings = {"envoy_deployer": "process", "address_pool": (POOL_ADDRESS,)}
    await kube.create(resources.ADDRESSES, addresses(NODE_ADDRESS), namespace=ns)
    web = load_balancer("web", ports=[("http", lb_port, node_port)])
    await kube.create(resources.LOAD_BALANCERS, web, namespace=ns)

    async def served_lb():
        lb = await get(kube, resources.LOAD_BALANCERS, ns, "web")
        condition = ready(lb)
        return lb if condition and condition["status"] == "True" else None

    async with echo_server(NODE_ADDRESS, node_port, b"node:"):
        async with managers(manager_settings, **settings) as manager:
            lb = await eventually(served_lb, what="LoadBalancer Ready")
            assert ingress_ips(lb) == [POOL_ADDRESS]
            answer = await eventually(lambda: exchange(POOL_ADDRESS, lb_port, b"hello"),
                                      what="traffic through Envoy")  # fmt: skip
            assert answer == b"node:hello"
            svc = await get(kube, resources.SERVICES, ns, "envoy-web")
            assert ingress_ips(svc) == [POOL_ADDRESS]  # the manager wrote it, as MetalLB would
            (status_port,) = lb["status"]["service"]["ports"]
            assert status_port["upstreamTargetPort"] == node_port
            assert svc["spec"]["ports"][0]["targetPort"] == status_port["targetPort"]
            assert isinstance(manager.infra, process_infra.ProcessInfra)
            assert manager.infra.ready(ns)
        before = lb["status"]

        # A new manager: nothing moves, nothing is rewritten, and traffic flows again.
        async with managers(manager_settings, **settings) as manager:
            answer = await eventually(lambda: exchange(POOL_ADDRESS, lb_port, b"again"),
                                      what="traffic after a restart")  # fmt: skip
            assert answer == b"node:again"
            lb = await eventually(served_lb, what="LoadBalancer Ready after restart")
            assert lb["status"]["service"] == before["service"]
            assert ingress_ips(lb) == [POOL_ADDRESS]
            assert isinstance(manager.infra, process_infra.ProcessInfra)
            assert manager.infra.addresses.passes >= 1

            await kube.delete(resources.LOAD_BALANCERS, "web", namespace=ns)
            await eventually(lambda: _gone(kube, ns), what="LB and its Service deleted")
            await eventually(lambda: _async(not manager.infra.ready(ns)),
                             what="the tenant's Envoy stopped")  # fmt: skip
            assert manager.cache.get_snapshot(ns) is None

            async def closed():
                return await exchange(POOL_ADDRESS, lb_port, b"x") is None

            await eventually(closed, what="the listener gone once Envoy drained")


async def test_pool_conflict_is_reported(kube, tenants, managers, manager_settings):
    """Two tenants want the same port and the pool has one address: the second one waits,
    with a reason, and gets the address once the first lets it go."""
    first, second = await tenants(), await tenants()
    port = free_port(POOL_ADDRESS)
    for ns in (first, second):
        await kube.create(resources.ADDRESSES, addresses(NODE_ADDRESS), namespace=ns)
    await kube.create(resources.LOAD_BALANCERS, load_balancer("a", ports=[("p", port, 30001)]),
                      namespace=first)  # fmt: skip
    settings = {"envoy_deployer": "process", "address_pool": (POOL_ADDRESS,)}
    async with managers(manager_settings, **settings):

        async def first_placed():
            return ingress_ips(await get(kube, resources.LOAD_BALANCERS, first, "a"))

        await eventually(first_placed, what="first LB placed")
        b = load_balancer("b", ports=[("p", port, 30001)])
        await kube.create(resources.LOAD_BALANCERS, b, namespace=second)

        async def second_reason():
            condition = ready(await get(kube, resources.LOAD_BALANCERS, second, "b"))
            return condition and condition["reason"] == "PortConflict" and condition

        condition = await eventually(second_reason, what="PortConflict on the second LB")
        assert f"{first}/envoy-a" in condition["message"]
        await kube.delete(resources.LOAD_BALANCERS, "a", namespace=first)

        async def second_placed():
            return ingress_ips(await get(kube, resources.LOAD_BALANCERS, second, "b"))

        assert await eventually(second_placed, what="second LB placed") == [POOL_ADDRESS]


async def test_load_balancer_without_type_load_balancer_says_why_it_is_not_served(
    kube, tenants, managers, manager_settings
):
    """Nothing serves a ClusterIP LoadBalancer in process mode (the pool places type
    LoadBalancer only): Ready says so instead of claiming to serve it, and turns True once the
    type is LoadBalancer and traffic flows."""
    ns = await tenants()
    node_port, lb_port = free_port(NODE_ADDRESS), free_port(POOL_ADDRESS)
    await kube.create(resources.ADDRESSES, addresses(NODE_ADDRESS), namespace=ns)
    untyped = load_balancer("untyped", ports=[("p", lb_port, node_port)])
    del untyped["spec"]["type"]  # the CRD's default: ClusterIP
    await kube.create(resources.LOAD_BALANCERS, untyped, namespace=ns)
    settings = {"envoy_deployer": "process", "address_pool": (POOL_ADDRESS,)}

    async def condition(reason):
        found = ready(await get(kube, resources.LOAD_BALANCERS, ns, "untyped"))
        return found if found and found["reason"] == reason else None

    async with (
        echo_server(NODE_ADDRESS, node_port, b"node:"),
        managers(manager_settings, **settings),
    ):
        found = await eventually(lambda: condition("ServiceTypeNotServed"),
                                 what="Ready=False ServiceTypeNotServed")  # fmt: skip
        assert found["status"] == "False"
        assert "ClusterIP" in found["message"]
        await kube.patch(resources.LOAD_BALANCERS, "untyped",
                         {"spec": {"type": "LoadBalancer"}}, namespace=ns)  # fmt: skip
        found = await eventually(lambda: condition("Reconciled"), what="Ready=True")
        assert found["status"] == "True"
        answer = await eventually(lambda: exchange(POOL_ADDRESS, lb_port, b"hi"),
                                  what="traffic once it is type LoadBalancer")  # fmt: skip
        assert answer == b"node:hi"


async def test_a_rejected_configuration_is_not_reported_served(
    kube, tenants, managers, manager_settings
):
    """Envoy NACKs a listener it cannot bind (another process holds the port): that
    LoadBalancer says RejectedByDataplane with Envoy's error while its neighbour stays Ready,
    and once the input Envoy rejected is gone (a free port) it is Ready and lastNack cleared."""
    ns = await tenants()
    node_port = free_port(NODE_ADDRESS)
    good_port, held_port, free = (free_port(POOL_ADDRESS) for _ in range(3))
    await kube.create(resources.ADDRESSES, addresses(NODE_ADDRESS), namespace=ns)
    await kube.create(resources.LOAD_BALANCERS,
                      load_balancer("good", ports=[("p", good_port, node_port)]),
                      namespace=ns)  # fmt: skip
    settings = {"envoy_deployer": "process", "address_pool": (POOL_ADDRESS,)}

    async def condition(name, reason):
        found = ready(await get(kube, resources.LOAD_BALANCERS, ns, name))
        return found if found and found["reason"] == reason else None

    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind((POOL_ADDRESS, held_port))
    holder.listen()
    try:
        async with (
            echo_server(NODE_ADDRESS, node_port, b"node:"),
            managers(manager_settings, **settings) as manager,
        ):
            await eventually(lambda: condition("good", "Reconciled"), what="good Ready")
            clash = load_balancer("clash", ports=[("p", held_port, node_port)])
            await kube.create(resources.LOAD_BALANCERS, clash, namespace=ns)
            found = await eventually(lambda: condition("clash", "RejectedByDataplane"),
                                     what="clash RejectedByDataplane")  # fmt: skip
            assert found["status"] == "False"
            nack = manager.cache.rejection(ns)
            assert nack is not None
            assert nack.error_detail in found["message"]
            await settled(manager, ns)  # the NACK reconciled every LoadBalancer of the tenant
            assert await condition("good", "Reconciled"), "the neighbour is not concerned"
            assert await exchange(POOL_ADDRESS, good_port, b"still") == b"node:still"

            await kube.patch(resources.LOAD_BALANCERS, "clash",
                             {"spec": {"ports": [{"name": "p", "port": free,
                                                  "protocol": "TCP"}]}},
                             namespace=ns)  # fmt: skip
            await eventually(lambda: condition("clash", "Reconciled"),
                             what="clash Ready once Envoy accepts")  # fmt: skip
            assert manager.cache.rejection(ns) is None
            assert manager.cache.status(ns).last_nack is None
            answer = await eventually(lambda: exchange(POOL_ADDRESS, free, b"moved"),
                                      what="traffic on the free port")  # fmt: skip
            assert answer == b"node:moved"
    finally:
        holder.close()


async def test_selector_of_an_earlier_manager_is_dropped_once(
    kube, management_api, tenants, managers, manager_settings
):
    """A Service that an earlier manager created with the Envoy pod selector (which makes
    kube-controller-manager write an Endpoints and an EndpointSlice per Service, for pods that
    never exist in process mode) loses the selector in one update and keeps serving."""
    ns = await tenants()
    node_port, lb_port = free_port(NODE_ADDRESS), free_port(POOL_ADDRESS)
    await kube.create(resources.ADDRESSES, addresses(NODE_ADDRESS), namespace=ns)
    raw = await kube.create(resources.LOAD_BALANCERS,
                            load_balancer("web", ports=[("http", lb_port, node_port)]),
                            namespace=ns)  # fmt: skip
    lb = api_lb.LoadBalancer.model_validate(raw)
    effective = tenant_effective.resolve(None, None)
    listen = {api_ports.port_key(port): 10000 for port in lb.spec.ports}
    old = lbservice.desired_service(lb, listen, effective, None, node_ports=False)
    assert old["spec"]["selector"] == lbservice.envoy_selector(ns)
    old["metadata"]["ownerReferences"] = [objects.owner_reference(raw)]
    earlier = client.Client(management_api, field_manager=app_manager.FIELD_MANAGER)
    await earlier.apply(resources.SERVICES, old)

    async def slices():
        found = await kube.list(resources.ENDPOINT_SLICES, namespace=ns,
                                label_selector="kubernetes.io/service-name=envoy-web")  # fmt: skip
        return found.items

    await eventually(slices, what="kube-controller-manager's EndpointSlice for the selector")
    process = {"envoy_deployer": "process", "address_pool": (POOL_ADDRESS,)}
    async with (
        echo_server(NODE_ADDRESS, node_port, b"node:"),
        managers(manager_settings, **process) as manager,
    ):

        async def served():
            condition = ready(await get(kube, resources.LOAD_BALANCERS, ns, "web"))
            return condition and condition["status"] == "True"

        await eventually(served, what="LoadBalancer Ready")
        answer = await eventually(lambda: exchange(POOL_ADDRESS, lb_port, b"hello"),
                                  what="traffic through Envoy")  # fmt: skip
        assert answer == b"node:hello"
        svc = await get(kube, resources.SERVICES, ns, "envoy-web")
        assert "selector" not in svc["spec"]

        # Settled: reconciling again writes nothing (the Service and the status are skipped).
        # Counted in this namespace: the API server is shared with other tests' leftovers.
        await settled(manager, ns)
        writes, skipped = manager.writer.writes_in[ns], manager.writer.skipped_in[ns]
        manager.lb_controller.enqueue(objects.ObjectKey(ns, "web"))
        await eventually(lambda: _async(manager.writer.skipped_in[ns] >= skipped + 2),
                         what="the reconcile that writes nothing")  # fmt: skip
        assert manager.writer.writes_in[ns] == writes


async def _gone(kube, ns):
    lb = await get(kube, resources.LOAD_BALANCERS, ns, "web")
    svc = await get(kube, resources.SERVICES, ns, "envoy-web")
    return lb is None and svc is None


async def _async(value):
    return value
