"""How a Route's backend asks for TLS from the hub (HTTPS backends)."""

from __future__ import annotations

import base64

import pytest

from kubelb.ir import proxy
from kubelb.irbuild import backendtls

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
CA = {"shop/web-ca": PEM, "shop/not-a-ca": "hello"}


def service(**notes: str):
    return {"metadata": {"name": "web", "namespace": "shop", "annotations": notes}}


def ask(notes=None, port=None, protocol=None):
    return backendtls.ask(service(**(notes or {})), port or {"port": 443}, "shop",
                          backend_protocol=protocol, ca_bundles=CA)  # fmt: skip


POLICY = "kubelb.k8c.io/backend-tls-policy"
CA_SECRET = "kubelb.k8c.io/backend-tls-ca-secret"
SNI = "kubelb.k8c.io/backend-tls-sni"
INSECURE = proxy.UpstreamTLS(verify=False)


@pytest.mark.parametrize(
    ("notes", "port", "protocol", "expected"),
    [
        ({}, None, None, backendtls.Ask()),
        ({}, None, "HTTP", backendtls.Ask()),
        ({}, None, "GRPC", backendtls.Ask(http2=True)),
        ({}, None, "https", backendtls.Ask(INSECURE)),
        ({}, None, "GRPCS", backendtls.Ask(INSECURE, http2=True)),
        ({}, {"port": 443, "appProtocol": "HTTPS"}, None, backendtls.Ask(INSECURE)),
        ({}, {"port": 443, "appProtocol": "kubernetes.io/https"}, None, backendtls.Ask(INSECURE)),
        ({}, {"port": 443, "appProtocol": "kubernetes.io/h2c"}, None, backendtls.Ask()),
        ({POLICY: "Insecure", SNI: "Web.Shop.Svc."}, None, None,
         backendtls.Ask(proxy.UpstreamTLS(verify=False, sni="web.shop.svc"))),
        ({POLICY: "Verify", CA_SECRET: "web-ca", SNI: "web.shop.svc"}, None, None,
         backendtls.Ask(proxy.UpstreamTLS(sni="web.shop.svc", ca_pem=PEM))),
        # The Service's Verify wins over the Ingress's plain HTTPS.
        ({POLICY: "verify", CA_SECRET: "web-ca"}, None, "HTTPS",
         backendtls.Ask(proxy.UpstreamTLS(ca_pem=PEM))),
    ],
)  # fmt: skip
def test_asks(notes, port, protocol, expected):
    assert ask(notes, port, protocol) == expected


@pytest.mark.parametrize(
    ("notes", "message"),
    [
        ({POLICY: "Sometimes"}, "is not Insecure or Verify"),
        ({POLICY: "Verify"}, "needs kubelb.k8c.io/backend-tls-ca-secret"),
        ({POLICY: "Verify", CA_SECRET: "missing"}, "shop/missing has no ca.crt"),
        ({POLICY: "Verify", CA_SECRET: "not-a-ca"}, "shop/not-a-ca has no ca.crt"),
    ],
)
def test_refusals_never_weaken_verification(notes, message):
    found = ask(notes)
    assert found.tls is None
    assert message in (found.problem or "")


def test_ca_bundles_from_synced_secrets_by_origin():
    def synced(name, origin_ns, origin_name, data, namespace="tenant-a"):
        return {"metadata": {"name": name, "namespace": namespace, "labels": {
            "kubelb.k8c.io/origin-ns": origin_ns, "kubelb.k8c.io/origin-name": origin_name}},
            "data": data}  # fmt: skip

    pem64 = base64.b64encode(PEM.encode()).decode()
    found = backendtls.ca_bundles("tenant-a", [
        synced("u2", "shop", "web-ca", {"ca.crt": base64.b64encode(b"later").decode()}),
        synced("u1", "shop", "web-ca", {"ca.crt": pem64}),
        synced("u3", "shop", "tls-only", {"tls.crt": pem64}),
        synced("u4", "shop", "broken", {"ca.crt": "%%%"}),
        synced("u5", "shop", "elsewhere", {"ca.crt": pem64}, namespace="tenant-b"),
        {"metadata": {"name": "u6", "namespace": "tenant-a"}, "data": {"ca.crt": pem64}},
    ])  # fmt: skip
    assert found == {"shop/web-ca": PEM}
