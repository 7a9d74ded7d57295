"""What a burst of Routes costs the manager in API writes, on the real API server with real
Envoy processes: Routes created as kubelb's agent creates them (by its own mapping, the
manager's clean-up finalizer already set) cost the manager one status write each and no
finalizer write, and none meets a conflict; the Gateway's status, whose attachedRoutes grows
with the burst, is the only other write (each of its writes counted from a watch)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from kubelb.agent import routemapping
from kubelb.api import finalizers
from kubelb.app import manager as app_manager
from kubelb.kube import client, objects, resources
from tests.integration.manager.helpers import addresses, eventually, free_port, get, settled
from tests.integration.manager.test_routes import NODE_ADDRESS, applied

pytestmark = pytest.mark.integration

POOL_ADDRESS = "127.0.0.56"
BURST = 6


def gateway_source(port: int) -> dict[str, Any]:
    return {
        "metadata": {"name": "kubelb", "namespace": "default", "uid": str(uuid.uuid4())},
        "spec": {"gatewayClassName": "kubelb",
                 "listeners": [{"name": "web", "port": port, "protocol": "HTTP"}]},
    }  # fmt: skip


def http_route_source(index: int) -> dict[str, Any]:
    return {
        "metadata": {"name": f"shop-{index}", "namespace": "default", "uid": str(uuid.uuid4())},
        "spec": {"parentRefs": [{"name": "kubelb"}], "hostnames": [f"r{index}.example.com"],
                 "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]},
    }  # fmt: skip


def backend(node_port: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": node_port}]},
    }  # fmt: skip


def attached(route: dict[str, Any] | None) -> list[Any]:
    state = (((route or {}).get("status") or {}).get("resources") or {}).get("route") or {}
    return [li.get("attachedRoutes") for li in (state.get("status") or {}).get("listeners") or ()]


def served_now(route: dict[str, Any] | None) -> bool:
    condition = applied(route)
    return bool(
        route is not None
        and condition is not None
        and condition["status"] == "True"
        and condition.get("observedGeneration") == route["metadata"]["generation"]
    )


async def writes_to(kube: client.Client, ns: str, name: str, since: str, until: str) -> int:
    """How many times Route `name` was written after resourceVersion `since`, up to `until` (a
    watch replays every write: the API server never merges two into one event)."""
    count = 0
    async with kube.watch(resources.ROUTES, namespace=ns, resource_version=since,
                          field_selector=f"metadata.name={name}") as stream:  # fmt: skip
        async for event in stream:
            if event["type"] == "BOOKMARK":
                continue
            count += 1
            if objects.resource_version(event["object"]) == until:
                return count
    raise AssertionError(f"the watch of Route {name} ended before resourceVersion {until}")


async def test_a_burst_of_routes_costs_one_status_write_each(
    kube, tenants, managers, manager_settings
):
    ns = await tenants()
    listener_port = free_port(POOL_ADDRESS)
    web = backend(free_port(NODE_ADDRESS))
    await kube.create(resources.ADDRESSES, addresses(NODE_ADDRESS), namespace=ns)
    gateway = routemapping.desired_route(gateway_source(listener_port), resources.GATEWAYS,
                                         namespace=ns, services=[])  # fmt: skip
    burst = [routemapping.desired_route(http_route_source(i), resources.HTTP_ROUTES,
                                        namespace=ns, services=[web])
             for i in range(BURST)]  # fmt: skip
    gateway_name = objects.name(gateway)

    async with managers(manager_settings, envoy_deployer="process",
                        address_pool=(POOL_ADDRESS,)) as manager:  # fmt: skip
        await kube.create(resources.ROUTES, gateway, namespace=ns)

        async def gateway_served():
            return served_now(await get(kube, resources.ROUTES, ns, gateway_name))

        await eventually(gateway_served, what="the Gateway served")
        await settled(manager, ns)
        before, conflicts = manager.writer.writes_in[ns], manager.writer.conflicts
        since = objects.resource_version(await get(kube, resources.ROUTES, ns, gateway_name))

        created = await asyncio.gather(
            *(kube.create(resources.ROUTES, r, namespace=ns) for r in burst)
        )
        assert all(finalizers.CLEANUP in objects.finalizers(r) for r in created)

        async def all_served():
            routes = [await get(kube, resources.ROUTES, ns, objects.name(r)) for r in created]
            counted = await get(kube, resources.ROUTES, ns, gateway_name)
            return all(map(served_now, routes)) and attached(counted) == [BURST]

        await eventually(all_served, what="every Route served and counted by the Gateway")
        await settled(manager, ns)
        written = manager.writer.writes_in[ns] - before
        until = objects.resource_version(await get(kube, resources.ROUTES, ns, gateway_name))
        gateway_writes = await writes_to(kube, ns, gateway_name, since, until)
        # Each Route: its status once, no finalizer; the Gateway: its status as its count grew.
        assert written == BURST + gateway_writes, (written, gateway_writes)
        assert 1 <= gateway_writes <= BURST
        # No status written again over an older copy of the Route (a 409 is a write too).
        assert manager.writer.conflicts == conflicts
        for route in created:
            stored = await get(kube, resources.ROUTES, ns, objects.name(route))
            by_manager = [f for f in stored["metadata"].get("managedFields") or ()
                          if f.get("manager") == app_manager.FIELD_MANAGER]  # fmt: skip
            assert [f.get("subresource") for f in by_manager] == ["status"]
