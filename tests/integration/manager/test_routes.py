"""Routes through the manager on the real API server and real Envoy processes (process
deployer): a Route embedding an Ingress, written in the tenant namespace as the agent would, is
served by the tenant's Envoy at its L7 entry (an address from the pool, port 80), its status
says so in upstream's shape, nothing is written again while nothing changes, and deleting it
removes the listener, the entry Service and then the finalizer. A tenant with Ingress disabled
(by the Config or its Tenant) serves nothing and its Route says why. A Gateway and an HTTPRoute
(Gateway API objects embedded whole: the management cluster needs no Gateway API CRDs) are
served on the Gateway's listener port, while a listener port an L4 LoadBalancer already holds
is reported on the Gateway and the LoadBalancer keeps serving; a port Envoy cannot bind is
reported on the Routes with Envoy's error. The Kubernetes deployer's entry Service selects the
Envoy pods. Deleting a Tenant drains its Routes."""

from __future__ import annotations

import socket
import uuid
from typing import Any

import pytest

from kubelb.api import finalizers
from kubelb.kube import client, resources
from kubelb.manager import common, l7entry
from kubelb.observe import metrics
from tests.integration.manager.helpers import (
    addresses,
    echo_server,
    eventually,
    exchange,
    free_port,
    get,
    http_backend,
    http_get,
    ingress_ips,
    load_balancer,
    ready,
    settled,
)

pytestmark = pytest.mark.integration

POOL_ADDRESS = "127.0.0.57"
NODE_ADDRESS = "127.0.0.22"
HOST = "shop.example.com"


def ingress_route(name: str, *, host: str, node_port: int) -> dict[str, Any]:
    """A Route as the agent writes it for Ingress `default/shop` with backend Service `web`."""
    backend = {"service": {"name": "web", "port": {"number": 80}}}
    return {
        "metadata": {"name": name},
        "spec": {
            "endpoints": [{"name": "default", "addressesReference": {"name": "default"}}],
            "source": {"kubernetes": {
                "resource": {
                    "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                    "metadata": {"name": "shop", "namespace": "default"},
                    "spec": {"rules": [{"host": host, "http": {"paths": [
                        {"path": "/", "pathType": "Prefix", "backend": backend}]}}]},
                },
                "services": [{
                    "apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": "web", "namespace": "default"},
                    "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": node_port}]},
                }],
            }},
        },
    }  # fmt: skip


def applied(route: dict[str, Any] | None) -> dict[str, Any] | None:
    state = (((route or {}).get("status") or {}).get("resources") or {}).get("route") or {}
    for c in state.get("conditions") or ():
        if c.get("type") == "ResourceAppliedSuccessfully":
            return dict(c)
    return None


async def test_ingress_served_stable_and_deleted(kube, tenants, managers, manager_settings):
    ns = await tenants()
    node_port = free_port(NODE_ADDRESS)
    name = str(uuid.uuid4())
    await kube.create(resources.ADDRESSES, addresses(NODE_ADDRESS), namespace=ns)
    route = ingress_route(name, host=HOST, node_port=node_port)
    await kube.create(resources.ROUTES, route, namespace=ns)
    entry = l7entry.entry_service_name(ns)

    async def served():
        route = await get(kube, resources.ROUTES, ns, name)
        condition = applied(route)
        return route if condition and condition["status"] == "True" else None

    async with (
        http_backend(NODE_ADDRESS, node_port, "web"),
        managers(
            manager_settings, envoy_deployer="process", address_pool=(POOL_ADDRESS,)
        ) as manager,  # fmt: skip
    ):
        route = await eventually(served, what="Route applied")
        assert finalizers.CLEANUP in route["metadata"]["finalizers"]
        state = route["status"]["resources"]["route"]
        assert {k: state[k] for k in ("apiVersion", "kind", "name", "namespace",
                                      "generatedName")} == {
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "shop",
            "namespace": "default", "generatedName": "default-shop"}  # fmt: skip
        assert state["status"] == {"loadBalancer": {"ingress": [{"ip": POOL_ADDRESS}]}}
        (condition,) = state["conditions"]
        assert (condition["reason"], condition["message"]) == ("InstallationSuccessful", "Success")
        (service_state,) = route["status"]["resources"]["services"].values()
        assert (service_state["name"], service_state["kind"]) == ("web", "Service")
        service_condition = applied({"status": {"resources": {"route": service_state}}})
        assert service_condition is not None
        assert service_condition["status"] == "True"

        svc = await get(kube, resources.SERVICES, ns, entry)
        assert ingress_ips(svc) == [POOL_ADDRESS]
        assert [p["port"] for p in svc["spec"]["ports"]] == [80]

        answer = await eventually(
            lambda: _ok(http_get(POOL_ADDRESS, 80, "/cart", host_header=HOST)),
            what="a request through Envoy",
        )
        assert answer == (200, "web /cart")
        unknown = await http_get(POOL_ADDRESS, 80, "/", host_header="other.example.com")
        assert unknown is not None
        assert unknown[0] == 404

        # Reconcile stability: a tenant reconciled again with nothing changed writes nothing.
        await settled(manager, ns)
        before = manager.writer.writes_in[ns]
        # The Route's finalizer and its status, the entry Service and the address the pool gave
        # it; a loaded machine may see the Route's status once more, written while the address
        # was still on its way (the entry Service's address arrives by a separate write).
        assert before in (4, 5), before
        reconciles = manager.core.route_controller.reconciles
        manager.core.route_controller.enqueue(common.tenant_key(ns))
        await eventually(lambda: _true(manager.core.route_controller.reconciles > reconciles),
                         what="the tenant reconciled again")  # fmt: skip
        await settled(manager, ns)
        assert manager.writer.writes_in[ns] == before
        assert (await get(kube, resources.ROUTES, ns, name))["metadata"]["resourceVersion"] == (
            route["metadata"]["resourceVersion"])  # fmt: skip

        await kube.delete(resources.ROUTES, name, namespace=ns)

        async def gone():
            return await get(kube, resources.ROUTES, ns, name) is None

        await eventually(gone, what="the finalizer removed and the Route gone")
        assert manager.cache.get_snapshot(ns) is None  # nothing else to serve
        await eventually(lambda: _absent(kube, ns, entry), what="the entry Service deleted")

        async def closed():
            return await http_get(POOL_ADDRESS, 80, "/", host_header=HOST) is None

        await eventually(closed, what="the listener gone")


async def test_ingress_disabled_by_the_config_says_why(
    kube, tenants, managers, manager_settings, management_namespace
):
    ns = await tenants()
    await kube.create(resources.CONFIGS, {"metadata": {"name": "default"},
                                          "spec": {"ingress": {"disable": True}}},
                      namespace=management_namespace)  # fmt: skip
    await kube.create(resources.ADDRESSES, addresses(NODE_ADDRESS), namespace=ns)
    name = str(uuid.uuid4())
    route = ingress_route(name, host=HOST, node_port=free_port(NODE_ADDRESS))
    await kube.create(resources.ROUTES, route, namespace=ns)

    async def refused():
        condition = applied(await get(kube, resources.ROUTES, ns, name))
        return condition if condition and condition["status"] == "False" else None

    async with managers(manager_settings, envoy_deployer="process",
                        address_pool=(POOL_ADDRESS,)) as manager:  # fmt: skip
        condition = await eventually(refused, what="the Route says it is not served")
        assert condition["reason"] == "InstallationFailed"
        assert "spec.ingress.disable" in condition["message"]
        assert "Config" in condition["message"]
        await settled(manager, ns)
        entry = l7entry.entry_service_name(ns)
        assert await get(kube, resources.SERVICES, ns, entry) is None
        assert manager.cache.get_snapshot(ns) is None
        assert not manager.infra.ready(ns)  # no Envoy for a tenant with nothing to serve


async def _ok(request: Any) -> Any:
    answer = await request
    return answer if answer is not None and answer[0] == 200 else None


async def _true(value: bool) -> bool:
    return value


async def _absent(kube: client.Client, ns: str, name: str) -> bool:
    return await get(kube, resources.SERVICES, ns, name) is None


async def test_kubernetes_deployer_entry_service(kube, tenants, managers, manager_settings):
    """The Kubernetes deployer: the entry Service selects the tenant's Envoy pods and maps port
    80 to an allocated Envoy port below the LoadBalancers' range; the Route waits for the
    Service's external address (MetalLB's part, played here) and reports it once it is there;
    Envoy binds every interface on the allocated port; with no kubelet here no Envoy pod gets
    ready, which the Route says. An endpoint the policy refuses is named on the Route."""
    ns = await tenants()
    await kube.create(resources.ADDRESSES, addresses("10.0.0.1"), namespace=ns)
    name = str(uuid.uuid4())
    await kube.create(resources.ROUTES, ingress_route(name, host=HOST, node_port=30080),
                      namespace=ns)  # fmt: skip
    entry = l7entry.entry_service_name(ns)

    def condition_is(status: str):
        async def check():
            condition = applied(await get(kube, resources.ROUTES, ns, name))
            return condition if condition and condition["status"] == status else None

        return check

    async with managers(manager_settings) as manager:
        waiting = await eventually(condition_is("False"), what="the Route waiting for an address")
        assert f"Service {entry}" in waiting["message"]
        svc = await get(kube, resources.SERVICES, ns, entry)
        assert svc["spec"]["type"] == "LoadBalancer"
        assert svc["spec"]["selector"] == {"app.kubernetes.io/name": ns}
        ((port, target),) = [(p["port"], p["targetPort"]) for p in svc["spec"]["ports"]]
        assert port == 80
        assert 1024 <= target < 10000
        await eventually(lambda: get(kube, resources.DEPLOYMENTS, ns, f"envoy-{ns}"),
                         what="the tenant's Envoy Deployment")  # fmt: skip

        svc["status"] = {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}
        await kube.replace_status(resources.SERVICES, svc)

        async def envoy_not_ready():
            found = await condition_is("False")()
            return found if found and "is not ready" in found["message"] else None

        await eventually(envoy_not_ready, what="the Route waiting for the tenant's Envoy")
        route = await get(kube, resources.ROUTES, ns, name)
        assert route["status"]["resources"]["route"]["status"] == {
            "loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}  # fmt: skip
        config = manager.snapshots.published[ns]
        assert [(li.address, li.port) for li in config.listeners] == [("0.0.0.0", target)]

        # An endpoint the tenant's policy refuses (loopback, on a cluster) is left out and named.
        await kube.patch(resources.ADDRESSES, "default",
                         {"spec": {"addresses": [{"ip": "10.0.0.1"}, {"ip": "127.0.0.1"}]}},
                         namespace=ns)  # fmt: skip

        async def refused():
            found = await condition_is("False")()
            return found if found and "127.0.0.1" in found["message"] else None

        await eventually(refused, what="the refused endpoint reported")


def gateway_route(name: str, *listeners: tuple[str, int]) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "endpoints": [{"name": "default", "addressesReference": {"name": "default"}}],
            "source": {"kubernetes": {"resource": {
                "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
                "metadata": {"name": "kubelb", "namespace": "default"},
                "spec": {"gatewayClassName": "kubelb", "listeners": [
                    {"name": n, "port": p, "protocol": "HTTP"} for n, p in listeners]},
            }}},
        },
    }  # fmt: skip


def http_route(name: str, *, section: str, host: str, node_port: int) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "endpoints": [{"name": "default", "addressesReference": {"name": "default"}}],
            "source": {"kubernetes": {
                "resource": {
                    "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                    "metadata": {"name": "shop", "namespace": "default"},
                    "spec": {"parentRefs": [{"name": "kubelb", "sectionName": section}],
                             "hostnames": [host],
                             "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]},
                },
                "services": [{
                    "apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": "web", "namespace": "default"},
                    "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": node_port}]},
                }],
            }},
        },
    }  # fmt: skip


async def test_gateway_and_httproute_beside_a_load_balancer(
    kube, tenants, managers, manager_settings
):
    pool = "127.0.0.59"
    ns = await tenants()
    web_port, lb_node_port = free_port(NODE_ADDRESS), free_port(NODE_ADDRESS)
    listener_port, lb_port = free_port(pool), free_port(pool)
    await kube.create(resources.ADDRESSES, addresses(NODE_ADDRESS), namespace=ns)
    lb = load_balancer("db", ports=[("tcp", lb_port, lb_node_port)])
    await kube.create(resources.LOAD_BALANCERS, lb, namespace=ns)
    gateway, route = str(uuid.uuid4()), str(uuid.uuid4())

    async def condition(name: str, status: str):
        found = applied(await get(kube, resources.ROUTES, ns, name))
        return found if found and found["status"] == status else None

    async with (
        http_backend(NODE_ADDRESS, web_port, "web"),
        echo_server(NODE_ADDRESS, lb_node_port, b"db:"),
        managers(manager_settings, envoy_deployer="process", address_pool=(pool,)),
    ):

        async def lb_ready():
            found = ready(await get(kube, resources.LOAD_BALANCERS, ns, "db"))
            return found and found["status"] == "True"

        await eventually(lb_ready, what="the LoadBalancer served")
        # The Gateway asks for the LoadBalancer's port too: only that listener is refused.
        listeners = (("web", listener_port), ("clash", lb_port))
        await kube.create(resources.ROUTES, gateway_route(gateway, *listeners), namespace=ns)
        shop = http_route(route, section="web", host=HOST, node_port=web_port)
        await kube.create(resources.ROUTES, shop, namespace=ns)
        await eventually(lambda: condition(route, "True"), what="the HTTPRoute applied")
        refused = await eventually(lambda: condition(gateway, "False"), what="the clash reported")
        assert str(lb_port) in refused["message"]

        answer = await eventually(
            lambda: _ok(http_get(pool, listener_port, "/shop", host_header=HOST)),
            what="a request through the Gateway listener",
        )
        assert answer == (200, "web /shop")
        other = await http_get(pool, listener_port, "/", host_header="other.example.com")
        assert other is not None
        assert other[0] == 404
        assert await exchange(pool, lb_port, b"ping") == b"db:ping"  # the L4 listener kept

        stored = await get(kube, resources.ROUTES, ns, route)
        parents = stored["status"]["resources"]["route"]["status"]["parents"]
        assert [c["type"] for c in parents[0]["conditions"]] == ["Accepted", "ResolvedRefs"]
        sample = metrics.REGISTRY.get_sample_value
        assert sample("kubelb_manager_routes",
                      {"namespace": ns, "tenant": ns.removeprefix("tenant-"),
                       "route_type": "HTTPRoute"}) == 1  # fmt: skip
        assert sample("kubelb_manager_route_reconcile_total",
                      {"namespace": ns, "route_type": "Gateway", "result": "success"})  # fmt: skip
        assert sample("kubelb_manager_route_reconcile_duration_seconds_count",
                      {"namespace": ns})  # fmt: skip


async def test_tenant_deletion_drains_its_routes(kube, managers, manager_settings):
    """Deleting the Tenant deletes its Routes; the Route controller lets each go once its
    listeners left the snapshot, so the drain ends and the Tenant with it."""
    name = f"rt{uuid.uuid4().hex[:8]}"
    ns = f"tenant-{name}"
    route_name = str(uuid.uuid4())
    async with managers(manager_settings, envoy_deployer="process",
                        address_pool=("127.0.0.60",)) as manager:  # fmt: skip
        await kube.create(resources.TENANTS, {"metadata": {"name": name}})
        await eventually(lambda: get(kube, resources.NAMESPACES, "", ns), what="the namespace")
        await kube.create(resources.ADDRESSES, addresses(NODE_ADDRESS), namespace=ns)
        route = ingress_route(route_name, host=HOST, node_port=free_port(NODE_ADDRESS))
        await kube.create(resources.ROUTES, route, namespace=ns)

        async def served():
            condition = applied(await get(kube, resources.ROUTES, ns, route_name))
            return condition and condition["status"] == "True"

        await eventually(served, what="the Route applied")
        await kube.delete(resources.TENANTS, name)

        async def tenant_gone():
            return await get(kube, resources.TENANTS, "", name) is None

        await eventually(tenant_gone, what="the Tenant drained and deleted")
        assert await get(kube, resources.ROUTES, ns, route_name) is None
        assert manager.cache.get_snapshot(ns) is None


async def test_a_listener_envoy_rejects_is_reported_on_the_routes(
    kube, tenants, managers, manager_settings
):
    """A Gateway listener port another process holds makes the tenant's Envoy NACK its
    configuration: the Routes it holds say so, with Envoy's error."""
    pool = "127.0.0.61"
    ns = await tenants()
    listener_port = free_port(pool)
    await kube.create(resources.ADDRESSES, addresses(NODE_ADDRESS), namespace=ns)
    gateway, route = str(uuid.uuid4()), str(uuid.uuid4())
    await kube.create(resources.ROUTES, gateway_route(gateway, ("web", listener_port)),
                      namespace=ns)  # fmt: skip
    shop = http_route(route, section="web", host=HOST, node_port=free_port(NODE_ADDRESS))
    await kube.create(resources.ROUTES, shop, namespace=ns)
    holder = socket.socket()
    holder.bind((pool, listener_port))
    holder.listen()
    try:
        async with managers(manager_settings, envoy_deployer="process", address_pool=(pool,)):

            async def rejected():
                found = applied(await get(kube, resources.ROUTES, ns, route))
                message = (found or {}).get("message", "")
                return found if "rejected its configuration" in message else None

            found = await eventually(rejected, what="the NACK on the HTTPRoute's status")
            assert found["status"] == "False"
            assert found["reason"] == "InstallationFailed"
    finally:
        holder.close()


async def test_ingress_disabled_by_the_tenant_says_why(kube, managers, manager_settings):
    """The Tenant's `spec.ingress.disable`: its Ingress Routes are not served and say so; the
    Tenant's deletion then drains them."""
    name = f"rd{uuid.uuid4().hex[:8]}"
    ns = f"tenant-{name}"
    route_name = str(uuid.uuid4())
    async with managers(manager_settings, envoy_deployer="process",
                        address_pool=(POOL_ADDRESS,)) as manager:  # fmt: skip
        tenant = {"metadata": {"name": name}, "spec": {"ingress": {"disable": True}}}
        await kube.create(resources.TENANTS, tenant)
        try:
            await eventually(lambda: get(kube, resources.NAMESPACES, "", ns), what="namespace")
            await kube.create(resources.ADDRESSES, addresses(NODE_ADDRESS), namespace=ns)
            route = ingress_route(route_name, host=HOST, node_port=free_port(NODE_ADDRESS))
            await kube.create(resources.ROUTES, route, namespace=ns)

            async def refused():
                condition = applied(await get(kube, resources.ROUTES, ns, route_name))
                return condition if condition and condition["status"] == "False" else None

            condition = await eventually(refused, what="the Route says it is not served")
            assert "the Tenant (spec.ingress.disable)" in condition["message"]
            await settled(manager, ns)
            entry = l7entry.entry_service_name(ns)
            assert await get(kube, resources.SERVICES, ns, entry) is None
            assert manager.cache.get_snapshot(ns) is None
        finally:
            await kube.delete(resources.TENANTS, name)

            async def gone():
                return await get(kube, resources.TENANTS, "", name) is None

            await eventually(gone, what="the Tenant drained and deleted")


async def test_a_route_replacing_the_last_one_is_never_refused(
    kube, tenants, managers, manager_settings
):
    """The tenant's last Route deleted and another created at once: the Envoy is not removed
    under the new Route, so once it says served, every request is answered."""
    pool = "127.0.0.63"
    ns = await tenants()
    node_port = free_port(NODE_ADDRESS)
    await kube.create(resources.ADDRESSES, addresses(NODE_ADDRESS), namespace=ns)
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    await kube.create(resources.ROUTES, ingress_route(first, host=HOST, node_port=node_port),
                      namespace=ns)  # fmt: skip

    def served(name: str):
        async def check():
            route = await get(kube, resources.ROUTES, ns, name)
            condition = applied(route)
            if condition is None or route is None:
                return False
            current = condition.get("observedGeneration") == route["metadata"]["generation"]
            return current and condition["status"] == "True"

        return check

    async with (
        http_backend(NODE_ADDRESS, node_port, "web"),
        managers(manager_settings, envoy_deployer="process", address_pool=(pool,)),
    ):
        await eventually(served(first), what="the first Route served")
        await eventually(lambda: _ok(http_get(pool, 80, "/", host_header=HOST)),
                         what="traffic through the first Route")  # fmt: skip
        await kube.delete(resources.ROUTES, first, namespace=ns)

        async def first_gone():
            return await get(kube, resources.ROUTES, ns, first) is None

        await eventually(first_gone, what="the first Route gone")
        await kube.create(resources.ROUTES, ingress_route(second, host=HOST, node_port=node_port),
                          namespace=ns)  # fmt: skip
        await eventually(served(second), what="the second Route served")
        answers = [await http_get(pool, 80, f"/{i}", host_header=HOST) for i in range(80)]
        assert [a for a in answers if a is None or a[0] != 200] == []
