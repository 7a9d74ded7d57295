"""The manager with the Kubernetes deployer on the real API server (no kubelet, so no pods:
assert on objects): the management Service and Envoy Deployment have the expected spec, the
address flows back from the Service status, ports survive a restart that writes nothing, a
disabled tenant is cleaned up with a reason, and only the leader writes."""

from __future__ import annotations

import json

import pytest

from kubelb.api import tenant as api_tenant
from kubelb.kube import objects, resources
from tests.integration.manager.helpers import (
    addresses,
    eventually,
    get,
    ingress_ips,
    load_balancer,
    ready,
    settled,
)

pytestmark = pytest.mark.integration

PORTS = [("https", 443, 30443), ("http", 80, 30080)]


def reason_is(kube, ns, name, reason):
    async def check():
        condition = ready(await get(kube, resources.LOAD_BALANCERS, ns, name))
        return condition if condition and condition["reason"] == reason else None

    return check


async def test_service_deployment_status_and_restart(
    kube, tenants, managers, manager_settings, management_namespace
):
    ns, unmanaged = await tenants(), await tenants(managed=False)
    await kube.create(resources.CONFIGS, {"metadata": {"name": "default"},
                      "spec": {"envoyProxy": {"replicas": 2}}},
                      namespace=management_namespace)  # fmt: skip
    for where in (ns, unmanaged):
        await kube.create(resources.ADDRESSES, addresses("10.0.0.1", "10.0.0.2"), namespace=where)
        web = load_balancer("web", ports=PORTS, labels={"kubelb.k8c.io/origin-name": "shop"})
        await kube.create(resources.LOAD_BALANCERS, web, namespace=where)

    async with managers(manager_settings) as manager:
        lb = await eventually(reason_is(kube, ns, "web", "NoAddress"), what="NoAddress")
        lb = await get(kube, resources.LOAD_BALANCERS, ns, "web")
        svc = await get(kube, resources.SERVICES, ns, "envoy-web")
        status_ports = {p["name"]: p for p in lb["status"]["service"]["ports"]}
        assert {n: p["upstreamTargetPort"] for n, p in status_ports.items()} == {
            "http": 30080, "https": 30443}  # fmt: skip
        assert [(p["name"], p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [
            (n, status_ports[n]["port"], status_ports[n]["targetPort"]) for n in ("http", "https")
        ]
        assert status_ports["http"]["targetPort"] != status_ports["https"]["targetPort"]
        assert svc["spec"]["type"] == "LoadBalancer"
        assert svc["spec"]["selector"] == {"app.kubernetes.io/name": ns}
        assert svc["metadata"]["labels"]["kubelb.k8c.io/lb-name"] == "web"
        assert svc["metadata"]["labels"]["kubelb.k8c.io/origin-name"] == "shop"
        assert svc["metadata"]["ownerReferences"][0]["uid"] == objects.uid(lb)
        assert "kubelb.k8c.io/cleanup" in lb["metadata"]["finalizers"]

        deployment = await eventually(
            lambda: get(kube, resources.DEPLOYMENTS, ns, f"envoy-{ns}"), what="Deployment"
        )
        _check_deployment(deployment, ns, replicas=2)

        # A tenant override wins over the Config; without it the Config counts again. (The
        # Tenant stays until the end: deleting it drains the tenant, as upstream does.)
        tenant_name = api_tenant.tenant_name_for(ns)
        tenant = {"metadata": {"name": tenant_name}, "spec": {"envoyProxy": {"replicas": 1}}}
        await kube.create(resources.TENANTS, tenant)
        await eventually(_replicas(kube, ns, 1), what="replicas from the Tenant")
        await kube.patch(resources.TENANTS, tenant_name,
                         {"spec": {"envoyProxy": {"replicas": None}}})  # fmt: skip
        await eventually(_replicas(kube, ns, 2), what="replicas from the Config again")

        # The snapshot: one listener per port on 0.0.0.0:<allocated port>.
        config = manager.snapshots.published[ns]
        assert sorted((li.address, li.port) for li in config.listeners) == sorted(
            ("0.0.0.0", p["targetPort"]) for p in status_ports.values())  # fmt: skip
        assert manager.cache.get_snapshot(ns) is not None

        # MetalLB sets the Service status: the address flows into the LB status.
        svc["status"] = {"loadBalancer": {"ingress": [{"ip": "203.0.113.10"}]}}
        await kube.replace_status(resources.SERVICES, svc)
        lb = await eventually(reason_is(kube, ns, "web", "EnvoyNotReady"), what="EnvoyNotReady")
        lb = await get(kube, resources.LOAD_BALANCERS, ns, "web")
        assert ingress_ips(lb) == ["203.0.113.10"]
        await settled(manager, ns, management_namespace)
        before = lb["status"]

    # Nothing in the unmanaged namespace was touched.
    assert ready(await get(kube, resources.LOAD_BALANCERS, unmanaged, "web")) is None
    assert await get(kube, resources.SERVICES, unmanaged, "envoy-web") is None

    # A restart over a converged state: the same ports, and not one write.
    async with managers(manager_settings) as manager:
        await settled(manager, ns, management_namespace)
        # Other tests' leftovers on the shared API server may still be cleaned up: count ours.
        written = {where: manager.writer.writes_in[where] for where in (ns, management_namespace)}
        assert written == {ns: 0, management_namespace: 0}, "a restart must not rewrite anything"
        lb = await get(kube, resources.LOAD_BALANCERS, ns, "web")
        assert lb["status"]["service"] == before["service"]
        assert ready(lb) == ready({"status": before})

        # A new LB gets new ports; the old one keeps its own.
        api = load_balancer("api", ports=[("http", 80, 31080)])
        await kube.create(resources.LOAD_BALANCERS, api, namespace=ns)
        api = await eventually(reason_is(kube, ns, "api", "NoAddress"), what="second LB")
        api = await get(kube, resources.LOAD_BALANCERS, ns, "api")
        taken = {p["targetPort"] for p in before["service"]["ports"]}
        assert api["status"]["service"]["ports"][0]["targetPort"] not in taken
        lb = await get(kube, resources.LOAD_BALANCERS, ns, "web")
        assert lb["status"]["service"] == before["service"]

        # Deleting both LBs removes their Services, the Envoy Deployment and the snapshot.
        for name in ("web", "api"):
            await kube.delete(resources.LOAD_BALANCERS, name, namespace=ns)

        async def all_gone():
            found = [await get(kube, resources.LOAD_BALANCERS, ns, n) for n in ("web", "api")]
            found += [await get(kube, resources.SERVICES, ns, f"envoy-{n}") for n in ("web", "api")]
            found.append(await get(kube, resources.DEPLOYMENTS, ns, f"envoy-{ns}"))
            return not any(found) and manager.cache.get_snapshot(ns) is None

        await eventually(all_gone, what="everything cleaned up")
    await kube.delete(resources.CONFIGS, "default", namespace=management_namespace)
    await kube.delete(resources.TENANTS, api_tenant.tenant_name_for(ns))


def _replicas(kube, ns, count):
    async def check():
        d = await get(kube, resources.DEPLOYMENTS, ns, f"envoy-{ns}")
        return d is not None and d["spec"]["replicas"] == count

    return check


def _check_deployment(deployment, ns, *, replicas):
    meta, spec = deployment["metadata"], deployment["spec"]
    assert meta["labels"] == {"app.kubernetes.io/name": "kubelb-envoy-proxy",
                              "app.kubernetes.io/instance": ns,
                              "app.kubernetes.io/managed-by": "kubelb"}  # fmt: skip
    assert spec["replicas"] == replicas
    assert spec["selector"] == {"matchLabels": {"app.kubernetes.io/name": ns}}
    pod = spec["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 300
    envoy, shutdown = pod["containers"]
    assert envoy["name"] == "envoy-proxy"
    assert envoy["image"] == "envoyproxy/envoy:distroless-v1.36.4"
    assert {p["name"]: p["containerPort"] for p in envoy["ports"]} == {
        "metrics": 19001, "readiness": 19003, "healthcheck": 19004}  # fmt: skip
    assert envoy["startupProbe"]["httpGet"] == {"path": "/ready", "port": 19003, "scheme": "HTTP"}
    assert envoy["readinessProbe"]["httpGet"]["port"] == 19004
    assert envoy["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert envoy["lifecycle"]["preStop"]["httpGet"]["path"] == "/shutdown/ready"
    assert shutdown["name"] == "shutdown-manager"
    args = envoy["args"]
    assert args[args.index("--service-node") + 1] == ns
    boot = json.loads(args[args.index("--config-yaml") + 1])
    assert boot["node"]["id"] == ns
    (xds,) = [c for c in boot["static_resources"]["clusters"] if c["name"] == "xds_cluster"]
    endpoint = xds["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    assert endpoint["address"]["socket_address"] == {"address": "envoycp.kubelb.svc",
                                                     "port_value": 8001}  # fmt: skip
    listeners = {li["name"]: li for li in boot["static_resources"]["listeners"]}
    assert {"probe_listener", "health_check_listener", "stats_listener"} <= set(listeners)


async def test_tenant_disabled_cleans_up_and_says_why(kube, tenants, managers, manager_settings):
    ns = await tenants()
    await kube.create(resources.ADDRESSES, addresses("10.0.0.1"), namespace=ns)
    await kube.create(resources.LOAD_BALANCERS, load_balancer("web", ports=PORTS), namespace=ns)
    name = api_tenant.tenant_name_for(ns)
    async with managers(manager_settings) as manager:
        await eventually(reason_is(kube, ns, "web", "NoAddress"), what="LB served")
        first = (await get(kube, resources.LOAD_BALANCERS, ns, "web"))["status"]["service"]
        disabled = {"metadata": {"name": name}, "spec": {"loadBalancer": {"disable": True}}}
        await kube.create(resources.TENANTS, disabled)
        try:
            condition = await eventually(reason_is(kube, ns, "web", "TenantDisabled"),
                                         what="TenantDisabled")  # fmt: skip
            assert condition["status"] == "False"

            async def cleaned():
                svc = await get(kube, resources.SERVICES, ns, "envoy-web")
                deployment = await get(kube, resources.DEPLOYMENTS, ns, f"envoy-{ns}")
                lb = await get(kube, resources.LOAD_BALANCERS, ns, "web")
                return (svc is None and deployment is None and not objects.finalizers(lb)
                        and not lb["status"].get("service")
                        and manager.cache.get_snapshot(ns) is None)  # fmt: skip

            await eventually(cleaned, what="disabled tenant cleaned up")
            await kube.patch(
                resources.TENANTS, name, {"spec": {"loadBalancer": {"disable": False}}}
            )
            await eventually(reason_is(kube, ns, "web", "NoAddress"), what="served again")
            again = (await get(kube, resources.LOAD_BALANCERS, ns, "web"))["status"]["service"]
            assert again == first  # the allocator is deterministic
        finally:
            await kube.delete(resources.TENANTS, name)


async def test_only_the_leader_writes(kube, tenants, managers, replicas, manager_settings):
    ns = await tenants()
    await kube.create(resources.ADDRESSES, addresses("10.0.0.1"), namespace=ns)
    await kube.create(resources.LOAD_BALANCERS, load_balancer("a", ports=PORTS), namespace=ns)
    elected = {"enable_leader_election": True}
    async with managers(manager_settings, **elected) as first:
        await eventually(reason_is(kube, ns, "a", "NoAddress"), what="first LB served")
        assert first.elector is not None
        assert first.elector.is_leader
        async with managers(manager_settings, **elected) as second:

            async def second_sees(count):
                config = second.snapshots.published.get(ns)
                return config is not None and len(config.listeners) == count

            await eventually(lambda: second_sees(2), what="the follower's snapshot")
            b = load_balancer("b", ports=[("http", 8080, 30081)])
            await kube.create(resources.LOAD_BALANCERS, b, namespace=ns)
            await eventually(reason_is(kube, ns, "b", "NoAddress"), what="second LB served")
            await eventually(lambda: second_sees(3), what="a fresh snapshot on the follower")
            assert second.elector is not None
            assert not second.elector.is_leader
            assert second.writer.writes == 0
            assert second.xds_port != first.xds_port  # both serve xDS

            await replicas.stop(first)

            async def second_leads():
                return second.elector.is_leader

            await eventually(second_leads, what="the follower took over")
            c = load_balancer("c", ports=[("http", 8081, 30082)])
            await kube.create(resources.LOAD_BALANCERS, c, namespace=ns)
            await eventually(reason_is(kube, ns, "c", "NoAddress"), what="third LB served")
            assert second.writer.writes > 0
