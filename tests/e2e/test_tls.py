"""HTTPS end to end (upstream's `ingress/tls` scenario): a tenant's SyncSecret is copied by its
agent to the management cluster, the manager turns it into Secret `<uid>` and the tenant's Envoy
serves the Ingress' TLS host with it by SDS on 443; rewriting the SyncSecret in the tenant
cluster rotates the certificate on new connections; a key that does not match its certificate is
told on the tenant's Ingress as a Warning Event. Real agent, manager and Envoy processes."""

from __future__ import annotations

import base64
import dataclasses
import time
from typing import Any

import pytest

from kubelb.kube import resources
from tests.e2e.conftest import POOL, Stack
from tests.e2e.helpers import until
from tests.e2e.test_layer7 import ingress, rule, served_ip, services
from tests.support import tlscerts, tlsclient

pytestmark = pytest.mark.e2e

HOST = "a.shop.test"


def sync_secret(name: str, issued: tlscerts.Issued) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": base64.b64encode(issued.cert_pem.encode()).decode(),
                 "tls.key": base64.b64encode(issued.key_pem.encode()).decode()},
    }  # fmt: skip


async def test_ingress_tls_from_a_tenant_sync_secret(stack: Stack, kube_a, shop):
    alpha = stack.tenants["alpha"]
    ca = tlscerts.make_ca()
    first, rotated = ca.issue(HOST), ca.issue(HOST)
    context = tlsclient.client_context(ca.cert_pem)
    await kube_a.create(resources.SYNC_SECRETS, sync_secret("shop-tls", first), namespace=shop)
    async with services(kube_a, alpha.nodes, shop, "web"):
        body = ingress("secure", [rule(HOST, ("/", "Prefix", "web"))])
        body["spec"]["tls"] = [{"hosts": [HOST], "secretName": "shop-tls"}]
        await kube_a.create(resources.INGRESSES, body, namespace=shop)
        ip = await served_ip(kube_a, resources.INGRESSES, shop, "secure")
        assert ip in POOL

        async def serial() -> int | None:
            try:
                return await tlsclient.served_serial(443, HOST, context, address=ip)
            except (OSError, TimeoutError):
                return None

        async def first_served() -> bool:
            return await serial() == first.serial

        await until(first_served, what="the tenant's certificate served on 443", deadline=90)

        async def answered() -> bool:
            conn = await tlsclient.HTTPSConnection.open(443, HOST, context, address=ip)
            try:
                status, _ = await conn.get("/", HOST)
            finally:
                await conn.close()
            return status == 200

        await until(answered, what="the backend over HTTPS", deadline=90)

        current = await kube_a.get(resources.SYNC_SECRETS, "shop-tls", namespace=shop)
        current["data"] = sync_secret("shop-tls", rotated)["data"]
        changed = time.monotonic()
        await kube_a.replace(resources.SYNC_SECRETS, current)

        async def rotated_served() -> bool:
            return await serial() == rotated.serial

        await until(rotated_served, what="the rotated certificate", deadline=90)
        print(f"e2e: tenant SyncSecret change to new certificate served "
              f"{time.monotonic() - changed:.2f}s")  # fmt: skip

        # A key from another certificate: the tenant sees why on its Ingress.
        mismatched = dataclasses.replace(rotated, key_pem=first.key_pem)
        current = await kube_a.get(resources.SYNC_SECRETS, "shop-tls", namespace=shop)
        current["data"] = sync_secret("shop-tls", mismatched)["data"]
        await kube_a.replace(resources.SYNC_SECRETS, current)

        async def told() -> bool:
            listed = await kube_a.list(resources.EVENTS, namespace=shop)
            return any(e.get("type") == "Warning"
                       and (e.get("involvedObject") or {}).get("name") == "secure"
                       and "does not belong to the certificate" in str(e.get("message"))
                       for e in listed.items)  # fmt: skip

        await until(told, what="a Warning Event on the tenant's Ingress", deadline=90)
        await kube_a.delete(resources.INGRESSES, "secure", namespace=shop)
