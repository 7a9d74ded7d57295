"""LoadBalancer hostnames through the manager on the real API server (with cert-manager's CRDs)
and real Envoy processes (process deployer): a generated hostname is recorded, kept across a
manager restart and served by the tenant's Envoy for its Host at the L7 entry, which carries
external-dns's annotations; its cert-manager Certificate is accepted by the API server and goes
with the LoadBalancer, and the Secret cert-manager would issue from it is served by SDS over
HTTPS (SNI = the hostname, the chain checked against the test's CA). Hostnames outside the
allowed domains, or explicit ones the settings do not allow, are refused with a condition that
says why."""

from __future__ import annotations

import asyncio
import base64
import re
import socket
import ssl
import uuid
from typing import Any

import pytest
from cryptography import x509

from kubelb.api import finalizers
from kubelb.kube import client, resources
from kubelb.manager import hostnames, l7entry, propagation
from tests.integration.manager.helpers import (
    addresses,
    eventually,
    free_port,
    get,
    http_backend,
    http_get,
    load_balancer,
    settled,
)
from tests.support import tlscerts, tlsclient

pytestmark = pytest.mark.integration

POOL_ADDRESS = "127.0.0.59"
NODE_ADDRESS = "127.0.0.23"
ISSUER = "issuer-self-signed"


def hostname_condition(lb: dict[str, Any] | None) -> dict[str, Any] | None:
    for c in ((lb or {}).get("status") or {}).get("conditions") or ():
        if c.get("type") == "Hostname":
            return dict(c)
    return None


async def config(kube: client.Client, namespace: str, **dns: Any) -> None:
    spec = {"dns": dns, "certificates": {"defaultClusterIssuer": ISSUER}}
    await kube.create(resources.CONFIGS, {"metadata": {"name": "default"}, "spec": spec},
                      namespace=namespace)  # fmt: skip


async def test_generated_hostname_served_kept_and_cleaned_up(
    kube, tenants, managers, manager_settings, management_namespace
):
    await config(kube, management_namespace, wildcardDomain="*.lb.example.com",
                 useDNSAnnotations=True, useCertificateAnnotations=True,
                 allowedDomains=["**.example.com"])  # fmt: skip
    ns = await tenants()
    node_port = free_port(NODE_ADDRESS)
    await kube.create(resources.ADDRESSES, addresses(NODE_ADDRESS), namespace=ns)
    name = str(uuid.uuid4())
    wildcard = {"kubelb.k8c.io/request-wildcard-domain": "true"}
    lb = load_balancer(name, ports=[("http", 8080, node_port)], annotations=wildcard)
    await kube.create(resources.LOAD_BALANCERS, lb, namespace=ns)

    async def named():
        current = await get(kube, resources.LOAD_BALANCERS, ns, name)
        condition = hostname_condition(current)
        return current if condition and condition["status"] == "True" else None

    async def answer(host: str):
        got = await http_get(POOL_ADDRESS, 80, "/shop", host_header=host)
        return got if got is not None and got[0] == 200 else None

    settings = {"envoy_deployer": "process", "address_pool": (POOL_ADDRESS,)}
    async with http_backend(NODE_ADDRESS, node_port, "web"):
        async with managers(manager_settings, **settings):
            current = await eventually(named, what="a hostname published")
            host = current["status"]["hostname"]["hostname"]
            assert re.fullmatch(r"[0-9a-f]{16}\.lb\.example\.com", host)
            condition = hostname_condition(current)
            assert condition is not None
            assert condition["reason"] == "HostnameAssigned"
            assert f"Secret {name}-ingress-tls (ClusterIssuer {ISSUER})" in condition["message"]
            assert finalizers.CLEANUP_HOSTNAME in current["metadata"]["finalizers"]

            cert = await get(kube, resources.CERTIFICATES, ns, hostnames.tls_secret_name(name))
            assert cert is not None, "the API server accepted the Certificate"
            assert cert["spec"]["dnsNames"] == [host]
            assert cert["spec"]["secretName"] == f"{name}-ingress-tls"
            assert cert["spec"]["issuerRef"] == {"name": ISSUER, "kind": "ClusterIssuer",
                                                 "group": "cert-manager.io"}  # fmt: skip
            assert cert["metadata"]["ownerReferences"][0]["uid"] == current["metadata"]["uid"]

            assert await eventually(lambda: answer(host), what="Envoy serving the hostname") == (
                200, "web /shop")  # fmt: skip
            other = await http_get(POOL_ADDRESS, 80, "/", host_header="other.example.com")
            assert other is not None
            assert other[0] == 404

            entry = await get(kube, resources.SERVICES, ns, l7entry.entry_service_name(ns))
            assert entry["metadata"]["annotations"] == {
                "external-dns.alpha.kubernetes.io/hostname": host,
                "external-dns.alpha.kubernetes.io/ttl": "10",
                propagation.RECORD: "external-dns.alpha.kubernetes.io/hostname,"
                "external-dns.alpha.kubernetes.io/ttl",
            }

            # cert-manager's part, played by the test: the issued Secret, labelled as the
            # Certificate's secretTemplate asks. Envoy then serves the hostname over HTTPS.
            ca = tlscerts.make_ca()
            issued = ca.issue(host)
            await kube.create(resources.SECRETS, issued_secret(cert, issued), namespace=ns)
            context = tlsclient.client_context(ca.cert_pem)

            async def https() -> tuple[int, int, str] | None:
                return await asyncio.to_thread(https_get, host, context)

            served = await eventually(https, what="Envoy serving the hostname over HTTPS")
            assert served == (issued.serial, 200, "web /secure")

        # A restart generates nothing new: the recorded hostname is the one served.
        async with managers(manager_settings, **settings) as manager:
            assert await eventually(lambda: answer(host), what="served after a restart") == (
                200, "web /shop")  # fmt: skip
            await settled(manager, ns)  # the new manager reconciled the LoadBalancer
            after = await get(kube, resources.LOAD_BALANCERS, ns, name)
            assert after["status"]["hostname"]["hostname"] == host

            await kube.delete(resources.LOAD_BALANCERS, name, namespace=ns)

            async def gone():
                lb_gone = await get(kube, resources.LOAD_BALANCERS, ns, name) is None
                cert = await get(kube, resources.CERTIFICATES, ns, f"{name}-ingress-tls")
                return lb_gone and cert is None

            await eventually(gone, what="the LoadBalancer and its Certificate deleted")

            async def unserved():
                got = await http_get(POOL_ADDRESS, 80, "/", host_header=host)
                return got is None or got[0] == 404

            await eventually(unserved, what="the hostname no longer served")


def https_get(host: str, context: ssl.SSLContext) -> tuple[int, int, str] | None:
    """(served certificate's serial, status, body) of `GET /secure` with SNI and Host `host`;
    None while the handshake fails. Blocking sockets in `with`: closed whatever happens."""
    request = f"GET /secure HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    try:
        with (
            socket.create_connection((POOL_ADDRESS, 443), timeout=2) as raw,
            context.wrap_socket(raw, server_hostname=host) as conn,
        ):
            der = conn.getpeercert(binary_form=True)
            conn.sendall(request.encode())
            answer = b""
            while chunk := conn.recv(65536):
                answer += chunk
    except OSError:
        return None
    if der is None:
        return None
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    return x509.load_der_x509_certificate(der).serial_number, status, body.decode()


def issued_secret(certificate: dict[str, Any], issued: tlscerts.Issued) -> dict[str, Any]:
    """The Secret cert-manager writes for `certificate`."""
    spec = certificate["spec"]
    return {
        "metadata": {"name": spec["secretName"], "labels": spec["secretTemplate"]["labels"]},
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": base64.b64encode(issued.cert_pem.encode()).decode(),
                 "tls.key": base64.b64encode(issued.key_pem.encode()).decode()},
    }  # fmt: skip


async def test_hostnames_refused_with_a_reason(
    kube, tenants, managers, manager_settings, management_namespace
):
    await config(kube, management_namespace, allowedDomains=["*.apps.example.com"])
    ns = await tenants()
    await kube.create(resources.ADDRESSES, addresses(NODE_ADDRESS), namespace=ns)
    explicit, outside, inside = (str(uuid.uuid4()) for _ in range(3))
    for name, host in ((explicit, "a.apps.example.com"), (outside, "a.other.io"),
                       (inside, "b.apps.example.com")):  # fmt: skip
        lb = load_balancer(name, ports=[("http", 8080, 30080)])
        lb["spec"]["hostname"] = host
        await kube.create(resources.LOAD_BALANCERS, lb, namespace=ns)

    async def reason(name: str, want: str):
        async def check():
            current = await get(kube, resources.LOAD_BALANCERS, ns, name)
            condition = hostname_condition(current)
            return current if condition and condition["reason"] == want else None

        return await eventually(check, what=f"{name}: Hostname {want}")

    async with managers(manager_settings, envoy_deployer="process",
                        address_pool=(POOL_ADDRESS,)):  # fmt: skip
        refused = await reason(explicit, "HostnameNotAllowed")
        assert "allowExplicitHostnames" in _message(refused)
        assert "hostname" not in refused["status"]
        assert finalizers.CLEANUP_HOSTNAME not in refused["metadata"]["finalizers"]

        # The Tenant allows explicit hostnames: the one under an allowed domain is published,
        # the other is refused as outside them.
        tenant = {"metadata": {"name": ns.removeprefix("tenant-")},
                  "spec": {"dns": {"allowExplicitHostnames": True}}}  # fmt: skip
        await kube.create(resources.TENANTS, tenant)
        try:
            published = await reason(inside, "HostnameAssigned")
            assert published["status"]["hostname"] == {"hostname": "b.apps.example.com"}
            outside_lb = await reason(outside, "HostnameNotAllowed")
            message = _message(outside_lb)
            assert "a.other.io is outside the allowed domains *.apps.example.com" in message
        finally:
            await kube.delete(resources.TENANTS, tenant["metadata"]["name"])


def _message(lb: dict[str, Any]) -> str:
    condition = hostname_condition(lb)
    assert condition is not None
    return str(condition["message"])
