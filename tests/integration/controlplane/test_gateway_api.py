"""The local control plane serves the standard-channel Gateway API: Gateway, HTTPRoute and
GRPCRoute objects can be created in both clusters, and the CRDs' schemas validate them."""

from __future__ import annotations

import pytest
from kubernetes_asyncio import client

from kubelb.api import gatewayapi
from tests.support import cluster
from tests.support.gateway_objects import GROUP, VERSION, gateway, grpc_route, http_route

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("which", ["management", "tenant"])
async def test_standard_channel_crds_are_established(which, request):
    target: cluster.Cluster = request.getfixturevalue(which)
    async with target.api_client() as api:
        listed = await client.ApiextensionsV1Api(api).list_custom_resource_definition()
    established = {
        crd.metadata.name: crd.metadata.annotations[gatewayapi.BUNDLE_VERSION_ANNOTATION]
        for crd in listed.items
        if crd.spec.group.startswith(GROUP)
        and any(c.type == "Established" and c.status == "True" for c in crd.status.conditions)
    }
    expected = {c["metadata"]["name"] for c in gatewayapi.crds("standard")}
    assert set(established) == expected
    assert set(established.values()) == {gatewayapi.version()}


@pytest.mark.parametrize("which", ["management", "tenant"])
async def test_gateway_and_routes_can_be_created(which, request):
    target: cluster.Cluster = request.getfixturevalue(which)
    namespace = await target.create_namespace("gwapi")
    try:
        async with target.api_client() as api:
            objects = client.CustomObjectsApi(api)
            for plural, body in (
                ("gateways", gateway("kubelb")),
                ("httproutes", http_route("web", "kubelb")),
                ("grpcroutes", grpc_route("rpc", "kubelb")),
            ):
                await objects.create_namespaced_custom_object(
                    GROUP, VERSION, namespace, plural, body
                )
            route = await objects.get_namespaced_custom_object(
                GROUP, VERSION, namespace, "httproutes", "web"
            )
            listed = await objects.list_namespaced_custom_object(
                GROUP, VERSION, namespace, "gateways"
            )
    finally:
        await target.delete_namespace(namespace)
    assert route["spec"]["parentRefs"][0]["name"] == "kubelb"
    # Defaults come from the CRD's schema, so the served schema is the vendored one.
    assert route["spec"]["parentRefs"][0]["kind"] == "Gateway"
    assert route["spec"]["rules"][0]["backendRefs"][0]["weight"] == 1
    assert [g["metadata"]["name"] for g in listed["items"]] == ["kubelb"]


async def test_schema_rejects_an_invalid_route(tenant_api, tenant_namespace):
    objects = client.CustomObjectsApi(tenant_api)
    with pytest.raises(client.ApiException) as caught:
        await objects.create_namespaced_custom_object(
            GROUP, VERSION, tenant_namespace, "httproutes", http_route("bad", "kubelb", "Glob")
        )
    assert caught.value.status == 422
    assert "Glob" in str(caught.value.body)
