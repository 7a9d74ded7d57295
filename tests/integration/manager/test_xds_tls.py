"""The manager serves xDS over mTLS by default, in both deployer modes, on the real API server:
each tenant's Envoy gets a certificate naming its namespace (a file, or a mounted Secret), the
certificate is rotated, and the manager's xDS port gives nothing to a client without a
certificate or to tenant A's certificate asking for tenant B."""

from __future__ import annotations

import base64
import json

import grpc
import pytest
from cryptography import x509

from kubelb.infra import process as process_infra, xdscerts
from kubelb.kube import resources
from kubelb.pki import ca, files, identity
from tests.integration.manager.helpers import (
    addresses,
    echo_server,
    eventually,
    exchange,
    free_port,
    get,
    load_balancer,
)
from tests.integration.xds.mtls_client import (
    CLUSTERS,
    ask,
    client_credentials,
    envoy_client_serials,
)

pytestmark = pytest.mark.integration

POOL_ADDRESS = "127.0.0.42"
NODE_ADDRESS = "127.0.0.22"


def _serial(pem: bytes) -> int:
    return x509.load_pem_x509_certificate(pem).serial_number


async def test_process_mode_envoys_use_mtls_and_rotate(kube, tenants, managers, manager_settings):
    alpha, bravo = await tenants(), await tenants()
    ports = {ns: (free_port(NODE_ADDRESS), free_port(POOL_ADDRESS)) for ns in (alpha, bravo)}
    for ns, (node_port, lb_port) in ports.items():
        await kube.create(resources.ADDRESSES, addresses(NODE_ADDRESS), namespace=ns)
        web = load_balancer("web", ports=[("tcp", lb_port, node_port)])
        await kube.create(resources.LOAD_BALANCERS, web, namespace=ns)
    node_port, lb_port = ports[alpha]
    settings = {"envoy_deployer": "process", "address_pool": (POOL_ADDRESS,),
                "xds_cert_validity": 6.0}  # fmt: skip
    async with (
        echo_server(NODE_ADDRESS, node_port, b"alpha:"),
        managers(manager_settings, **settings) as manager,
    ):
        answer = await eventually(lambda: exchange(POOL_ADDRESS, lb_port, b"hi"),
                                  what="traffic through an Envoy on mTLS")  # fmt: skip
        assert answer == b"alpha:hi"
        assert manager.xds.mtls
        infra = manager.infra
        assert isinstance(infra, process_infra.ProcessInfra)
        assert infra.certs is not None
        directory = infra.certs.directory(alpha)
        authority = infra.certs.authority
        leaf = ca.Leaf((directory / files.CERT).read_bytes(), (directory / files.KEY).read_bytes(),
                       authority.cert_pem)  # fmt: skip
        assert ca.uris(leaf.certificate) == [identity.node_uri(alpha)]
        in_process = ca.Authority.from_pem(authority.cert_pem, authority.key_pem())
        assert in_process.signed(leaf.certificate)

        async def bravo_served():
            return manager.cache.get_snapshot(bravo) is not None

        await eventually(bravo_served, what="tenant bravo's snapshot")
        refused_before = manager.xds.refused
        got, code = await ask(manager.xds_port, bravo, client_credentials(authority, leaf))
        assert (got, code) == ([], grpc.StatusCode.PERMISSION_DENIED)
        assert manager.xds.refused == refused_before + 1
        for credentials in (client_credentials(authority, None), None):
            got, code = await ask(manager.xds_port, alpha, credentials)
            assert (got, code) == ([], grpc.StatusCode.UNAVAILABLE)
        got, code = await ask(manager.xds_port, alpha, client_credentials(authority, leaf))
        assert (got, code) == ([CLUSTERS], None)  # the same certificate takes its own node

        # Rotation: a new certificate replaces the 6 s one, and Envoy loads it.
        first = leaf.certificate.serial_number

        async def rotated_and_loaded():
            current = _serial((directory / files.CERT).read_bytes())
            return current != first and await envoy_client_serials(infra.envoys, alpha) == {current}

        await eventually(rotated_and_loaded, what="a rotated certificate in Envoy")
        answer = await exchange(POOL_ADDRESS, lb_port, b"again")
        assert answer == b"alpha:again"
        assert infra.envoys.restarts(alpha) == 0


async def test_kubernetes_mode_mounts_a_node_certificate(
    kube, tenants, managers, manager_settings, management_namespace
):
    alpha, bravo = await tenants(), await tenants()
    for ns in (alpha, bravo):
        await kube.create(resources.ADDRESSES, addresses("10.0.0.1"), namespace=ns)
        web = load_balancer("web", ports=[("http", 80, 30080)])
        await kube.create(resources.LOAD_BALANCERS, web, namespace=ns)
    name = f"envoy-{alpha}-xds-cert"

    async with managers(manager_settings) as manager:
        secret = await eventually(lambda: get(kube, resources.SECRETS, alpha, name),
                                  what="the certificate Secret")  # fmt: skip
        data = {k: base64.b64decode(v) for k, v in secret["data"].items()}
        assert set(data) == {files.CERT, files.KEY, files.CA, files.SDS, files.CA_SDS}
        assert secret["metadata"]["labels"] == {xdscerts.SECRET_LABEL: "true"}
        stored = await get(kube, resources.SECRETS, management_namespace, xdscerts.CA_SECRET)
        authority = ca.Authority.from_pem(base64.b64decode(stored["data"]["ca.crt"]),
                                          base64.b64decode(stored["data"]["ca.key"]))  # fmt: skip
        leaf = ca.Leaf(data[files.CERT], data[files.KEY], data[files.CA])
        in_process = ca.Authority.from_pem(authority.cert_pem, authority.key_pem())
        assert in_process.signed(leaf.certificate)
        assert ca.uris(leaf.certificate) == [identity.node_uri(alpha)]
        sds = json.loads(data[files.SDS])
        assert sds["resources"][0]["tls_certificate"]["watched_directory"]["path"] == (
            "/etc/kubelb/xds-tls"
        )

        deployment = await eventually(
            lambda: get(kube, resources.DEPLOYMENTS, alpha, f"envoy-{alpha}"), what="Deployment"
        )
        pod = deployment["spec"]["template"]["spec"]
        assert pod["volumes"] == [{"name": "xds-tls", "secret": {"secretName": name,
                                   "defaultMode": 420}}]  # fmt: skip
        envoy = pod["containers"][0]
        assert envoy["volumeMounts"] == [
            {"name": "xds-tls", "mountPath": "/etc/kubelb/xds-tls", "readOnly": True}
        ]
        boot = json.loads(envoy["args"][envoy["args"].index("--config-yaml") + 1])
        (xds,) = [c for c in boot["static_resources"]["clusters"] if c["name"] == "xds_cluster"]
        assert xds["transport_socket"]["name"] == "envoy.transport_sockets.tls"

        # The Secret's certificate takes alpha's configuration only.
        async def bravo_served():
            return manager.cache.get_snapshot(bravo) is not None

        await eventually(bravo_served, what="tenant bravo's snapshot")
        got, code = await ask(manager.xds_port, bravo, client_credentials(authority, leaf))
        assert (got, code) == ([], grpc.StatusCode.PERMISSION_DENIED)
        got, code = await ask(manager.xds_port, alpha, client_credentials(authority, leaf))
        assert (got, code) == ([CLUSTERS], None)
        got, code = await ask(manager.xds_port, alpha, None)
        assert (got, code) == ([], grpc.StatusCode.UNAVAILABLE)

        # A deleted certificate Secret comes back, with a new certificate.
        await kube.delete(resources.SECRETS, name, namespace=alpha)

        async def recreated():
            again = await get(kube, resources.SECRETS, alpha, name)
            if again is None:
                return None
            cert = base64.b64decode(again["data"][files.CERT])
            return again if _serial(cert) != leaf.certificate.serial_number else None

        await eventually(recreated, what="the certificate Secret re-created")
