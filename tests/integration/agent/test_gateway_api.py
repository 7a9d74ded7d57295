"""The agent's Gateway, HTTPRoute and GRPCRoute controllers on two real API servers (both serve
the Gateway API CRDs of the standard channel): Routes, scope, status parents and conditions with the
tenant object's own generation, backend changes, and what cannot be served. The tests play the
manager by writing Route status."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kubelb.api import finalizers
from kubelb.kube import objects, resources
from kubelb.observe import agent_metrics
from tests.integration.agent.helpers import (
    backend_service,
    find,
    idle,
    object_events,
    routes,
    set_route_status,
    wait_for,
)

pytestmark = pytest.mark.integration

T0 = "2025-01-01T00:00:00Z"
CONTROLLER = "kubelb.k8c.io/test-controller"


@pytest.fixture
def gw_agent(agent):
    """Agents with the Gateway API controllers on."""

    def start(**overrides: Any):
        return agent(enable_gateway_api=True, **overrides)

    return start


def condition(
    type_: str, status: str = "True", reason: str | None = None, generation: int = 1
) -> dict[str, Any]:
    return {
        "type": type_,
        "status": status,
        "reason": reason or type_,
        "message": "",
        "observedGeneration": generation,
        "lastTransitionTime": T0,
    }


def gateway(name: str = "kubelb", class_name: str = "kubelb") -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "gatewayClassName": class_name,
            "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}],
        },
    }


def http_route(name: str, *backends: str, parent: str = "kubelb", **rule: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "parentRefs": [{"name": parent}],
            "hostnames": [f"{name}.example"],
            "rules": [{"backendRefs": [{"name": b, "port": 80} for b in backends], **rule}],
        },
    }


def grpc_route(name: str, *backends: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "parentRefs": [{"name": "kubelb"}],
            "rules": [
                {
                    "matches": [{"method": {"service": "echo.Echo", "method": "Say"}}],
                    "backendRefs": [{"name": b, "port": 80} for b in backends],
                }
            ],
        },
    }


def served_parents(route_obj: dict[str, Any], namespace: str, *conditions: dict[str, Any]):
    """The manager's status for a generated route: parents naming its own Gateway."""
    return {
        "parents": [
            {
                "parentRef": {
                    "group": "gateway.networking.k8s.io",
                    "kind": "Gateway",
                    "name": "kubelb",
                    "namespace": namespace,
                },
                "controllerName": CONTROLLER,
                "conditions": list(conditions),
            }
        ]
    }


async def route_of(mgmt, namespace, source, *, check=None):
    async def found():
        route = await find(mgmt, resources.ROUTES, namespace, objects.uid(source))
        return route if route is not None and (check is None or check(route)) else None

    return await wait_for(found, what=f"the Route of {objects.name(source)}")


def copies(route) -> set[str]:
    return {objects.name(s) for s in route["spec"]["source"]["kubernetes"]["services"]}


async def parents_of(tkube, resource, namespace, name):
    current = await tkube.get(resource, name, namespace=namespace)
    return current, objects.lookup(current, "status.parents") or []


async def test_gateway_becomes_route_and_gets_its_status(
    gw_agent, tenant_setup, services_ns, tkube, mgmt
):
    async with gw_agent():
        gw = await tkube.create(resources.GATEWAYS, gateway(), namespace=services_ns)
        route = await route_of(mgmt, tenant_setup.namespace, gw)
        assert objects.labels(route)["kubelb.k8c.io/origin-resource-kind"] == (
            "Gateway.gateway.networking.k8s.io"
        )
        assert route["spec"]["source"]["kubernetes"]["services"] == []
        embedded = route["spec"]["source"]["kubernetes"]["resource"]
        assert embedded["kind"] == "Gateway"
        assert embedded["spec"] == gw["spec"]
        # A spec change: the tenant's Gateway is at generation 2, the served one at 7.
        await tkube.patch(
            resources.GATEWAYS,
            "kubelb",
            {"spec": {"listeners": [{"name": "http", "port": 8080, "protocol": "HTTP"}]}},
            namespace=services_ns,
        )
        route = await route_of(
            mgmt,
            tenant_setup.namespace,
            gw,
            check=lambda r: (
                r["spec"]["source"]["kubernetes"]["resource"]["spec"]["listeners"][0]["port"]
                == 8080
            ),
        )
        served = {
            "addresses": [{"type": "IPAddress", "value": "10.5.5.5"}],
            "conditions": [
                condition("Accepted", generation=7),
                condition("Programmed", generation=7),
            ],
            "listeners": [
                {
                    "name": "http",
                    "attachedRoutes": 1,
                    "supportedKinds": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}],
                    "conditions": [
                        condition("Accepted", generation=7),
                        condition("Programmed", generation=7),
                    ],
                }
            ],
        }
        await set_route_status(mgmt, route, served)

        async def programmed():
            current = await tkube.get(resources.GATEWAYS, "kubelb", namespace=services_ns)
            return current if objects.lookup(current, "status.addresses") else None

        current = await wait_for(programmed, what="the Gateway's status")
        generation = objects.generation(current)
        assert generation == 2
        status = current["status"]
        assert status["addresses"] == served["addresses"]
        assert [
            (c["type"], c["status"], c["observedGeneration"]) for c in status["conditions"]
        ] == [("Accepted", "True", 2), ("Programmed", "True", 2)]
        (listener,) = status["listeners"]
        assert listener["attachedRoutes"] == 1
        assert {c["observedGeneration"] for c in listener["conditions"]} == {2}
        assert finalizers.CLEANUP in objects.finalizers(current)


async def test_foreign_gateways_are_not_touched(gw_agent, tenant_setup, services_ns, tkube, mgmt):
    skipped = agent_metrics.SOURCE_RECONCILES["gateway"].labels(
        services_ns, agent_metrics.RESULT_SKIPPED
    )
    async with gw_agent():
        foreign = await tkube.create(
            resources.GATEWAYS, gateway(class_name="eg"), namespace=services_ns
        )
        await tkube.create(resources.GATEWAYS, gateway(name="other"), namespace=services_ns)

        async def both_skipped():
            return skipped._value.get() >= 2

        await wait_for(both_skipped, what="both Gateways reconciled and skipped")
        assert await routes(mgmt, tenant_setup.namespace) == []
        for name in ("kubelb", "other"):
            current = await tkube.get(resources.GATEWAYS, name, namespace=services_ns)
            assert objects.finalizers(current) == []
            assert not objects.lookup(current, "status.addresses")

        # Into our class, then out again: the Route comes and goes.
        await tkube.patch(
            resources.GATEWAYS,
            "kubelb",
            {"spec": {"gatewayClassName": "kubelb"}},
            namespace=services_ns,
        )
        await route_of(mgmt, tenant_setup.namespace, foreign)
        await tkube.patch(
            resources.GATEWAYS,
            "kubelb",
            {"spec": {"gatewayClassName": "eg"}},
            namespace=services_ns,
        )

        async def released():
            current = await tkube.get(resources.GATEWAYS, "kubelb", namespace=services_ns)
            route = await find(mgmt, resources.ROUTES, tenant_setup.namespace, objects.uid(foreign))
            return route is None and not objects.finalizers(current)

        await wait_for(released, what="the Gateway released after its class changed away")


async def test_http_route_parents_and_backend_changes(
    gw_agent, tenant_setup, services_ns, tkube, mgmt
):
    async with gw_agent():
        for name in ("a", "b"):
            await tkube.create(resources.SERVICES, backend_service(name), namespace=services_ns)
        created = await tkube.create(
            resources.HTTP_ROUTES, http_route("shop", "a", "b"), namespace=services_ns
        )
        route = await route_of(
            mgmt,
            tenant_setup.namespace,
            created,
            check=lambda r: copies(r) == {"a-nodeport", "b-nodeport"},
        )
        assert objects.labels(route)["kubelb.k8c.io/origin-resource-kind"] == (
            "HTTPRoute.gateway.networking.k8s.io"
        )
        await set_route_status(
            mgmt,
            route,
            served_parents(
                created,
                tenant_setup.namespace,
                condition("Accepted", generation=5),
                condition("ResolvedRefs", generation=5),
            ),
        )

        async def accepted():
            current, parents = await parents_of(tkube, resources.HTTP_ROUTES, services_ns, "shop")
            return (current, parents) if parents else None

        current, (parent,) = await wait_for(accepted, what="the HTTPRoute's parents")
        # The parentRef as the tenant wrote it (server defaults included), not the manager's.
        assert parent["parentRef"] == current["spec"]["parentRefs"][0]
        assert parent["controllerName"] == CONTROLLER
        assert [
            (c["type"], c["status"], c["observedGeneration"]) for c in parent["conditions"]
        ] == [("Accepted", "True", 1), ("ResolvedRefs", "True", 1)]

        # Backend b removed: the Route carries only a's twin, and b's twin goes.
        await tkube.patch(
            resources.HTTP_ROUTES,
            "shop",
            {"spec": {"rules": [{"backendRefs": [{"name": "a", "port": 80}]}]}},
            namespace=services_ns,
        )
        await route_of(
            mgmt, tenant_setup.namespace, created, check=lambda r: copies(r) == {"a-nodeport"}
        )

        async def b_twin_gone():
            return await find(tkube, resources.SERVICES, services_ns, "b-nodeport") is None

        await wait_for(b_twin_gone, what="b's twin deleted")

        async def regenerated():
            _, parents = await parents_of(tkube, resources.HTTP_ROUTES, services_ns, "shop")
            generations = {c["observedGeneration"] for p in parents for c in p["conditions"]}
            return generations == {2}

        await wait_for(regenerated, what="the conditions at the route's generation 2")

        # Moved to another Gateway: the Route, the twin, our parent entry and finalizer go.
        await tkube.patch(resources.HTTP_ROUTES, "shop", {"spec": {"parentRefs": [
            {"name": "eg"}]}}, namespace=services_ns)  # fmt: skip

        async def released():
            current, parents = await parents_of(tkube, resources.HTTP_ROUTES, services_ns, "shop")
            route = await find(mgmt, resources.ROUTES, tenant_setup.namespace, objects.uid(created))
            twin = await find(tkube, resources.SERVICES, services_ns, "a-nodeport")
            return (route is None and twin is None and parents == []
                    and not objects.finalizers(current))  # fmt: skip

        await wait_for(released, what="the HTTPRoute released")


async def test_unknown_backend_and_unsupported_filter(
    gw_agent, tenant_setup, services_ns, tkube, mgmt
):
    async with gw_agent() as running:
        body = http_route(
            "odd",
            "missing",
            filters=[
                {
                    "type": "ExtensionRef",
                    "extensionRef": {"group": "example.io", "kind": "Magic", "name": "m"},
                }
            ],
        )
        created = await tkube.create(resources.HTTP_ROUTES, body, namespace=services_ns)
        route = await route_of(mgmt, tenant_setup.namespace, created)
        assert copies(route) == set()

        def by_type(parents):
            return {c["type"]: c for p in parents for c in p["conditions"]}

        async def refused():
            _, parents = await parents_of(tkube, resources.HTTP_ROUTES, services_ns, "odd")
            found = by_type(parents)
            return found if {"Accepted", "ResolvedRefs"} <= set(found) else None

        found = await wait_for(refused, what="Accepted and ResolvedRefs False")
        assert (found["Accepted"]["status"], found["Accepted"]["reason"]) == (
            "False",
            "UnsupportedValue",
        )
        assert found["Accepted"]["message"] == "filter ExtensionRef is not supported"
        assert (found["ResolvedRefs"]["status"], found["ResolvedRefs"]["reason"]) == (
            "False",
            "BackendNotFound",
        )
        assert found["ResolvedRefs"]["message"] == f"Service {services_ns}/missing not found"
        assert found["ResolvedRefs"]["observedGeneration"] == 1

        async def warned():
            reasons = {e["reason"] for e in await object_events(tkube, created)}
            return {"UnsupportedValue", "BackendNotFound"} <= reasons

        await wait_for(warned, what="Events for both problems")

        # Reconciling again writes nothing: the same conditions, the same transition times.
        ctrl = running.source_controllers["httproute"]
        await idle(ctrl, what="the httproute controller idle")
        before = await tkube.get(resources.HTTP_ROUTES, "odd", namespace=services_ns)
        reconciles = ctrl.reconciles
        ctrl.enqueue(objects.key_of(created))

        async def reconciled():
            return ctrl.reconciles > reconciles

        await wait_for(reconciled, what="another reconcile")
        await idle(ctrl, what="the httproute controller idle again")
        after = await tkube.get(resources.HTTP_ROUTES, "odd", namespace=services_ns)
        assert objects.resource_version(after) == objects.resource_version(before)

        # The Service appears and the filter goes: the Route gets the twin, the problems clear.
        await tkube.create(resources.SERVICES, backend_service("missing"), namespace=services_ns)
        await tkube.patch(
            resources.HTTP_ROUTES,
            "odd",
            {"spec": {"rules": [{"backendRefs": [{"name": "missing", "port": 80}]}]}},
            namespace=services_ns,
        )
        await route_of(
            mgmt, tenant_setup.namespace, created, check=lambda r: copies(r) == {"missing-nodeport"}
        )

        async def cleared():
            _, parents = await parents_of(tkube, resources.HTTP_ROUTES, services_ns, "odd")
            return parents == []

        await wait_for(cleared, what="our problem conditions gone")


async def test_a_refused_source_says_why_in_its_conditions(
    gw_agent, tenant_setup, services_ns, tkube, mgmt
):
    """The manager refuses a Gateway and an HTTPRoute and serves nothing of them (Gateway API
    disabled by the Config): each says why in its own conditions, at its own generation, and
    in an Event; once served, the served conditions replace the refusal."""
    disabled = "HTTPRoute Routes are disabled by the Config (spec.gatewayAPI.disable)"
    async with gw_agent():
        await tkube.create(resources.SERVICES, backend_service("web"), namespace=services_ns)
        gw = await tkube.create(resources.GATEWAYS, gateway(), namespace=services_ns)
        made = await tkube.create(resources.HTTP_ROUTES, http_route("off", "web"),
                                  namespace=services_ns)  # fmt: skip
        gw_route = await route_of(mgmt, tenant_setup.namespace, gw)
        route = await route_of(mgmt, tenant_setup.namespace, made,
                               check=lambda r: copies(r) == {"web-nodeport"})  # fmt: skip
        for each in (gw_route, route):
            await set_route_status(mgmt, each, {}, applied=("InstallationFailed", disabled))

        async def refused():
            _, parents = await parents_of(tkube, resources.HTTP_ROUTES, services_ns, "off")
            conditions = [c for p in parents for c in p["conditions"]]
            gateway_now = await tkube.get(resources.GATEWAYS, "kubelb", namespace=services_ns)
            on_gateway = objects.lookup(gateway_now, "status.conditions") or []
            return (conditions, on_gateway) if conditions and len(on_gateway) == 2 else None

        (accepted,), on_gateway = await wait_for(refused, what="the refusals in the conditions")
        assert (accepted["type"], accepted["status"], accepted["reason"]) == (
            "Accepted", "False", "InstallationFailed")  # fmt: skip
        assert accepted["message"] == disabled
        assert accepted["observedGeneration"] == 1
        assert [(c["type"], c["status"], c["message"]) for c in on_gateway] == [
            ("Accepted", "False", disabled), ("Programmed", "False", disabled)]  # fmt: skip

        async def warned():
            found = await object_events(tkube, made)
            return [e for e in found if e["reason"] == "InstallationFailed"]

        (event,) = await wait_for(warned, what="an Event saying the Route was refused")
        assert (event["type"], event["message"]) == ("Warning", disabled)

        # Served after all: the manager's conditions replace the refusal.
        served_now = served_parents(
            made, tenant_setup.namespace, condition("Accepted"), condition("ResolvedRefs")
        )
        await set_route_status(mgmt, route, served_now)

        async def served():
            _, parents = await parents_of(tkube, resources.HTTP_ROUTES, services_ns, "off")
            found = {c["type"]: c["status"] for p in parents for c in p["conditions"]}
            return found == {"Accepted": "True", "ResolvedRefs": "True"}

        await wait_for(served, what="the served conditions on the HTTPRoute")


async def test_routes_to_other_gateways_are_not_touched(
    gw_agent, tenant_setup, services_ns, tkube, mgmt
):
    skipped = agent_metrics.SOURCE_RECONCILES["httproute"].labels(
        services_ns, agent_metrics.RESULT_SKIPPED
    )
    async with gw_agent():
        await tkube.create(
            resources.HTTP_ROUTES, http_route("elsewhere", "x", parent="eg"), namespace=services_ns
        )

        async def was_skipped():
            return skipped._value.get() >= 1

        await wait_for(was_skipped, what="the HTTPRoute reconciled and skipped")
        assert await routes(mgmt, tenant_setup.namespace) == []
        current = await tkube.get(resources.HTTP_ROUTES, "elsewhere", namespace=services_ns)
        assert objects.finalizers(current) == []
        assert not objects.lookup(current, "status.parents")


async def test_grpc_route_with_status_and_deletion(
    gw_agent, tenant_setup, services_ns, tkube, mgmt
):
    async with gw_agent():
        await tkube.create(resources.SERVICES, backend_service("echo"), namespace=services_ns)
        created = await tkube.create(
            resources.GRPC_ROUTES, grpc_route("rpc", "echo"), namespace=services_ns
        )
        route = await route_of(
            mgmt, tenant_setup.namespace, created, check=lambda r: copies(r) == {"echo-nodeport"}
        )
        assert objects.labels(route)["kubelb.k8c.io/origin-resource-kind"] == (
            "GRPCRoute.gateway.networking.k8s.io"
        )
        embedded = route["spec"]["source"]["kubernetes"]["resource"]
        assert embedded["spec"]["rules"] == created["spec"]["rules"]
        await set_route_status(
            mgmt,
            route,
            served_parents(
                created, tenant_setup.namespace, condition("Accepted"), condition("ResolvedRefs")
            ),
        )

        async def accepted():
            _, parents = await parents_of(tkube, resources.GRPC_ROUTES, services_ns, "rpc")
            return parents

        (parent,) = await wait_for(accepted, what="the GRPCRoute's parents")
        assert parent["parentRef"]["name"] == "kubelb"
        assert "namespace" not in parent["parentRef"]
        assert {c["type"] for c in parent["conditions"]} == {"Accepted", "ResolvedRefs"}

        await tkube.delete(resources.GRPC_ROUTES, "rpc", namespace=services_ns)

        async def cleaned():
            source = await find(tkube, resources.GRPC_ROUTES, services_ns, "rpc")
            left = await find(mgmt, resources.ROUTES, tenant_setup.namespace, objects.uid(created))
            twin = await find(tkube, resources.SERVICES, services_ns, "echo-nodeport")
            return source is None and left is None and twin is None

        await wait_for(cleaned, what="GRPCRoute, Route and twin gone")


AGENT_MANIFEST = Path(__file__).parents[3] / "configs" / "deploy" / "agent.yaml"


async def test_the_shipped_rbac_serves_gateway_api_kinds(
    gw_agent, tenant, tenant_setup, services_ns, tkube, mgmt, tmp_path: Path
):
    """As the Deployment of `configs/deploy/agent.yaml` runs: finalizers, twins and status on
    a Gateway, an HTTPRoute and a GRPCRoute."""
    identity = await tenant.deployed_identity(AGENT_MANIFEST.read_text(), tmp_path / "identity")
    async with gw_agent(kubeconfig=identity):
        await tkube.create(resources.SERVICES, backend_service("web"), namespace=services_ns)
        made = [
            (resources.GATEWAYS, await tkube.create(resources.GATEWAYS, gateway(),
                                                    namespace=services_ns)),
            (resources.HTTP_ROUTES, await tkube.create(resources.HTTP_ROUTES,
                                                       http_route("web", "web", "nope"),
                                                       namespace=services_ns)),
            (resources.GRPC_ROUTES, await tkube.create(resources.GRPC_ROUTES,
                                                       grpc_route("rpc", "web"),
                                                       namespace=services_ns)),
        ]  # fmt: skip
        for resource, created in made:
            route = await route_of(mgmt, tenant_setup.namespace, created)
            if resource is resources.GATEWAYS:
                await set_route_status(mgmt, route, {
                    "addresses": [{"type": "IPAddress", "value": "10.6.6.6"}],
                    "conditions": [condition("Accepted"), condition("Programmed")],
                })  # fmt: skip

        async def served():
            gw = await tkube.get(resources.GATEWAYS, "kubelb", namespace=services_ns)
            _, parents = await parents_of(tkube, resources.HTTP_ROUTES, services_ns, "web")
            twin = await find(tkube, resources.SERVICES, services_ns, "web-nodeport")
            finalized = [
                finalizers.CLEANUP in objects.finalizers(
                    await tkube.get(resource, objects.name(obj), namespace=services_ns))
                for resource, obj in made
            ]  # fmt: skip
            return (all(finalized) and twin is not None and parents
                    and objects.lookup(gw, "status.addresses"))  # fmt: skip

        await wait_for(served, what="finalizers, twin and status with the shipped ClusterRole")
