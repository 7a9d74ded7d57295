"""What the test control plane publishes so that upstream KubeLB's own manager accepts it:
`kube-public/cluster-info` as kubeadm writes it, readable without credentials, and the
`default/kubernetes` Service with an EndpointSlice whose address really reaches the API server.
Also the prometheus-operator CRDs the PodMonitor setting needs."""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from kubernetes_asyncio import client

from kubelb.localcluster import clusterinfo, controlplane
from kubelb.manager import kubeconfigs
from tests.support import cluster

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("which", ["management", "tenant"])
async def test_cluster_info_names_the_server_and_ca(which, request):
    target: cluster.Cluster = request.getfixturevalue(which)
    async with target.api_client() as api:
        config_map = await client.CoreV1Api(api).read_namespaced_config_map(
            clusterinfo.NAME, clusterinfo.NAMESPACE
        )
    raw = {"data": config_map.data}
    assert kubeconfigs.server_from_cluster_info(raw) == (target.server, target.ca_pem)


async def test_cluster_info_is_readable_without_credentials(management: cluster.Cluster):
    context = ssl.create_default_context(cafile=str(management.ca_file))
    path = f"/api/v1/namespaces/{clusterinfo.NAMESPACE}/configmaps/{clusterinfo.NAME}"
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as http,
        http.get(management.server + path) as response,
    ):
        assert response.status == 200, await response.text()
        body = await response.json()
    assert kubeconfigs.server_from_cluster_info(body) == (management.server, management.ca_pem)


@pytest.mark.parametrize("which", ["management", "tenant"])
async def test_kubernetes_service_and_endpoint_slice_name_the_api_server(
    which, request, control_plane: controlplane.ControlPlane
):
    target: cluster.Cluster = request.getfixturevalue(which)
    address = control_plane.advertise_address
    if address is None:
        pytest.skip("this host has no non-loopback IPv4 address to advertise")
    port = urlsplit(target.server).port
    async with target.api_client() as api:
        service = await client.CoreV1Api(api).read_namespaced_service("kubernetes", "default")
        slices = await client.DiscoveryV1Api(api).list_namespaced_endpoint_slice(
            "default", label_selector="kubernetes.io/service-name=kubernetes"
        )
    (https,) = service.spec.ports
    assert (https.name, https.port, https.target_port) == ("https", 443, port)
    (slice_,) = slices.items
    raw = api.sanitize_for_serialization(slice_)
    url = kubeconfigs.server_from_endpoint_slice(raw)
    assert url == f"https://{address}:{port}"
    # It listens on loopback only; its certificate names the advertised address all the same.
    assert port is not None
    assert not await asyncio.to_thread(_accepts, address, port)
    context = ssl.create_default_context(cafile=str(target.ca_file))
    context.load_cert_chain(str(target.cert_file), str(target.key_file))
    certificate = await asyncio.to_thread(_peer_certificate, context, port)
    assert ("IP Address", address) in certificate["subjectAltName"]


def _peer_certificate(context: ssl.SSLContext, port: int) -> dict[str, Any]:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        return dict(tls.getpeercert() or {})


def _accepts(address: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(5)
        return probe.connect_ex((address, port)) == 0


async def test_prometheus_operator_crds_are_established(management: cluster.Cluster):
    async with management.api_client() as api:
        listed = await client.ApiextensionsV1Api(api).list_custom_resource_definition()
    established = {
        crd.metadata.name
        for crd in listed.items
        if any(c.type == "Established" and c.status == "True" for c in crd.status.conditions or ())
    }
    assert {"podmonitors.monitoring.coreos.com", "servicemonitors.monitoring.coreos.com"} <= (
        established
    )
