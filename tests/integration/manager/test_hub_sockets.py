"""A tenant LoadBalancer cannot take a socket the hub listens on (process mode, real API server,
real Envoy): its port equal to the manager's xDS, probe or metrics port, or the management API
server's, on the pool's one address, is refused with PortReserved, and the other tenant's Envoy
keeps its xDS connection and configuration. (Envoy's admin is a Unix socket: no port to take.)"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import grpc
import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from kubelb.kube import resources
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
)

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"  # the pool's one address is also where the manager listens
NODE_ADDRESS = "127.0.0.22"
CLUSTER_TYPE = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
NEW_XDS_CONNECTIONS = 40


async def test_tenant_lb_on_hub_ports_is_refused(kube, tenants, managers, manager_settings):
    good, evil = await tenants(), await tenants()
    node_port, good_port = free_port(NODE_ADDRESS), free_port(HOST)
    for ns in (good, evil):
        await kube.create(resources.ADDRESSES, addresses(NODE_ADDRESS), namespace=ns)
    web = load_balancer("web", ports=[("http", good_port, node_port)])
    await kube.create(resources.LOAD_BALANCERS, web, namespace=good)
    # Plaintext xDS (allowed on loopback) so the test can dial it as an unauthenticated client.
    settings = {"envoy_deployer": "process", "address_pool": (HOST,), "xds_tls": False}
    async with (
        echo_server(NODE_ADDRESS, node_port, b"node:"),
        managers(manager_settings, **settings) as manager,
    ):
        answer = await eventually(lambda: exchange(HOST, good_port, b"hello"),
                                  what="the good tenant served")  # fmt: skip
        assert answer == b"node:hello"
        api = urlsplit((await kube.connection()).server)
        assert api.hostname == HOST, "the test API server listens on the pool's address"
        hub = {
            "xds": manager.xds_port,
            "probes": manager.probes.port,
            "metrics": manager.metrics.port,
            "api": api.port,
        }
        for name, port in hub.items():
            lb = load_balancer(f"evil-{name}", ports=[("p", port, node_port)])
            await kube.create(resources.LOAD_BALANCERS, lb, namespace=evil)

        async def refused():
            found = {}
            for name in hub:
                lb = await get(kube, resources.LOAD_BALANCERS, evil, f"evil-{name}")
                condition = ready(lb)
                if not condition or condition["reason"] != "PortReserved":
                    return None
                found[name] = (condition, ingress_ips(lb))
            return found

        found = await eventually(refused, what="every hub port refused with PortReserved")
        for name, (condition, ips) in found.items():
            assert condition["status"] == "False", name
            assert f"{HOST}:{hub[name]}/TCP" in condition["message"], condition
            assert ips == [], name

        # Every new connection to the xDS port still reaches kubelb, which hands the good
        # tenant its configuration (the capture took 40 of 40).
        names = [await _clusters(manager.xds_port, good) for _ in range(NEW_XDS_CONNECTIONS)]
        assert all(n and all(x.startswith(good) and "web" in x for x in n) for n in names), names[
            :3
        ]
        await eventually(lambda: _async(manager.cache.status(good).in_sync()),
                         what="the good tenant's Envoy in sync")  # fmt: skip
        assert await exchange(HOST, good_port, b"still") == b"node:still"


async def _clusters(port: int, node_id: str) -> list[str]:
    """Cluster names the xDS server on `port` sends `node_id`, over a connection of its own."""
    options = [("grpc.use_local_subchannel_pool", 1)]
    async with grpc.aio.insecure_channel(f"{HOST}:{port}", options=options) as channel:
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
        request = discovery_pb2.DiscoveryRequest(type_url=CLUSTER_TYPE)
        request.node.id = node_id
        call = stub.StreamAggregatedResources(_hold_open(request))
        async for response in call:
            call.cancel()
            return [_name(r.value) for r in response.resources]
    return []


def _name(raw: bytes) -> str:
    cluster = cluster_pb2.Cluster()
    cluster.ParseFromString(raw)
    return str(cluster.name)


async def _hold_open(request: discovery_pb2.DiscoveryRequest):
    yield request
    await asyncio.Event().wait()  # no half-close: the stream ends when the call is cancelled


async def _async(value):
    return value
