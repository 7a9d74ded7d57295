"""HTTPS at the hub through the manager on the real API server and real Envoy processes: an
Ingress' `tls` entries name Secrets synced as SyncSecrets (written in the tenant namespace as
the agent writes them: origin labels naming the tenant-cluster Secret). The SyncSecret
controller writes Secret `<uid>`, the manager caches it (label-selected) and the tenant's Envoy
serves each host with its certificate by SDS on 443. A certificate whose key does not match is
reported on the Route (condition and Event) while the other host keeps serving; fixing it, and
rotating the other, reaches Envoy. A Gateway's HTTPS listener terminates with its
certificateRef's synced Secret, and its TLS passthrough listener routes a TLSRoute by SNI to a
backend that terminates TLS itself."""

from __future__ import annotations

import base64
import datetime
import time
import uuid
from typing import Any

import pytest

from kubelb.kube import resources
from tests.integration.manager.helpers import addresses, eventually, free_port, get, http_backend
from tests.integration.manager.test_routes import (
    NODE_ADDRESS,
    applied,
    gateway_route,
    http_route,
    ingress_route,
)
from tests.support import tlscerts, tlsclient
from tests.support.tlsclient import tls_echo

pytestmark = pytest.mark.integration

POOL_ADDRESS = "127.0.0.58"
A, B = "a.example.com", "b.example.com"


def sync_secret(origin: str, cert_pem: str, key_pem: str) -> dict[str, Any]:
    """A SyncSecret as the agent writes it for tenant-cluster Secret `default/<origin>`."""
    return {
        "metadata": {"name": str(uuid.uuid4()),
                     "labels": {"kubelb.k8c.io/origin-name": origin,
                                "kubelb.k8c.io/origin-ns": "default"}},
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": base64.b64encode(cert_pem.encode()).decode(),
                 "tls.key": base64.b64encode(key_pem.encode()).decode()},
    }  # fmt: skip


def tls_ingress_route(name: str, node_port: int) -> dict[str, Any]:
    route = ingress_route(name, host=A, node_port=node_port)
    spec = route["spec"]["source"]["kubernetes"]["resource"]["spec"]
    rule = spec["rules"][0]
    spec["rules"].append({**rule, "host": B})
    spec["tls"] = [{"hosts": [A], "secretName": "a-tls"}, {"hosts": [B], "secretName": "b-tls"}]
    return route


async def serial_of(host: str, context: Any) -> int | None:
    try:
        return await tlsclient.served_serial(443, host, context, address=POOL_ADDRESS)
    except (OSError, TimeoutError):
        return None


async def test_ingress_tls_served_by_sds_with_a_bad_certificate_reported(
    kube, tenants, managers, manager_settings
):
    ns = await tenants()
    ca = tlscerts.make_ca()
    a, b, other = ca.issue(A), ca.issue(B), ca.issue("other.example.com")
    context = tlsclient.client_context(ca.cert_pem)
    node_port = free_port(NODE_ADDRESS)
    name = str(uuid.uuid4())
    await kube.create(resources.ADDRESSES, addresses(NODE_ADDRESS), namespace=ns)
    ss_a = await kube.create(resources.SYNC_SECRETS, sync_secret("a-tls", a.cert_pem, a.key_pem),
                             namespace=ns)  # fmt: skip
    # b's certificate with another certificate's key: not servable.
    bad = sync_secret("b-tls", b.cert_pem, other.key_pem)
    ss_b = await kube.create(resources.SYNC_SECRETS, bad, namespace=ns)
    await kube.create(resources.ROUTES, tls_ingress_route(name, node_port), namespace=ns)

    async def reported():
        condition = applied(await get(kube, resources.ROUTES, ns, name))
        return condition if condition and "b.example.com" in condition["message"] else None

    async with (
        http_backend(NODE_ADDRESS, node_port, "web"),
        managers(
            manager_settings, envoy_deployer="process", address_pool=(POOL_ADDRESS,)
        ),  # fmt: skip
    ):
        condition = await eventually(reported, what="the bad certificate reported")
        assert condition["status"] == "False"
        assert "the private key does not belong to the certificate" in condition["message"]
        assert "a.example.com" not in condition["message"]

        async def a_served():
            return await serial_of(A, context) == a.serial

        await eventually(a_served, what="a.example.com over HTTPS")
        conn = await tlsclient.HTTPSConnection.open(443, A, context, address=POOL_ADDRESS)
        try:
            assert await conn.get("/cart", A) == (200, "web /cart")
        finally:
            await conn.close()
        assert await serial_of(B, context) is None, "b has no certificate: handshake refused"

        async def warned():
            listed = await kube.list(resources.EVENTS, namespace=ns)
            return [e for e in listed.items
                    if e.get("reason") == "InstallationFailed"
                    and "b.example.com" in e.get("message", "")
                    and e.get("involvedObject", {}).get("name") == name]  # fmt: skip

        await eventually(warned, what="a Warning Event on the Route")

        # The tenant fixes b's Secret: b is served, a keeps serving.
        fixed = await get(kube, resources.SYNC_SECRETS, ns, ss_b["metadata"]["name"])
        fixed["data"]["tls.key"] = base64.b64encode(b.key_pem.encode()).decode()
        await kube.replace(resources.SYNC_SECRETS, fixed)

        async def b_served():
            return await serial_of(B, context) == b.serial

        await eventually(b_served, what="b.example.com over HTTPS once its Secret is fixed")

        async def clean():
            condition = applied(await get(kube, resources.ROUTES, ns, name))
            return condition is not None and condition["status"] == "True"

        await eventually(clean, what="the Route applied again")

        # Rotation of a: a new certificate reaches new connections.
        rotated = ca.issue(A)
        current = await get(kube, resources.SYNC_SECRETS, ns, ss_a["metadata"]["name"])
        current["data"] = sync_secret("a-tls", rotated.cert_pem, rotated.key_pem)["data"]
        changed_at = time.monotonic()
        await kube.replace(resources.SYNC_SECRETS, current)

        async def rotated_served():
            return await serial_of(A, context) == rotated.serial

        await eventually(rotated_served, what="the rotated certificate")
        print(f"manager: SyncSecret change to new certificate served "
              f"{time.monotonic() - changed_at:.2f}s")  # fmt: skip


def gateway_tls_route(name: str) -> dict[str, Any]:
    """The Gateway `kubelb`: HTTPS on 8443 for a.example.com (certificateRef `a-tls`) and a
    TLS passthrough listener on 9443."""
    route = gateway_route(name)
    route["spec"]["source"]["kubernetes"]["resource"]["spec"]["listeners"] = [
        {"name": "https", "port": 8443, "protocol": "HTTPS", "hostname": A,
         "tls": {"mode": "Terminate", "certificateRefs": [{"name": "a-tls"}]}},
        {"name": "pass", "port": 9443, "protocol": "TLS", "tls": {"mode": "Passthrough"}},
    ]  # fmt: skip
    return route


def tls_route(name: str, node_port: int) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "endpoints": [{"name": "default", "addressesReference": {"name": "default"}}],
            "source": {"kubernetes": {
                "resource": {
                    "apiVersion": "gateway.networking.k8s.io/v1alpha2", "kind": "TLSRoute",
                    "metadata": {"name": "db", "namespace": "default"},
                    "spec": {"parentRefs": [{"name": "kubelb", "sectionName": "pass"}],
                             "hostnames": ["db.example.com"],
                             "rules": [{"backendRefs": [{"name": "db", "port": 443}]}]},
                },
                "services": [{
                    "apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": "db", "namespace": "default"},
                    "spec": {"type": "NodePort",
                             "ports": [{"port": 443, "nodePort": node_port}]},
                }],
            }},
        },
    }  # fmt: skip


async def test_gateway_https_and_tls_passthrough(kube, tenants, managers, manager_settings):
    pool = "127.0.0.60"
    ns = await tenants()
    ca = tlscerts.make_ca()
    a, db = ca.issue(A), ca.issue("db.example.com")
    context = tlsclient.client_context(ca.cert_pem)
    web_port, db_port = free_port(NODE_ADDRESS), free_port(NODE_ADDRESS)
    await kube.create(resources.ADDRESSES, addresses(NODE_ADDRESS), namespace=ns)
    await kube.create(resources.SYNC_SECRETS, sync_secret("a-tls", a.cert_pem, a.key_pem),
                      namespace=ns)  # fmt: skip
    await kube.create(resources.ROUTES, gateway_tls_route(str(uuid.uuid4())), namespace=ns)
    await kube.create(resources.ROUTES, http_route(str(uuid.uuid4()), section="https", host=A,
                                                   node_port=web_port), namespace=ns)  # fmt: skip
    await kube.create(resources.ROUTES, tls_route(str(uuid.uuid4()), db_port), namespace=ns)

    async def serial(port: int, host: str) -> int | None:
        try:
            return await tlsclient.served_serial(port, host, context, address=pool)
        except (OSError, TimeoutError):
            return None

    async with (
        http_backend(NODE_ADDRESS, web_port, "web"),
        tls_echo(db, "db", host=NODE_ADDRESS, port=db_port),
        managers(manager_settings, envoy_deployer="process", address_pool=(pool,)),
    ):

        async def terminated() -> bool:
            return await serial(8443, A) == a.serial

        await eventually(terminated, what="the Gateway's HTTPS listener")

        async def answered() -> bool:
            conn = await tlsclient.HTTPSConnection.open(8443, A, context, address=pool)
            try:
                return await conn.get("/x", A) == (200, "web /x")
            finally:
                await conn.close()

        await eventually(answered, what="the HTTPRoute over HTTPS")

        async def passed_through() -> bool:
            # The backend's own certificate: Envoy did not terminate.
            return await serial(9443, "db.example.com") == db.serial

        await eventually(passed_through, what="TLS passthrough by SNI to the backend")
        assert await serial(9443, "other.example.com") is None


async def test_a_certificate_that_expires_is_dropped_and_reported(
    kube, tenants, managers, manager_settings
):
    """Nothing changes in the cluster when a certificate expires: the manager looks again at
    the moment it does."""
    pool = "127.0.0.61"
    ns = await tenants()
    ca = tlscerts.make_ca()
    soon = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=8)
    short = ca.issue(A, not_after=soon)
    context = tlsclient.client_context(ca.cert_pem)
    node_port = free_port(NODE_ADDRESS)
    name = str(uuid.uuid4())
    await kube.create(resources.ADDRESSES, addresses(NODE_ADDRESS), namespace=ns)
    expiring = sync_secret("a-tls", short.cert_pem, short.key_pem)
    await kube.create(resources.SYNC_SECRETS, expiring, namespace=ns)
    route = ingress_route(name, host=A, node_port=node_port)
    spec = route["spec"]["source"]["kubernetes"]["resource"]["spec"]
    spec["tls"] = [{"hosts": [A], "secretName": "a-tls"}]
    await kube.create(resources.ROUTES, route, namespace=ns)

    async def serial() -> int | None:
        try:
            return await tlsclient.served_serial(443, A, context, address=pool)
        except (OSError, TimeoutError):
            return None

    async with (
        http_backend(NODE_ADDRESS, node_port, "web"),
        managers(manager_settings, envoy_deployer="process", address_pool=(pool,)),
    ):

        async def served() -> bool:
            return await serial() == short.serial

        await eventually(served, what="the short-lived certificate served")

        async def expired():
            condition = applied(await get(kube, resources.ROUTES, ns, name))
            message = (condition or {}).get("message", "")
            return condition if "the certificate expired" in message else None

        condition = await eventually(expired, what="the expiry reported")
        assert condition["status"] == "False"

        async def dropped() -> bool:
            return await serial() is None

        await eventually(dropped, what="the expired host no longer served over HTTPS")
