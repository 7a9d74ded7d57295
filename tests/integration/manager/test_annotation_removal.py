"""Annotations kubelb stops setting are removed from the management Services on the real API
server (Kubernetes deployer), while annotations others set stay: one a LoadBalancer no longer
carries, or the Config no longer propagates, goes from its Service `envoy-<lb>`; external-dns's
go from the tenant's L7 entry Service `envoy-<tenant-ns>-l7` once it serves no hostname."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from kubelb.api import annotations as api_annotations
from kubelb.kube import client, resources
from kubelb.manager import l7entry, lbservice, propagation
from tests.integration.manager.helpers import addresses, eventually, get, load_balancer
from tests.integration.manager.test_routes import ingress_route

pytestmark = pytest.mark.integration

IPS = "metallb.universe.tf/loadBalancerIPs"
OWNER = "example.com/owner"  # set on the Service by someone else
RECORD = propagation.RECORD


def annotated(
    kube: client.Client, ns: str, name: str, expected: dict[str, str]
) -> Callable[[], Awaitable[Any]]:
    async def check():
        svc = await get(kube, resources.SERVICES, ns, name)
        notes = ((svc or {}).get("metadata") or {}).get("annotations") or {}
        return svc if notes == expected else None

    return check


async def test_dropped_annotations_leave_the_load_balancer_service(
    kube, tenants, managers, manager_settings, management_namespace
):
    config = {"metadata": {"name": "default"}, "spec": {
        "propagatedAnnotations": {"metallb.universe.tf/*": "", "team": ""}}}  # fmt: skip
    await kube.create(resources.CONFIGS, config, namespace=management_namespace)
    ns = await tenants()
    await kube.create(resources.ADDRESSES, addresses("10.0.0.1"), namespace=ns)
    name = f"lb-{uuid.uuid4().hex[:8]}"
    notes = {"team": "blue", IPS: "192.0.2.10", "other": "not allowed"}
    lb = load_balancer(name, ports=[("http", 80, 30080)], annotations=notes)
    await kube.create(resources.LOAD_BALANCERS, lb, namespace=ns)
    service = lbservice.service_name(name)

    async with managers(manager_settings):
        await eventually(annotated(kube, ns, service, {
            "team": "blue", IPS: "192.0.2.10", RECORD: f"{IPS},team"}),
            what="the LoadBalancer's annotations on its Service")  # fmt: skip
        await kube.patch(resources.SERVICES, service,
                         {"metadata": {"annotations": {OWNER: "ops"}}}, namespace=ns)  # fmt: skip

        # The tenant drops its address annotation: removed, the rest stays.
        await kube.patch(resources.LOAD_BALANCERS, name,
                         {"metadata": {"annotations": {IPS: None}}}, namespace=ns)  # fmt: skip
        await eventually(annotated(kube, ns, service, {
            "team": "blue", OWNER: "ops", RECORD: "team"}),
            what="the dropped annotation removed from the Service")  # fmt: skip

        # The Config propagates nothing any more: only the other owner's annotation is left.
        await kube.patch(resources.CONFIGS, "default", {"spec": {"propagatedAnnotations": None}},
                         namespace=management_namespace)  # fmt: skip
        await eventually(
            annotated(kube, ns, service, {OWNER: "ops", RECORD: ""}),
            what="the annotations the Config no longer lets through removed",
        )


async def test_external_dns_annotations_leave_the_entry_service_with_the_hostname(
    kube, tenants, managers, manager_settings, management_namespace
):
    dns = {"wildcardDomain": "*.lb.example.com", "useDNSAnnotations": True}
    await kube.create(resources.CONFIGS, {"metadata": {"name": "default"}, "spec": {"dns": dns}},
                      namespace=management_namespace)  # fmt: skip
    ns = await tenants()
    await kube.create(resources.ADDRESSES, addresses("10.0.0.1"), namespace=ns)
    name = f"lb-{uuid.uuid4().hex[:8]}"
    wildcard = {api_annotations.REQUEST_WILDCARD_DOMAIN: "true"}
    lb = load_balancer(name, ports=[("http", 8080, 30080)], annotations=wildcard)
    await kube.create(resources.LOAD_BALANCERS, lb, namespace=ns)
    # A Route of the tenant's own keeps the entry Service once the hostname goes.
    route = f"r-{uuid.uuid4().hex[:8]}"
    await kube.create(resources.ROUTES, ingress_route(route, host="shop.example.com",
                                                      node_port=30081), namespace=ns)  # fmt: skip
    entry = l7entry.entry_service_name(ns)
    keys = (api_annotations.EXTERNAL_DNS_HOSTNAME, api_annotations.EXTERNAL_DNS_TTL)

    async def named():
        svc = await get(kube, resources.SERVICES, ns, entry)
        notes = ((svc or {}).get("metadata") or {}).get("annotations") or {}
        return notes if api_annotations.EXTERNAL_DNS_HOSTNAME in notes else None

    async with managers(manager_settings):
        notes = await eventually(named, what="external-dns's annotations on the entry Service")
        assert notes[api_annotations.EXTERNAL_DNS_HOSTNAME].endswith(".lb.example.com")
        assert notes[RECORD] == ",".join(sorted(keys))
        await kube.patch(resources.SERVICES, entry,
                         {"metadata": {"annotations": {OWNER: "ops"}}}, namespace=ns)  # fmt: skip

        # The LoadBalancer no longer asks for a hostname: external-dns's records go.
        await kube.patch(resources.LOAD_BALANCERS, name,
                         {"metadata": {"annotations": dict.fromkeys(wildcard)}},
                         namespace=ns)  # fmt: skip
        await eventually(
            annotated(kube, ns, entry, {OWNER: "ops", RECORD: ""}),
            what="external-dns's annotations removed from the entry Service",
        )
