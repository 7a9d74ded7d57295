"""The API server allocates what kubelb relies on: a nodePort for a LoadBalancer Service."""

from __future__ import annotations

import ipaddress
import json

import pytest
from kubernetes_asyncio import client

pytestmark = pytest.mark.integration


async def test_loadbalancer_service_gets_node_ports(
    management, management_api, management_namespace
):
    core = client.CoreV1Api(management_api)
    body = client.V1Service(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1ServiceSpec(
            type="LoadBalancer",
            selector={"app": "web"},
            ports=[
                client.V1ServicePort(name="http", port=80, target_port=8080, protocol="TCP"),
                client.V1ServicePort(name="dns", port=53, protocol="UDP"),
            ],
        ),
    )
    service = await core.create_namespaced_service(management_namespace, body)
    node_ports = {p.name: p.node_port for p in service.spec.ports}
    assert all(30000 <= port <= 32767 for port in node_ports.values()), node_ports
    assert node_ports["http"] != node_ports["dns"]
    assert ipaddress.ip_address(service.spec.cluster_ip) in ipaddress.ip_network(
        management.service_cidr
    )
    # No cloud provider: nothing assigns an external address (that is kubelb's job).
    assert not service.status.load_balancer.ingress


async def test_node_port_conflict_is_rejected(management_api, management_namespace):
    core = client.CoreV1Api(management_api)

    def service(name: str, node_port: int) -> client.V1Service:
        return client.V1Service(
            metadata=client.V1ObjectMeta(name=name),
            spec=client.V1ServiceSpec(
                type="NodePort", ports=[client.V1ServicePort(port=80, node_port=node_port)]
            ),
        )

    first = await core.create_namespaced_service(management_namespace, service("a", 0))
    taken = first.spec.ports[0].node_port
    with pytest.raises(client.ApiException) as caught:
        await core.create_namespaced_service(management_namespace, service("b", taken))
    assert caught.value.status == 422
    assert "provided port is already allocated" in json.loads(caught.value.body or b"")["message"]
