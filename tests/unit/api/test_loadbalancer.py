"""LoadBalancer and Addresses models: round trip, defaults and every schema rule."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kubelb.api import addresses, common, errors, loadbalancer, registry


def lb_doc(**spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "endpoints": [
            {
                "name": "default",
                "addresses": [{"ip": "10.0.0.1"}, {"hostname": "node-b.example"}],
                "ports": [{"name": "http", "port": 30080}],
            }
        ],
        "ports": [{"name": "http", "port": 80}],
    }
    body.update(spec)
    return {
        "apiVersion": "kubelb.k8c.io/v1alpha1",
        "kind": "LoadBalancer",
        "metadata": {"name": "web", "namespace": "tenant-a"},
        "spec": body,
    }


def messages(doc: dict[str, Any]) -> list[str]:
    with pytest.raises(errors.APIValidationError) as info:
        registry.parse(doc)
    return [str(c) for c in info.value.causes]


def test_round_trip_keeps_unknown_fields_at_every_level() -> None:
    doc = lb_doc(futureField={"x": [1, 2]})
    doc["metadata"]["managedFields"] = [{"manager": "kubectl", "operation": "Apply"}]
    doc["metadata"]["labels"] = {"kubelb.k8c.io/origin-name": "web"}
    doc["spec"]["endpoints"][0]["addresses"][0]["nodeName"] = "node-a"
    doc["spec"]["endpoints"][0]["ports"][0]["appProtocol"] = "http"
    doc["status"] = {
        "loadBalancer": {
            "ingress": [{"ip": "192.0.2.1", "ports": [{"port": 80, "protocol": "TCP"}]}]
        },
        "service": {
            "ports": [
                {"name": "http", "port": 80, "targetPort": 12345, "upstreamTargetPort": 30080}
            ]
        },
        "somethingNew": True,
    }
    original = copy.deepcopy(doc)
    model = registry.parse(doc)
    assert registry.dump(model) == original
    assert doc == original  # parsing does not mutate the input


def test_defaults_are_applied_but_not_dumped() -> None:
    model = registry.parse(lb_doc())
    assert isinstance(model, loadbalancer.LoadBalancer)
    assert model.spec.type == "ClusterIP"
    assert model.spec.ports[0].protocol is common.Protocol.TCP
    assert model.spec.endpoints[0].ports[0].protocol is common.Protocol.TCP
    assert model.spec.persistence is None
    assert not model.spec.source_ip_persistence
    assert model.status.conditions == ()
    assert "protocol" not in registry.dump(model)["spec"]["ports"][0]


def test_snake_case_attributes_and_camel_case_aliases() -> None:
    doc = lb_doc(externalTrafficPolicy="Local", persistence={"type": "SourceIP"})
    doc["spec"]["endpoints"][0]["addressesReference"] = {"name": "default"}
    model = registry.parse(doc)
    assert isinstance(model, loadbalancer.LoadBalancer)
    assert model.spec.external_traffic_policy is loadbalancer.ExternalTrafficPolicy.LOCAL
    assert model.spec.source_ip_persistence
    ref = model.spec.endpoints[0].addresses_reference
    assert ref is not None
    assert ref.name == "default"
    assert model.name == "web"
    assert model.namespace == "tenant-a"


def test_model_built_in_code_dumps_type_meta() -> None:
    model = loadbalancer.LoadBalancer(
        metadata={"name": "x"},
        spec=loadbalancer.LoadBalancerSpec(
            endpoints=[
                common.LoadBalancerEndpoints(addresses=[common.EndpointAddress(ip="10.0.0.1")])
            ]
        ),
    )
    assert registry.dump(model) == {
        "apiVersion": "kubelb.k8c.io/v1alpha1",
        "kind": "LoadBalancer",
        "metadata": {"name": "x"},
        "spec": {"endpoints": [{"addresses": [{"ip": "10.0.0.1"}]}]},
    }


def test_models_are_frozen() -> None:
    model = registry.parse_as(loadbalancer.LoadBalancer, lb_doc())
    with pytest.raises(Exception, match="frozen"):
        model.spec.hostname = "x"  # type: ignore[misc]


def test_address_prefers_ip() -> None:
    both = common.EndpointAddress(ip="10.0.0.1", hostname="a.example")
    assert both.address == "10.0.0.1"
    assert common.EndpointAddress(hostname="a.example").address == "a.example"


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        pytest.param(
            lambda s: s.pop("endpoints"), "spec.endpoints: Required value", id="endpoints-required"
        ),
        pytest.param(
            lambda s: s.update(endpoints=[]),
            "spec.endpoints: Invalid value: must have at least 1 item(s)",
            id="endpoints-min-items",
        ),
        pytest.param(
            lambda s: s["endpoints"][0].update(addresses=[]),
            "spec.endpoints[0].addresses: Invalid value: must have at least 1 item(s)",
            id="addresses-min-items",
        ),
        pytest.param(
            lambda s: s["endpoints"][0].update(ports=[]),
            "spec.endpoints[0].ports: Invalid value: must have at least 1 item(s)",
            id="endpoint-ports-min-items",
        ),
        pytest.param(
            lambda s: s["endpoints"][0]["addresses"].append({"ip": ""}),
            "spec.endpoints[0].addresses[2]: Invalid value: either ip or hostname must be set",
            id="address-needs-ip-or-hostname",
        ),
        pytest.param(
            lambda s: s["endpoints"][0]["ports"][0].pop("port"),
            "spec.endpoints[0].ports[0].port: Required value",
            id="endpoint-port-required",
        ),
        pytest.param(
            lambda s: s["endpoints"][0]["ports"][0].update(protocol="SCTP"),
            'spec.endpoints[0].ports[0].protocol: Unsupported value: "SCTP": '
            'supported values: "TCP", "UDP"',
            id="endpoint-protocol-enum",
        ),
        pytest.param(
            lambda s: s["ports"][0].update(protocol="HTTP"),
            'spec.ports[0].protocol: Unsupported value: "HTTP": supported values: "TCP", "UDP"',
            id="port-protocol-enum",
        ),
        pytest.param(
            lambda s: s["ports"][0].pop("port"),
            "spec.ports[0].port: Required value",
            id="port-required",
        ),
        pytest.param(
            lambda s: s["ports"][0].update(port=2**31),
            "spec.ports[0].port: Invalid value: must fit in int32 (-2147483648..2147483647)",
            id="port-int32",
        ),
        pytest.param(
            lambda s: s["ports"][0].update(port="eighty"),
            'spec.ports[0].port: Invalid value: "eighty": must be of type integer',
            id="port-type",
        ),
        pytest.param(
            lambda s: s.update(externalTrafficPolicy="Nearest"),
            'spec.externalTrafficPolicy: Unsupported value: "Nearest": '
            'supported values: "Cluster", "Local"',
            id="etp-enum",
        ),
        pytest.param(
            lambda s: s.update(persistence={"type": "Cookie"}),
            'spec.persistence.type: Unsupported value: "Cookie": supported values: "SourceIP"',
            id="persistence-enum",
        ),
        pytest.param(
            lambda s: s.update(endpoints={"not": "a list"}),
            "spec.endpoints: Invalid value: {'not': 'a list'}: must be of type array",
            id="endpoints-type",
        ),
    ],
)
def test_validation_names_path_and_reason(mutate: Any, expected: str) -> None:
    doc = lb_doc()
    mutate(doc["spec"])
    assert messages(doc) == [expected]


def test_error_message_names_kind_and_object() -> None:
    doc = lb_doc()
    doc["spec"]["ports"][0]["protocol"] = "SCTP"
    doc["spec"]["endpoints"][0]["addresses"] = [{}]
    with pytest.raises(errors.APIValidationError) as info:
        registry.parse(doc)
    text = str(info.value)
    assert text.startswith("LoadBalancer tenant-a/web is invalid: ")
    assert (
        "spec.endpoints[0].addresses[0]: Invalid value: either ip or hostname must be set" in text
    )
    assert 'spec.ports[0].protocol: Unsupported value: "SCTP"' in text
    assert len(info.value.causes) == 2


def test_status_conditions_validate_reason_format() -> None:
    doc = lb_doc()
    doc["status"] = {
        "conditions": [
            {
                "type": "Ready",
                "status": "Maybe",
                "reason": "not camel",
                "message": "",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            }
        ]
    }
    found = messages(doc)
    assert found[0] == (
        'status.conditions[0].status: Unsupported value: "Maybe": '
        'supported values: "True", "False", "Unknown"'
    )
    assert found[1].startswith(
        'status.conditions[0].reason: Invalid value: "not camel": should match'
    )


def test_addresses_kind() -> None:
    doc: dict[str, Any] = {
        "apiVersion": "kubelb.k8c.io/v1alpha1",
        "kind": "Addresses",
        "metadata": {"name": addresses.DEFAULT_NAME, "namespace": "tenant-a"},
        "spec": {"addresses": [{"ip": "10.0.0.1"}, {"hostname": "n2", "extra": 1}]},
    }
    model = registry.parse(doc)
    assert isinstance(model, addresses.Addresses)
    assert [a.address for a in model.spec.addresses] == ["10.0.0.1", "n2"]
    assert registry.dump(model) == doc
    doc["spec"]["addresses"] = [{"hostname": ""}]
    assert messages(doc) == ["spec.addresses[0]: Invalid value: either ip or hostname must be set"]
