"""parse/dump dispatch: every kind round-trips with unknown fields; bad documents fail clearly."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kubelb.api import config, errors, loadbalancer, registry, route, syncsecret, tenant

API = "kubelb.k8c.io/v1alpha1"

SAMPLES: dict[str, dict[str, Any]] = {
    "LoadBalancer": {
        "spec": {
            "endpoints": [{"addressesReference": {"name": "default"}, "ports": [{"port": 1}]}],
            "persistence": {"type": "SourceIP", "ttl": "future"},
        },
    },
    "Route": {
        "spec": {
            "endpoints": [{"name": "default", "addressesReference": {"name": "default"}}],
            "source": {
                "kubernetes": {
                    "resource": {
                        "apiVersion": "networking.k8s.io/v1",
                        "kind": "Ingress",
                        "metadata": {"name": "web", "namespace": "app"},
                        "spec": {"rules": [{"host": "a.example", "http": {"paths": []}}]},
                    },
                    "services": [
                        {
                            "apiVersion": "v1",
                            "kind": "Service",
                            "metadata": {"name": "web"},
                            "spec": {"ports": [{"port": 80, "nodePort": 30080}]},
                        }
                    ],
                }
            },
        },
        "status": {
            "resources": {
                "services": {
                    "app/web": {
                        "generatedName": "app-web-web",
                        "status": {"loadBalancer": {}},
                        "ports": [{"port": 80, "targetPort": 20001}],
                    }
                },
                "route": {"kind": "Ingress", "status": {"loadBalancer": {"ingress": []}}},
            }
        },
    },
    "Addresses": {"spec": {"addresses": [{"ip": "fd00::1"}]}, "status": {"unknown": 1}},
    "Tenant": {
        "spec": {
            "propagatedAnnotations": {"metallb.universe.tf/*": ""},
            "deniedAnnotations": ["kubectl.kubernetes.io/*"],
            "defaultAnnotations": {"service": {"a": "b"}, "all": {"c": "d"}},
            "loadBalancer": {"class": "metallb", "disable": False},
            "gatewayAPI": {"class": "eg", "defaultGateway": {"name": "gw", "namespace": "x"}},
            "dns": {"useDNSAnnotations": True},
            "envoyProxy": {"replicas": 2, "resources": {"limits": {"cpu": "1"}}},
        },
        "status": {"phase": "Ready"},
    },
    "TenantState": {
        "status": {
            "version": {"gitVersion": "v1.4.3", "edition": "Community"},
            "lastUpdated": "2026-01-01T00:00:00Z",
            "loadBalancer": {"disable": True},
        }
    },
    "Config": {
        "spec": {
            "envoyProxy": {
                "topology": "shared",
                "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}],
                "affinity": {"nodeAffinity": {"deep": {"er": [1]}}},
                "gracefulShutdown": {"drainTimeout": "1m30s"},
                "headerLimits": {"maxRequestHeadersKb": 96},
            },
            "ingress": {"class": "nginx"},
        }
    },
    "SyncSecret": {
        "data": {"tls.crt": "aGVsbG8="},
        "stringData": {"x": "y"},
        "type": "kubernetes.io/tls",
        "status": {"phase": "Synced"},
    },
}


def document(kind: str) -> dict[str, Any]:
    doc = {"apiVersion": API, "kind": kind, "metadata": {"name": "default", "namespace": "t"}}
    doc.update(copy.deepcopy(SAMPLES[kind]))
    doc["someFutureField"] = {"kept": True}
    return doc


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_every_kind_round_trips_unchanged(kind: str) -> None:
    doc = document(kind)
    model = registry.parse(doc)
    assert kind == type(model).KIND
    assert registry.dump(model) == doc


def test_every_kind_is_registered() -> None:
    assert sorted(registry.KINDS) == sorted(SAMPLES)


def test_typed_access_after_parse() -> None:
    t = registry.parse_as(tenant.Tenant, document("Tenant"))
    assert t.spec.load_balancer.class_name == "metallb"
    assert t.spec.gateway_api.default_gateway is not None
    assert t.spec.gateway_api.default_gateway.name == "gw"
    assert t.spec.dns.use_dns_annotations is True
    assert t.spec.dns.allow_explicit_hostnames is None  # unset: inherit from Config
    assert t.spec.default_annotations == {"service": {"a": "b"}, "all": {"c": "d"}}
    assert t.status.phase is tenant.TenantPhase.READY
    r = registry.parse_as(route.Route, document("Route"))
    assert r.spec.source.kubernetes is not None
    assert r.spec.source.kubernetes.resource_kind == "Ingress"
    assert r.status.resources.services["app/web"].ports[0].target_port == 20001


def test_dump_by_alias_uses_wire_names() -> None:
    c = registry.parse_as(config.Config, document("Config"))
    dumped = registry.dump(c)
    assert dumped["spec"]["ingress"] == {"class": "nginx"}
    assert "gatewayAPI" not in dumped["spec"]  # never set, never dumped
    built = config.Config(
        spec=config.ConfigSpec(gateway_api=config.GatewayAPISettings(class_name="x"))
    )
    assert registry.dump(built)["spec"] == {"gatewayAPI": {"class": "x"}}


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        pytest.param(
            {"apiVersion": API, "kind": "Gateway", "metadata": {"name": "g", "namespace": "n"}},
            'Gateway n/g is invalid: kind: Unsupported value: "Gateway": supported values: '
            '"Addresses", "Config", "LoadBalancer", "Route", "SyncSecret", "Tenant", "TenantState"',
            id="unknown-kind",
        ),
        pytest.param(
            {"apiVersion": API, "metadata": {"name": "x"}},
            "x is invalid: kind: Required value",
            id="missing-kind",
        ),
        pytest.param(
            {"apiVersion": "v1", "kind": "LoadBalancer", "metadata": {"name": "x"}},
            'LoadBalancer x is invalid: apiVersion: Unsupported value: "v1": '
            'supported values: "kubelb.k8c.io/v1alpha1"',
            id="wrong-api-version",
        ),
        pytest.param(
            {"kind": "LoadBalancer"},
            "LoadBalancer is invalid: apiVersion: Required value",
            id="missing-api-version",
        ),
        pytest.param(
            ["not", "a", "mapping"],
            "object is invalid: expected an object (mapping), got list",
            id="not-a-mapping",
        ),
        pytest.param(
            {"apiVersion": API, "kind": "LoadBalancer", "metadata": {"name": "x"}},
            "LoadBalancer x is invalid: spec: Required value",
            id="lb-without-spec",
        ),
        pytest.param(
            {"apiVersion": API, "kind": "Tenant", "metadata": "oops"},
            'Tenant is invalid: metadata: Invalid value: "oops": must be of type object',
            id="metadata-not-object",
        ),
    ],
)
def test_bad_documents_raise_api_validation_error(doc: Any, expected: str) -> None:
    with pytest.raises(errors.APIValidationError) as info:
        registry.parse(doc)
    assert str(info.value) == expected


def test_parse_as_rejects_another_kind() -> None:
    with pytest.raises(errors.APIValidationError, match='kind: Unsupported value: "Route"'):
        registry.parse_as(loadbalancer.LoadBalancer, document("Route"))


def test_syncsecret_top_level_fields() -> None:
    s = registry.parse_as(syncsecret.SyncSecret, document("SyncSecret"))
    assert s.type == "kubernetes.io/tls"
    assert s.decoded() == {"tls.crt": b"hello", "x": b"y"}
    doc = document("SyncSecret")
    doc["data"]["bad"] = "not base64!"
    with pytest.raises(errors.APIValidationError) as info:
        registry.parse(doc)
    assert [str(c) for c in info.value.causes] == [
        "data: Invalid value: value of key 'bad' is not valid base64"
    ]


def test_route_embedded_resource_needs_type_meta() -> None:
    doc = document("Route")
    del doc["spec"]["source"]["kubernetes"]["resource"]["kind"]
    doc["spec"]["endpoints"] = []
    with pytest.raises(errors.APIValidationError) as info:
        registry.parse(doc)
    assert [str(c) for c in info.value.causes] == [
        "spec.endpoints: Invalid value: must have at least 1 item(s)",
        "spec.source.kubernetes.resource: Invalid value: embedded object must set kind",
    ]
