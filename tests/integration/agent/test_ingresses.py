"""The agent's Ingress controller on two real API servers, with the tenant's restricted
management credentials: the Route it writes, Service twins, status back-flow, scope, deletion,
reconcile stability and tenant isolation. The tests play the manager by writing Route status."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from kubelb.api import finalizers
from kubelb.kube import objects, resources
from kubelb.observe import agent_metrics
from tests.integration.agent.conftest import provision_tenant, release_finalizers
from tests.integration.agent.helpers import (
    backend_service,
    find,
    idle,
    ingress,
    ingress_rule,
    object_events,
    routes,
    set_route_status,
    wait_for,
)
from tests.integration.agent.test_lifecycle import metric_value

pytestmark = pytest.mark.integration

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


async def route_of(mgmt, namespace, source, *, check=None):
    """Wait for the Route named by `source`'s UID (and passing `check`); return it."""

    async def found():
        route = await find(mgmt, resources.ROUTES, namespace, objects.uid(source))
        return route if route is not None and (check is None or check(route)) else None

    return await wait_for(found, what=f"the Route of {objects.name(source)}")


def service_copies(route):
    return {objects.name(s): s for s in route["spec"]["source"]["kubernetes"]["services"]}


async def test_ingress_becomes_route(agent, tenant_setup, services_ns, tkube, mgmt):
    web = await tkube.create(
        resources.SERVICES,
        backend_service("web", {"name": "http", "port": 80, "targetPort": 8080}),
        namespace=services_ns,
    )
    api = await tkube.create(
        resources.SERVICES, backend_service("api", type="NodePort"), namespace=services_ns
    )
    body = ingress("shop", ingress_rule("shop.example", ("/", "web", 80), ("/api", "api", 80)))
    body["metadata"]["labels"] = {"team": "blue"}
    body["metadata"]["annotations"] = {"note": "x", LAST_APPLIED: "{}"}
    async with agent():
        ing = await tkube.create(resources.INGRESSES, body, namespace=services_ns)
        route = await route_of(
            mgmt, tenant_setup.namespace, ing, check=lambda r: len(service_copies(r)) == 2
        )
        assert objects.labels(route) == {
            "kubelb.k8c.io/origin-name": "shop",
            "kubelb.k8c.io/origin-ns": services_ns,
            "kubelb.k8c.io/origin-resource-kind": "Ingress.networking.k8s.io",
            "kubelb.k8c.io/managed-by": "kubelb",
        }
        assert route["spec"]["endpoints"] == [
            {"name": "default", "addressesReference": {"name": "default"}}
        ]
        assert route["spec"]["source"]["kubernetes"]["resource"] == {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {
                "name": "shop",
                "namespace": services_ns,
                "uid": objects.uid(ing),
                "labels": {"team": "blue"},
                "annotations": {"note": "x"},
            },
            "spec": ing["spec"],
        }
        # The ClusterIP backend travels as its NodePort twin, the NodePort one as it is.
        copies = service_copies(route)
        assert set(copies) == {"web-nodeport", "api"}
        twin = await tkube.get(resources.SERVICES, "web-nodeport", namespace=services_ns)
        assert twin["spec"]["type"] == "NodePort"
        assert twin["spec"]["selector"] == {"app": "web"}
        assert [(p["port"], p["targetPort"]) for p in twin["spec"]["ports"]] == [(80, 8080)]
        assert [(o["kind"], o["uid"]) for o in objects.owner_references(twin)] == [
            ("Service", objects.uid(web))
        ]
        assert objects.labels(twin) == {
            "kubelb.k8c.io/origin-name": "web",
            "kubelb.k8c.io/origin-ns": services_ns,
            "kubelb.k8c.io/managed-by": "kubelb",
        }
        assert (
            copies["web-nodeport"]["spec"]["ports"][0]["nodePort"]
            == (twin["spec"]["ports"][0]["nodePort"])
        )
        assert (
            copies["api"]["spec"]["ports"][0]["nodePort"] == (api["spec"]["ports"][0]["nodePort"])
        )
        for copy in copies.values():
            assert not {"clusterIP", "clusterIPs", "ipFamilies"} & set(copy["spec"])
            assert "status" not in copy
            assert "resourceVersion" not in copy["metadata"]

        async def finalized():
            current = await tkube.get(resources.INGRESSES, "shop", namespace=services_ns)
            return finalizers.CLEANUP in objects.finalizers(current)

        await wait_for(finalized, what="the cleanup finalizer on the Ingress")

        # The manager reports the served Ingress: its address lands on the tenant's.
        served = {
            "loadBalancer": {
                "ingress": [{"ip": "10.9.8.7", "ports": [{"port": 80, "protocol": "TCP"}]}]
            }
        }
        await set_route_status(mgmt, route, served)

        async def addressed():
            current = await tkube.get(resources.INGRESSES, "shop", namespace=services_ns)
            return current if current.get("status", {}).get("loadBalancer") else None

        current = await wait_for(addressed, what="the address on the Ingress")
        assert current["status"] == served

        # The manager refuses it (disabled for the tenant): the Ingress says why.
        await set_route_status(
            mgmt, route, {}, applied=("InstallationFailed", "Ingress is disabled")
        )

        async def refused():
            found = await object_events(tkube, ing)
            return [e for e in found if e["reason"] == "InstallationFailed"]

        (event,) = await wait_for(refused, what="an Event saying the Route was refused")
        assert event["type"] == "Warning"
        assert event["message"] == "Ingress is disabled"


async def test_wrong_class_ignored_until_it_changes(agent, tenant_setup, services_ns, tkube, mgmt):
    skipped = agent_metrics.SOURCE_RECONCILES["ingress"].labels(
        services_ns, agent_metrics.RESULT_SKIPPED
    )
    async with agent():
        await tkube.create(resources.SERVICES, backend_service("web"), namespace=services_ns)
        other = await tkube.create(
            resources.INGRESSES,
            ingress("other", ingress_rule("a.example", ("/", "web", 80)), class_name="nginx"),
            namespace=services_ns,
        )
        await tkube.create(
            resources.INGRESSES,
            ingress("classless", ingress_rule("b.example", ("/", "web", 80)), class_name=None),
            namespace=services_ns,
        )

        async def both_skipped():
            return skipped._value.get() >= 2

        await wait_for(both_skipped, what="both Ingresses reconciled and skipped")
        assert await routes(mgmt, tenant_setup.namespace) == []
        for name in ("other", "classless"):
            current = await tkube.get(resources.INGRESSES, name, namespace=services_ns)
            assert objects.finalizers(current) == []
        assert await find(tkube, resources.SERVICES, services_ns, "web-nodeport") is None

        # Into our class: served. Out again: Route and twin removed, finalizer and status gone.
        await tkube.patch(
            resources.INGRESSES,
            "other",
            {"spec": {"ingressClassName": "kubelb"}},
            namespace=services_ns,
        )
        route = await route_of(mgmt, tenant_setup.namespace, other)
        await set_route_status(mgmt, route, {"loadBalancer": {"ingress": [{"ip": "10.1.1.1"}]}})

        async def addressed():
            current = await tkube.get(resources.INGRESSES, "other", namespace=services_ns)
            return objects.lookup(current, "status.loadBalancer.ingress")

        await wait_for(addressed, what="the address on the Ingress")
        await tkube.patch(
            resources.INGRESSES,
            "other",
            {"spec": {"ingressClassName": "nginx"}},
            namespace=services_ns,
        )

        async def released():
            current = await tkube.get(resources.INGRESSES, "other", namespace=services_ns)
            gone = await find(mgmt, resources.ROUTES, tenant_setup.namespace, objects.uid(other))
            twin = await find(tkube, resources.SERVICES, services_ns, "web-nodeport")
            return (
                gone is None
                and twin is None
                and not objects.finalizers(current)
                and not objects.lookup(current, "status.loadBalancer.ingress")
            )

        await wait_for(released, what="the Ingress released after its class changed away")


async def test_service_changes_reach_the_route(agent, tenant_setup, services_ns, tkube, mgmt):
    async with agent():
        ing = await tkube.create(
            resources.INGRESSES,
            ingress("late", ingress_rule("late.example", ("/", "later", 80))),
            namespace=services_ns,
        )
        route = await route_of(mgmt, tenant_setup.namespace, ing)
        assert service_copies(route) == {}

        async def warned():
            found = await object_events(tkube, ing)
            return [e for e in found if e["reason"] == "BackendNotFound"]

        (event,) = await wait_for(warned, what="a BackendNotFound Event")
        assert event["type"] == "Warning"
        assert event["message"] == f"Service {services_ns}/later not found"

        # The Service appears: the Route gets its twin.
        await tkube.create(
            resources.SERVICES, backend_service("later", {"port": 80}), namespace=services_ns
        )
        route = await route_of(
            mgmt, tenant_setup.namespace, ing, check=lambda r: "later-nodeport" in service_copies(r)
        )

        # A port change on the original reaches the twin and then the Route.
        await tkube.patch(
            resources.SERVICES,
            "later",
            {"spec": {"ports": [{"port": 80, "targetPort": 9090}]}},
            namespace=services_ns,
        )

        def retargeted(r):
            copy = service_copies(r).get("later-nodeport")
            return copy is not None and copy["spec"]["ports"][0]["targetPort"] == 9090

        await route_of(mgmt, tenant_setup.namespace, ing, check=retargeted)


async def test_deletion_cleans_up(agent, tenant_setup, services_ns, tkube, mgmt):
    async with agent():
        await tkube.create(resources.SERVICES, backend_service("web"), namespace=services_ns)
        ing = await tkube.create(
            resources.INGRESSES,
            ingress("gone", ingress_rule("gone.example", ("/", "web", 80))),
            namespace=services_ns,
        )
        await route_of(
            mgmt, tenant_setup.namespace, ing, check=lambda r: "web-nodeport" in service_copies(r)
        )
        await tkube.delete(resources.INGRESSES, "gone", namespace=services_ns)

        async def cleaned():
            source = await find(tkube, resources.INGRESSES, services_ns, "gone")
            route = await find(mgmt, resources.ROUTES, tenant_setup.namespace, objects.uid(ing))
            twin = await find(tkube, resources.SERVICES, services_ns, "web-nodeport")
            return source is None and route is None and twin is None

        await wait_for(cleaned, what="Ingress, Route and twin gone")
        assert await find(tkube, resources.SERVICES, services_ns, "web") is not None


async def test_shared_backend_twin_kept_while_referenced(
    agent, tenant_setup, services_ns, tkube, mgmt
):
    async with agent():
        await tkube.create(resources.SERVICES, backend_service("web"), namespace=services_ns)
        first, second = [
            await tkube.create(
                resources.INGRESSES,
                ingress(name, ingress_rule(f"{name}.example", ("/", "web", 80))),
                namespace=services_ns,
            )
            for name in ("one", "two")
        ]
        for ing in (first, second):
            await route_of(
                mgmt,
                tenant_setup.namespace,
                ing,
                check=lambda r: "web-nodeport" in service_copies(r),
            )
        twin = await tkube.get(resources.SERVICES, "web-nodeport", namespace=services_ns)
        await tkube.delete(resources.INGRESSES, "one", namespace=services_ns)

        async def first_gone():
            return await find(tkube, resources.INGRESSES, services_ns, "one") is None

        await wait_for(first_gone, what="Ingress one deleted")
        # Never deleted (and recreated for the other Ingress) in between.
        kept = await find(tkube, resources.SERVICES, services_ns, "web-nodeport")
        assert kept is not None
        assert objects.uid(kept) == objects.uid(twin)
        # The last user drops the backend: the twin goes.
        await tkube.patch(
            resources.INGRESSES,
            "two",
            {"spec": {"rules": [ingress_rule("two.example", ("/", "none", 80))]}},
            namespace=services_ns,
        )

        async def twin_gone():
            return await find(tkube, resources.SERVICES, services_ns, "web-nodeport") is None

        await wait_for(twin_gone, what="the twin deleted with its last reference")


async def test_reconcile_writes_nothing_when_nothing_changed(
    agent, tenant_setup, services_ns, tkube, mgmt
):
    async with agent() as running:
        ctrl = running.source_controllers["ingress"]
        await tkube.create(resources.SERVICES, backend_service("web"), namespace=services_ns)
        ing = await tkube.create(
            resources.INGRESSES,
            ingress("calm", ingress_rule("calm.example", ("/", "web", 80))),
            namespace=services_ns,
        )
        route = await route_of(
            mgmt, tenant_setup.namespace, ing, check=lambda r: "web-nodeport" in service_copies(r)
        )
        await set_route_status(mgmt, route, {"loadBalancer": {"ingress": [{"ip": "10.2.2.2"}]}})

        async def addressed():
            current = await tkube.get(resources.INGRESSES, "calm", namespace=services_ns)
            return objects.lookup(current, "status.loadBalancer.ingress")

        await wait_for(addressed, what="the address on the Ingress")
        await idle(ctrl, what="the ingress controller idle")
        before = {
            "route": await find(mgmt, resources.ROUTES, tenant_setup.namespace, objects.uid(ing)),
            "ingress": await find(tkube, resources.INGRESSES, services_ns, "calm"),
            "twin": await find(tkube, resources.SERVICES, services_ns, "web-nodeport"),
        }
        writes = running.tenant_writer.writes_in[services_ns]
        management_writes = management_write_count()

        # Three triggers that change nothing the agent writes: a backend field its twin does not
        # carry, the manager rewriting the Route's status (same served status), a re-enqueue.
        async def enqueue():
            ctrl.enqueue(objects.key_of(ing))

        triggers = [
            lambda: tkube.patch(resources.SERVICES, "web", {"spec": {
                "sessionAffinity": "ClientIP"}}, namespace=services_ns),
            lambda: set_route_status(mgmt, route, {"loadBalancer": {"ingress": [
                {"ip": "10.2.2.2"}]}}, generated_name="renamed"),
            enqueue,
        ]  # fmt: skip
        for attempt, trigger in enumerate(triggers):
            reconciles = ctrl.reconciles
            await trigger()

            async def reconciled_again(done=reconciles):
                return ctrl.reconciles > done

            await wait_for(reconciled_again, what=f"a reconcile after trigger {attempt}")
            await idle(ctrl, what="the ingress controller idle again")
        after = {
            "route": await find(mgmt, resources.ROUTES, tenant_setup.namespace, objects.uid(ing)),
            "ingress": await find(tkube, resources.INGRESSES, services_ns, "calm"),
            "twin": await find(tkube, resources.SERVICES, services_ns, "web-nodeport"),
        }
        for name, obj in before.items():
            now = after[name]
            assert obj is not None
            assert now is not None
            if name == "route":  # the test wrote its status: its spec stayed
                assert objects.generation(now) == objects.generation(obj)
                assert now["spec"] == obj["spec"]
            else:
                assert objects.resource_version(now) == objects.resource_version(obj), name
        assert running.tenant_writer.writes_in[services_ns] == writes
        assert management_write_count() == management_writes


def management_write_count(*, errors=True):
    """Writes the agent made on the management cluster (with the refused ones by default)."""
    results = [agent_metrics.RESULT_SUCCESS, *([agent_metrics.RESULT_ERROR] if errors else [])]
    return sum(
        agent_metrics.CLUSTER_OPERATIONS.labels(operation, result)._value.get()
        for operation in ("create", "update", "delete")
        for result in results
    )


async def test_same_ingress_in_two_tenants(
    agent, tenant, tenant_setup, services_ns, tkube, mgmt, management, tmp_path: Path
):
    other_ns = await tenant.create_namespace()
    try:
        async with (
            provision_tenant(management, mgmt, tmp_path) as second,
            agent(),
            agent(second, service_namespace=other_ns),
        ):
            made = {}
            for ns in (services_ns, other_ns):
                made[ns] = await tkube.create(
                    resources.INGRESSES,
                    ingress("shop", ingress_rule("shop.example", ("/", "web", 80))),
                    namespace=ns,
                )
            first = await route_of(mgmt, tenant_setup.namespace, made[services_ns])
            other = await route_of(mgmt, second.namespace, made[other_ns])
            assert objects.labels(first)["kubelb.k8c.io/origin-ns"] == services_ns
            assert objects.labels(other)["kubelb.k8c.io/origin-ns"] == other_ns
            assert [objects.name(r) for r in await routes(mgmt, tenant_setup.namespace)] == [
                objects.uid(made[services_ns])
            ]
            assert [objects.name(r) for r in await routes(mgmt, second.namespace)] == [
                objects.uid(made[other_ns])
            ]
            # Each tenant's status reaches its own Ingress only.
            await set_route_status(mgmt, other, {"loadBalancer": {"ingress": [{"ip": "10.3.3.3"}]}})

            async def addressed():
                current = await tkube.get(resources.INGRESSES, "shop", namespace=other_ns)
                return objects.lookup(current, "status.loadBalancer.ingress")

            await wait_for(addressed, what="the address on the second tenant's Ingress")
            mine = await tkube.get(resources.INGRESSES, "shop", namespace=services_ns)
            assert not objects.lookup(mine, "status.loadBalancer.ingress")
    finally:
        await release_finalizers(tkube, other_ns)
        await tenant.delete_namespace(other_ns)


AGENT_MANIFEST = Path(__file__).parents[3] / "configs" / "deploy" / "agent.yaml"


async def test_the_shipped_rbac_serves_ingresses(
    agent, tenant, tenant_setup, services_ns, tkube, mgmt, tmp_path: Path
):
    """As the Deployment of `configs/deploy/agent.yaml` runs: finalizer, twin, status, Event."""
    identity = await tenant.deployed_identity(AGENT_MANIFEST.read_text(), tmp_path / "identity")
    async with agent(kubeconfig=identity):
        await tkube.create(resources.SERVICES, backend_service("web"), namespace=services_ns)
        ing = await tkube.create(
            resources.INGRESSES,
            ingress("shop", ingress_rule("shop.example", ("/", "web", 80), ("/x", "nope", 80))),
            namespace=services_ns,
        )
        route = await route_of(
            mgmt, tenant_setup.namespace, ing, check=lambda r: "web-nodeport" in service_copies(r)
        )
        await set_route_status(mgmt, route, {"loadBalancer": {"ingress": [{"ip": "10.4.4.4"}]}})

        async def served():
            current = await tkube.get(resources.INGRESSES, "shop", namespace=services_ns)
            found = await object_events(tkube, ing)
            return (
                finalizers.CLEANUP in objects.finalizers(current)
                and objects.lookup(current, "status.loadBalancer.ingress")
                and any(e["reason"] == "BackendNotFound" for e in found)
            )

        await wait_for(served, what="finalizer, address and Event on the Ingress")
        await tkube.delete(resources.INGRESSES, "shop", namespace=services_ns)

        async def cleaned():
            twin = await find(tkube, resources.SERVICES, services_ns, "web-nodeport")
            return (
                twin is None and await find(tkube, resources.INGRESSES, services_ns, "shop") is None
            )

        await wait_for(cleaned, what="the Ingress and its twin gone")


async def test_metrics_with_upstream_names(agent, tenant_setup, services_ns, tkube, mgmt):
    async with agent() as running, aiohttp.ClientSession() as http:
        await running.serving.wait()
        metrics = f"http://127.0.0.1:{running.metrics.port}/metrics"
        for name, class_name in (("ours", "kubelb"), ("theirs", "nginx")):
            await tkube.create(
                resources.INGRESSES,
                ingress(
                    name, ingress_rule(f"{name}.example", ("/", "web", 80)), class_name=class_name
                ),
                namespace=services_ns,
            )

        async def scraped():
            async with http.get(metrics) as response:
                text = await response.text()
            managed = metric_value(text, "kubelb_ccm_managed_ingresses", namespace=services_ns)
            skipped = metric_value(
                text, "kubelb_ccm_ingress_reconcile_total", namespace=services_ns, result="skipped"
            )
            success = metric_value(
                text, "kubelb_ccm_ingress_reconcile_total", namespace=services_ns, result="success"
            )
            return text if managed == 1.0 and skipped and success else None

        text = await wait_for(scraped, what="one Ingress managed, one skipped, one served")
        assert "kubelb_ccm_ingress_reconcile_duration_seconds_bucket{" in text
        for kind in ("gateway", "httproute", "grpcroute"):
            assert f"# TYPE kubelb_ccm_{kind}_reconcile_total counter" in text
            assert f"# TYPE kubelb_ccm_managed_{kind}s gauge" in text


async def test_routes_of_sources_gone_while_no_agent_ran(
    agent, tenant_setup, services_ns, tkube, mgmt
):
    """Finalizers removed by force while the agent was down: at start it deletes the Route of
    the vanished Ingress (and its twin), and replaces the Route of one recreated under the
    same name."""
    await tkube.create(resources.SERVICES, backend_service("web"), namespace=services_ns)
    await tkube.create(resources.SERVICES, backend_service("api"), namespace=services_ns)
    async with agent():
        gone = await tkube.create(
            resources.INGRESSES,
            ingress("gone", ingress_rule("gone.example", ("/", "web", 80))),
            namespace=services_ns,
        )
        again = await tkube.create(
            resources.INGRESSES,
            ingress("again", ingress_rule("again.example", ("/", "api", 80))),
            namespace=services_ns,
        )
        for ing, twin in ((gone, "web-nodeport"), (again, "api-nodeport")):
            await route_of(
                mgmt, tenant_setup.namespace, ing, check=lambda r, t=twin: t in service_copies(r)
            )
    for name in ("gone", "again"):
        await tkube.patch(
            resources.INGRESSES, name, {"metadata": {"finalizers": None}}, namespace=services_ns
        )
        await tkube.delete(resources.INGRESSES, name, namespace=services_ns)
    recreated = await tkube.create(
        resources.INGRESSES,
        ingress("again", ingress_rule("again.example", ("/", "api", 80))),
        namespace=services_ns,
    )
    async with agent():
        await route_of(mgmt, tenant_setup.namespace, recreated)

        async def reaped():
            names = {objects.name(r) for r in await routes(mgmt, tenant_setup.namespace)}
            web_twin = await find(tkube, resources.SERVICES, services_ns, "web-nodeport")
            return names == {objects.uid(recreated)} and web_twin is None

        await wait_for(reaped, what="the stale Routes and the unused twin deleted")
        assert await find(tkube, resources.SERVICES, services_ns, "api-nodeport") is not None


async def test_api_writes_per_ingress(agent, tenant_setup, services_ns, tkube, mgmt):
    """Ten Ingresses on one backend, served and addressed: one management write each (the
    Route's creation); on the tenant side the finalizer and the status each, plus the shared
    twin (applied once per worker that found it missing)."""
    count = 10
    async with agent() as running:
        await tkube.create(resources.SERVICES, backend_service("web"), namespace=services_ns)
        await idle(running.service_controller, what="the service controller idle")
        management_before = management_write_count(errors=False)
        tenant_before = running.tenant_writer.writes_in[services_ns]
        made = [
            await tkube.create(
                resources.INGRESSES,
                ingress(f"i{n}", ingress_rule(f"i{n}.example", ("/", "web", 80))),
                namespace=services_ns,
            )
            for n in range(count)
        ]
        for ing in made:
            route = await route_of(
                mgmt, tenant_setup.namespace, ing, check=lambda r: service_copies(r)
            )
            await set_route_status(mgmt, route, {"loadBalancer": {"ingress": [{"ip": "10.7.7.7"}]}})

        async def addressed():
            listed = await tkube.list(resources.INGRESSES, namespace=services_ns)
            return all(objects.lookup(i, "status.loadBalancer.ingress") for i in listed.items)

        await wait_for(addressed, what="every Ingress addressed")
        await idle(running.source_controllers["ingress"], what="the ingress controller idle")
        # A create the cache had not seen yet may be tried twice; the second is refused (409).
        assert management_write_count(errors=False) - management_before == count
        tenant_writes = running.tenant_writer.writes_in[services_ns] - tenant_before
        assert 2 * count + 1 <= tenant_writes <= 2 * count + running.settings.workers


async def test_a_users_service_in_the_twins_place_is_left_alone(
    agent, tenant_setup, services_ns, tkube, mgmt
):
    await tkube.create(resources.SERVICES, backend_service("web"), namespace=services_ns)
    mine = await tkube.create(
        resources.SERVICES, backend_service("web-nodeport", type="NodePort"), namespace=services_ns
    )
    async with agent():
        ing = await tkube.create(
            resources.INGRESSES,
            ingress("shop", ingress_rule("shop.example", ("/", "web", 80))),
            namespace=services_ns,
        )
        route = await route_of(mgmt, tenant_setup.namespace, ing)
        assert service_copies(route) == {}

        async def warned():
            found = await object_events(tkube, ing)
            return [e for e in found if e["reason"] == "NodePortServiceNameTaken"]

        await wait_for(warned, what="an Event on the taken twin name")
        kept = await tkube.get(resources.SERVICES, "web-nodeport", namespace=services_ns)
        assert objects.resource_version(kept) == objects.resource_version(mine)
        # The user's Service goes: the twin takes its place.
        await tkube.delete(resources.SERVICES, "web-nodeport", namespace=services_ns)
        await route_of(
            mgmt, tenant_setup.namespace, ing, check=lambda r: "web-nodeport" in service_copies(r)
        )
        twin = await tkube.get(resources.SERVICES, "web-nodeport", namespace=services_ns)
        assert objects.labels(twin)["kubelb.k8c.io/managed-by"] == "kubelb"
