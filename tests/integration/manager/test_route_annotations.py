"""Annotation propagation for Routes on the real API server, Kubernetes deployer: the
annotations the Config lets through from the tenant's Routes' sources (and its defaults for
Services) land on the tenant's L7 entry Service `envoy-<tenant-ns>-l7`; when two Routes set a
key to different values the older keeps it and the newer one's condition says so; a key no
Route asks for any more is removed, while an annotation someone else set on the Service stays."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from kubelb.kube import resources
from kubelb.manager import l7entry, propagation
from tests.integration.manager.helpers import addresses, eventually, get
from tests.integration.manager.test_routes import applied, ingress_route

pytestmark = pytest.mark.integration

IPS = "metallb.universe.tf/loadBalancerIPs"
OWNER = "example.com/owner"  # set on the entry Service by someone else


def annotated_route(name: str, host: str, notes: dict[str, str]) -> dict[str, Any]:
    route = ingress_route(name, host=host, node_port=30080)
    route["spec"]["source"]["kubernetes"]["resource"]["metadata"]["annotations"] = notes
    return route


async def test_route_annotations_reach_the_entry_service(
    kube, tenants, managers, manager_settings, management_namespace
):
    config = {"metadata": {"name": "default"}, "spec": {
        "propagatedAnnotations": {"metallb.universe.tf/*": "", "team": ""},
        "defaultAnnotations": {"service": {"example.com/pool": "public"}},
    }}  # fmt: skip
    await kube.create(resources.CONFIGS, config, namespace=management_namespace)
    ns = await tenants()
    await kube.create(resources.ADDRESSES, addresses("10.0.0.1"), namespace=ns)
    # Names sort as their ages do, so a tie of creation seconds keeps the same order.
    older, newer = f"a-{uuid.uuid4()}", f"b-{uuid.uuid4()}"
    notes = {"team": "blue", IPS: "192.0.2.10", "other": "not allowed"}
    first = annotated_route(older, "a.example.com", notes)
    await kube.create(resources.ROUTES, first, namespace=ns)
    entry = l7entry.entry_service_name(ns)

    def entry_says(expected: dict[str, str]):
        async def check():
            svc = await get(kube, resources.SERVICES, ns, entry)
            notes = ((svc or {}).get("metadata") or {}).get("annotations") or {}
            return svc if notes == expected else None

        return check

    async with managers(manager_settings):
        await eventually(entry_says({
            "team": "blue", IPS: "192.0.2.10", "example.com/pool": "public",
            propagation.RECORD: f"example.com/pool,{IPS},team",
        }), what="the older Route's annotations on the entry Service")  # fmt: skip
        await kube.patch(resources.SERVICES, entry, {"metadata": {"annotations": {OWNER: "ops"}}},
                         namespace=ns)  # fmt: skip
        # An address (MetalLB's part, played here): the Routes are then built and judged.
        svc = await get(kube, resources.SERVICES, ns, entry)
        svc["status"] = {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}
        await kube.replace_status(resources.SERVICES, svc)

        second = annotated_route(newer, "b.example.com", {"team": "red"})
        await kube.create(resources.ROUTES, second, namespace=ns)

        async def newer_told():
            condition = applied(await get(kube, resources.ROUTES, ns, newer))
            message = (condition or {}).get("message", "")
            return condition if "annotation team='red'" in message else None

        told = await eventually(newer_told, what="the newer Route told of the conflict")
        assert told["status"] == "False"
        assert f"Route {older} (Ingress default/shop) set it to 'blue' first" in told["message"]
        assert "annotation" not in (applied(await get(kube, resources.ROUTES, ns, older)) or {}
                                    ).get("message", "")  # fmt: skip

        # The older Route drops its address annotation: removed, the rest stays.
        await kube.patch(resources.ROUTES, older, {"spec": {"source": {"kubernetes": {
            "resource": {"metadata": {"annotations": {IPS: None}}}}}}},
            namespace=ns)  # fmt: skip
        await eventually(entry_says({
            "team": "blue", "example.com/pool": "public", OWNER: "ops",
            propagation.RECORD: "example.com/pool,team",
        }), what="the dropped annotation removed from the entry Service")  # fmt: skip

        # The older Route deleted: the newer one's value applies and its problem goes.
        await kube.delete(resources.ROUTES, older, namespace=ns)
        await eventually(entry_says({
            "team": "red", "example.com/pool": "public", OWNER: "ops",
            propagation.RECORD: "example.com/pool,team",
        }), what="the newer Route's value on the entry Service")  # fmt: skip

        async def newer_untold():
            condition = applied(await get(kube, resources.ROUTES, ns, newer))
            message = (condition or {}).get("message", "")
            return condition if condition and "annotation" not in message else None

        await eventually(newer_untold, what="the conflict gone from the newer Route")

        # The Config propagates nothing any more: only the other owner's annotation is left.
        await kube.patch(resources.CONFIGS, "default", {"spec": {
            "propagatedAnnotations": None, "defaultAnnotations": None}},
            namespace=management_namespace)  # fmt: skip
        await eventually(entry_says({OWNER: "ops", propagation.RECORD: ""}),
                         what="the propagated annotations removed")  # fmt: skip
