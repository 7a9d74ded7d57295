import base64
import time
from typing import Any

import pytest

from kubelb.api import route as api_route
from kubelb.ir import proxy
from kubelb.irbuild import routes, routetls
from tests.support import tlscerts

NS = "tenant-a"


@pytest.fixture(scope="module")
def ca() -> tlscerts.CA:
    return tlscerts.make_ca()


def secret(name: str, issued: tlscerts.Issued, namespace: str = NS,
           **labels: str) -> dict[str, Any]:  # fmt: skip
    return {
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "data": {"tls.crt": base64.b64encode(issued.cert_pem.encode()).decode(),
                 "tls.key": base64.b64encode(issued.key_pem.encode()).decode()},
    }  # fmt: skip


def origin(name: str, ns: str = "default") -> dict[str, str]:
    return {"kubelb.k8c.io/origin-name": name, "kubelb.k8c.io/origin-ns": ns}


def test_a_reference_resolves_by_origin_labels_only_in_the_tenant_namespace(ca):
    issued = ca.issue("a.example.com")
    secrets = [
        secret("uid-1", issued, **origin("a-tls")),
        secret("uid-2", issued, **origin("a-tls", "other")),
        secret("uid-3", issued, namespace="tenant-b", **origin("b-tls")),
        secret("plain", issued, **{"kubelb.k8c.io/origin-name": "files-tls"}),
    ]
    certs = routetls.index(NS, secrets, time.time())
    found = certs.resolve("default", "a-tls")
    assert not isinstance(found, str)
    assert found.name == f"{NS}/uid-1"
    assert not isinstance(certs.resolve("other", "a-tls"), str)
    assert certs.resolve("default", "b-tls") == (
        "Secret default/b-tls is not synced to the management cluster"
    )
    # A Secret named by its origin alone (standalone files) answers from any namespace.
    anywhere = certs.resolve("somewhere", "files-tls")
    assert not isinstance(anywhere, str)
    assert anywhere.name == f"{NS}/plain"


def test_an_unusable_secret_says_why(ca):
    issued = ca.issue("a.example.com")
    broken = secret("uid-1", issued, **origin("a-tls"))
    broken["data"]["tls.key"] = "not base64!"
    certs = routetls.index(NS, [broken], time.time())
    why = certs.resolve("default", "a-tls")
    assert isinstance(why, str)
    assert why.startswith("Secret default/a-tls: the private key is empty")


@pytest.mark.parametrize(
    ("server_name", "host", "covered"),
    [
        ("a.example.com", "a.example.com", True),
        ("*.example.com", "a.example.com", True),
        ("*.example.com", "x.a.example.com", True),
        ("*.example.com", "example.com", False),
        ("*.example.com", "*.example.com", True),
        ("*.example.com", "*.a.example.com", False),
        ("a.example.com", "*", False),
    ],
)
def test_covers(server_name, host, covered):
    assert routetls.covers(server_name, host) is covered


def _ingress_route(name: str, created: str, tls: list[Any], hosts: list[str]) -> api_route.Route:
    backend = {"service": {"name": "web", "port": {"number": 80}}}
    return api_route.Route.model_validate({
        "apiVersion": "kubelb.k8c.io/v1alpha1", "kind": "Route",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "endpoints": [{"name": "n", "addresses": [{"ip": "10.0.0.1"}]}],
            "source": {"kubernetes": {
                "resource": {
                    "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                    "metadata": {"name": name, "namespace": "default",
                                 "creationTimestamp": created},
                    "spec": {"tls": tls, "rules": [
                        {"host": h, "http": {"paths": [
                            {"path": "/", "pathType": "Prefix", "backend": backend}]}}
                        for h in hosts]},
                },
                "services": [{"apiVersion": "v1", "kind": "Service",
                              "metadata": {"name": "web", "namespace": "default"},
                              "spec": {"type": "NodePort",
                                       "ports": [{"port": 80, "nodePort": 30080}]}}],
            }},
        },
    })  # fmt: skip


def test_ingress_tls_hosts_first_come_and_a_default_certificate(ca):
    a, other = ca.issue("a.example.com"), ca.issue("x")
    certs = routetls.index(NS, [secret("s-a", a, **origin("a-tls")),
                                secret("s-d", other, **origin("default-tls"))],
                           time.time())  # fmt: skip
    older = _ingress_route("older", "2026-01-01T00:00:00Z",
                           [{"hosts": ["a.example.com"], "secretName": "a-tls"}],
                           ["a.example.com"])  # fmt: skip
    younger = _ingress_route(
        "younger", "2026-01-01T00:00:01Z",
        [{"hosts": ["a.example.com"], "secretName": "default-tls"},
         {"secretName": "default-tls"}],
        ["b.example.com"],
    )  # fmt: skip
    built = routes.build_tenant_routes(NS, [older, younger], {}, address="0.0.0.0",
                                       certificates=certs)  # fmt: skip
    (https,) = [li for li in built.piece.listeners if li.tls is not None]
    assert https.port == 443
    assert https.tls is not None
    assert sorted(https.tls.certificates, key=lambda c: c.server_names) == [
        proxy.ServerCertificate(server_names=(), secret=f"{NS}/s-d"),
        proxy.ServerCertificate(server_names=("a.example.com",), secret=f"{NS}/s-a"),
    ]
    # The default certificate serves every host of the port-80 listener.
    assert {vh.name for vh in https.virtual_hosts} == {"a.example.com", "b.example.com"}
    assert [s.name for s in built.piece.secrets] == [f"{NS}/s-a", f"{NS}/s-d"]
    assert built.outcomes["younger"].problems == (
        "spec.tls[0]: host 'a.example.com' is already given by Ingress default/older",
    )
    assert routes.requested_ports(NS, [older]) == {80, 443}


def test_no_secrets_no_https_listener_and_the_hosts_stay_on_http():
    route = _ingress_route("r", "2026-01-01T00:00:00Z",
                           [{"hosts": ["a.example.com"], "secretName": "a-tls"}],
                           ["a.example.com"])  # fmt: skip
    built = routes.build_tenant_routes(NS, [route], {}, address="0.0.0.0")
    assert [li.port for li in built.piece.listeners] == [80]
    assert built.piece.secrets == ()
    (problem,) = built.outcomes["r"].problems
    assert "not synced" in problem
    assert problem.endswith("a.example.com not served over HTTPS")


def test_an_older_tls_ingress_keeps_443_from_the_gateway(ca):
    a = ca.issue("a.example.com")
    certs = routetls.index(NS, [secret("s-a", a, **origin("a-tls"))], time.time())
    ing = _ingress_route("ing", "2026-01-01T00:00:00Z",
                         [{"hosts": ["a.example.com"], "secretName": "a-tls"}],
                         ["a.example.com"])  # fmt: skip
    gateway = api_route.Route.model_validate({
        "apiVersion": "kubelb.k8c.io/v1alpha1", "kind": "Route",
        "metadata": {"name": "gw", "namespace": NS},
        "spec": {"endpoints": [{"name": "n", "addresses": [{"ip": "10.0.0.1"}]}],
                 "source": {"kubernetes": {"resource": {
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "kubelb", "namespace": "default",
                         "creationTimestamp": "2026-01-01T00:00:01Z"},
            "spec": {"listeners": [{"name": "https", "port": 443, "protocol": "HTTPS",
                                    "tls": {"certificateRefs": [{"name": "a-tls"}]}}]},
        }}}},
    })  # fmt: skip
    built = routes.build_tenant_routes(NS, [ing, gateway], {}, address="0.0.0.0",
                                       certificates=certs)  # fmt: skip
    assert sorted(li.port for li in built.piece.listeners) == [80, 443]
    assert "port 443 is used by the tenant's Ingresses" in " ".join(built.outcomes["gw"].problems)
    piece = built.piece
    config = proxy.ProxyConfig(node_id=NS, listeners=piece.listeners, clusters=piece.clusters,
                               secrets=piece.secrets)  # fmt: skip
    assert config.validate() == []
