"""Two tenants end to end: same-named Services in two tenant clusters get their own
LoadBalancers and addresses and reach only their own nodes; the kubeconfig the running manager
issued to a tenant (the one its agent uses) is confined by real RBAC."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kubelb.api import labels
from kubelb.kube import client, errors, kubeconfig, objects, resources
from tests.e2e import backends
from tests.e2e.conftest import POOL, Stack
from tests.e2e.helpers import answered, lb_service, load_balancers_of, node_ports, served_address
from tests.e2e.stack import MANAGER_NAMESPACE

pytestmark = pytest.mark.e2e


async def test_two_tenants_with_same_named_services(stack: Stack, mgmt, kube_a, kube_b, shop):
    alpha, beta = stack.tenants["alpha"], stack.tenants["beta"]
    port = backends.free_port(POOL)  # the same port in both: they cannot share an address
    body = lb_service("web", [{"name": "http", "port": port}])
    created = {
        "alpha": await kube_a.create(resources.SERVICES, body, namespace=shop),
        "beta": await kube_b.create(resources.SERVICES, body, namespace=shop),
    }
    async with (
        backends.node_backends(alpha.nodes, node_ports(created["alpha"])["http"], label="a/"),
        backends.node_backends(beta.nodes, node_ports(created["beta"])["http"], label="b/"),
    ):
        ip_a = await served_address(kube_a, shop, "web")
        ip_b = await served_address(kube_b, shop, "web")
        assert ip_a != ip_b
        for _ in range(6):
            assert (await answered(ip_a, port, b"x")).startswith(b"a/")
            assert (await answered(ip_b, port, b"x")).startswith(b"b/")

    for side, svc in ((alpha, created["alpha"]), (beta, created["beta"])):
        lbs = await load_balancers_of(mgmt, side.namespace, shop)
        assert [objects.name(lb) for lb in lbs] == [objects.uid(svc)]
        assert lbs[0]["metadata"]["labels"][labels.ORIGIN_NAME] == "web"
        assert await mgmt.get(resources.SERVICES, f"envoy-{objects.uid(svc)}",
                              namespace=side.namespace)  # fmt: skip


@contextlib.asynccontextmanager
async def issued_client(path: Path) -> AsyncIterator[client.Client]:
    """A client with exactly the credentials the agent runs with."""
    source = kubeconfig.KubeconfigFile(path)
    await source.api()
    kube = client.Client(source, field_manager="kubelb-e2e")
    try:
        yield kube
    finally:
        await kube.close()


async def test_issued_kubeconfig_is_confined_by_rbac(stack: Stack, mgmt, kube_b, shop):
    alpha, beta = stack.tenants["alpha"], stack.tenants["beta"]
    svc = await kube_b.create(resources.SERVICES, lb_service("theirs", [{"name": "p",
                              "port": backends.free_port(POOL)}]), namespace=shop)  # fmt: skip
    theirs = objects.uid(svc)
    await served_address(kube_b, shop, "theirs")  # beta's LB exists and is served
    ns, other = alpha.namespace, beta.namespace
    lb = {"metadata": {"name": "probe"}, "spec": {"ports": [{"port": 1}], "endpoints": []}}

    async with issued_client(alpha.kubeconfig) as kube:
        # What the agent needs works (so the refusals below are RBAC's, not a broken login).
        assert isinstance((await kube.list(resources.LOAD_BALANCERS, namespace=ns)).items, list)
        await kube.get(resources.ADDRESSES, "default", namespace=ns)
        await kube.get(resources.TENANT_STATES, "default", namespace=ns)

        denied = {
            "list Secrets in its namespace": kube.list(resources.SECRETS, namespace=ns),
            "read its kubeconfig Secret": kube.get(resources.SECRETS, "kubelb-ccm-kubeconfig",
                                                   namespace=ns),
            "list Services in its namespace": kube.list(resources.SERVICES, namespace=ns),
            "read a Service in its namespace": kube.get(resources.SERVICES, f"envoy-{theirs}",
                                                     namespace=ns),
            "list another tenant's LoadBalancers": kube.list(resources.LOAD_BALANCERS,
                                                             namespace=other),
            "read another tenant's LoadBalancer": kube.get(resources.LOAD_BALANCERS, theirs,
                                                           namespace=other),
            "create in another tenant's namespace": kube.create(resources.LOAD_BALANCERS, lb,
                                                                namespace=other),
            "read another tenant's Addresses": kube.get(resources.ADDRESSES, "default",
                                                        namespace=other),
            "list LoadBalancers cluster-wide": kube.list(resources.LOAD_BALANCERS),
            "list Namespaces": kube.list(resources.NAMESPACES),
            "list the manager's namespace": kube.list(resources.LOAD_BALANCERS,
                                                      namespace=MANAGER_NAMESPACE),
            "list Tenants": kube.list(resources.TENANTS),
            "list Deployments in its namespace": kube.list(resources.DEPLOYMENTS, namespace=ns),
        }  # fmt: skip
        not_forbidden = []
        for what, request in denied.items():
            try:
                await request
            except errors.ForbiddenError:
                continue
            except errors.ApiError as exc:  # a 401 or 404 would not prove RBAC
                not_forbidden.append(f"{what}: {exc}")
                continue
            not_forbidden.append(f"{what}: allowed")
        assert not_forbidden == []
    assert await mgmt.get(resources.LOAD_BALANCERS, theirs, namespace=other)
