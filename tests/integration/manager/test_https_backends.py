"""HTTPS backends through the manager on the real API server and a real Envoy: a Service asking
for Verify with a CA Secret (`kubelb.k8c.io/backend-tls-ca-secret`) is reached over TLS once that
Secret is synced (a SyncSecret written as the agent writes it, its `ca.crt` read from the
manager's cache of synced Secrets); before, the Route says the CA is missing."""

from __future__ import annotations

import base64
import ssl
import tempfile
import uuid
from pathlib import Path

import pytest

from kubelb.kube import resources
from tests.integration.dataplane import backends
from tests.integration.manager.helpers import addresses, eventually, free_port, get, http_get
from tests.integration.manager.test_routes import NODE_ADDRESS, applied, ingress_route
from tests.support import tlscerts

pytestmark = pytest.mark.integration

POOL = "127.0.0.62"
HOST = "shop.example.com"
NAME = "web.shop.svc"


def server_context(issued: tlscerts.Issued) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as scratch:
        cert, key = Path(scratch) / "tls.crt", Path(scratch) / "tls.key"
        cert.write_text(issued.cert_pem)
        key.write_text(issued.key_pem)
        context.load_cert_chain(cert, key)
    return context


async def test_verify_uses_the_synced_ca(kube, tenants, managers, manager_settings):
    ns = await tenants()
    ca = tlscerts.make_ca()
    node_port = free_port(NODE_ADDRESS)
    name = str(uuid.uuid4())
    await kube.create(resources.ADDRESSES, addresses(NODE_ADDRESS), namespace=ns)
    route = ingress_route(name, host=HOST, node_port=node_port)
    (service,) = route["spec"]["source"]["kubernetes"]["services"]
    service["metadata"]["annotations"] = {
        "kubelb.k8c.io/backend-tls-policy": "Verify",
        "kubelb.k8c.io/backend-tls-sni": NAME,
        "kubelb.k8c.io/backend-tls-ca-secret": "web-ca",
    }
    await kube.create(resources.ROUTES, route, namespace=ns)
    server = await backends.HTTPBackend("tls", host=NODE_ADDRESS, port=node_port,
                                        tls=server_context(ca.issue(NAME))).start()  # fmt: skip
    try:
        async with managers(manager_settings, envoy_deployer="process", address_pool=(POOL,)):

            async def missing():
                condition = applied(await get(kube, resources.ROUTES, ns, name))
                return condition if condition and "web-ca" in condition["message"] else None

            await eventually(missing, what="the missing CA reported")
            await kube.create(resources.SYNC_SECRETS, {
                "metadata": {"name": str(uuid.uuid4()),
                             "labels": {"kubelb.k8c.io/origin-name": "web-ca",
                                        "kubelb.k8c.io/origin-ns": "default"}},
                "data": {"ca.crt": base64.b64encode(ca.cert_pem.encode()).decode()},
            }, namespace=ns)  # fmt: skip

            async def verified() -> bool:
                answer = await http_get(POOL, 80, "/x", host_header=HOST)
                return answer is not None and answer[0] == 200

            await eventually(verified, what="the HTTPS backend verified with the synced CA")
            condition = applied(await get(kube, resources.ROUTES, ns, name))
            assert condition is not None
            assert condition["status"] == "True"
    finally:
        await server.stop()
