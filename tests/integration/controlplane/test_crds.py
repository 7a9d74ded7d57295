"""Our CRDs install into the real API server, and its schema validation rejects bad objects."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client

from kubelb.localcluster import crds
from tests.support import cluster

pytestmark = pytest.mark.integration

GROUP, VERSION = "kubelb.k8c.io", "v1alpha1"


def _crd_names() -> list[str]:
    return [doc["metadata"]["name"] for doc in crds.load(crds.crd_files(crds.DEFAULT_CRD_DIR))]


def _loadbalancer(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "LoadBalancer",
        "metadata": {"name": name},
        "spec": spec,
    }


VALID_SPEC = {
    "endpoints": [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"name": "http", "port": 30080}]}],
    "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
}


def test_the_repository_has_crds() -> None:
    assert "loadbalancers.kubelb.k8c.io" in _crd_names()


@pytest.mark.parametrize("which", ["management", "tenant"])
async def test_crds_are_established(which: str, request: pytest.FixtureRequest) -> None:
    target: cluster.Cluster = request.getfixturevalue(which)
    async with target.api_client() as api:
        listed = await client.ApiextensionsV1Api(api).list_custom_resource_definition()
    established = {
        crd.metadata.name
        for crd in listed.items
        if any(c.type == "Established" and c.status == "True" for c in crd.status.conditions)
    }
    assert set(_crd_names()) <= established


async def test_valid_loadbalancer_is_accepted(management_api, management_namespace) -> None:
    objects = client.CustomObjectsApi(management_api)
    created = await objects.create_namespaced_custom_object(
        GROUP, VERSION, management_namespace, "loadbalancers", _loadbalancer("ok", VALID_SPEC)
    )
    # Defaulting from the schema happened on the server.
    assert created["spec"]["endpoints"][0]["ports"][0]["protocol"] == "TCP"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param(
            {"ports": VALID_SPEC["ports"]}, "spec.endpoints: Required value", id="missing-endpoints"
        ),
        pytest.param(
            {**VALID_SPEC, "endpoints": []}, "spec.endpoints: Invalid value", id="empty-endpoints"
        ),
        pytest.param(
            {**VALID_SPEC, "ports": [{"port": 80, "protocol": "SCTP"}]},
            'spec.ports[0].protocol: Unsupported value: "SCTP"',
            id="bad-protocol",
        ),
        pytest.param(
            {**VALID_SPEC, "ports": [{"port": "eighty"}]},
            'spec.ports[0].port: Invalid value: "string"',
            id="port-not-integer",
        ),
        pytest.param(
            {"endpoints": [{"addresses": [{}], "ports": [{"port": 1}]}]},
            "either ip or hostname must be set",
            id="address-without-ip-or-hostname",
        ),
    ],
)
async def test_invalid_loadbalancer_is_rejected(
    management_api, management_namespace, spec: dict[str, Any], expected: str
) -> None:
    objects = client.CustomObjectsApi(management_api)
    with pytest.raises(client.ApiException) as caught:
        await objects.create_namespaced_custom_object(
            GROUP, VERSION, management_namespace, "loadbalancers", _loadbalancer("bad", spec)
        )
    assert caught.value.status == 422, caught.value.body
    assert expected in json.loads(caught.value.body or b"")["message"]
    listed = await objects.list_namespaced_custom_object(
        GROUP, VERSION, management_namespace, "loadbalancers"
    )
    assert listed["items"] == []


def test_crd_files_are_crds(tmp_path) -> None:
    (tmp_path / "x.yaml").write_text(yaml.safe_dump({"kind": "ConfigMap"}))
    with pytest.raises(crds.CRDError, match="expected kind CustomResourceDefinition"):
        crds.load(crds.crd_files(tmp_path))
