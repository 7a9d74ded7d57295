"""Config `envoyProxy` settings that shape the tenant's Envoy workload, on the real API server
with the Kubernetes deployer (no kubelet: assert on objects), and the metrics a running manager
serves about it, scraped from its /metrics:

- `useDaemonset` switches the workload to a DaemonSet and back, the other kind deleted each time;
- `podMonitor.enabled` writes a prometheus-operator PodMonitor the API server accepts (and drops
  the scrape annotations), removed when disabled and when the Envoy goes;
- `overloadManager.maxHeapSizeBytes` reaches the bootstrap's fixed-heap monitor.
"""

from __future__ import annotations

import json

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from kubelb.api import tenant as api_tenant
from kubelb.kube import resources
from tests.integration.manager.helpers import addresses, eventually, get, load_balancer, settled

pytestmark = pytest.mark.integration

HEAP = 256 * 1024 * 1024


async def scrape(manager) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample the manager's /metrics serves, by (name, sorted labels)."""
    url = f"http://127.0.0.1:{manager.metrics.port}/metrics"
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.status == 200
        text = await response.text()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def sample(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


async def test_daemonset_pod_monitor_heap_limit_and_metrics(
    kube, tenants, managers, manager_settings, management_namespace
):
    ns = await tenants()
    name = f"envoy-{ns}"
    envoy_proxy = {"useDaemonset": False, "podMonitor": {"enabled": True},
                   "overloadManager": {"enabled": True, "maxHeapSizeBytes": HEAP}}  # fmt: skip
    await kube.create(resources.CONFIGS, {"metadata": {"name": "default"},
                                          "spec": {"envoyProxy": envoy_proxy}},
                      namespace=management_namespace)  # fmt: skip
    tenant_name = api_tenant.tenant_name_for(ns)
    await kube.create(resources.TENANTS, {"metadata": {"name": tenant_name}, "spec": {}})
    await kube.create(resources.ADDRESSES, addresses("10.0.0.1"), namespace=ns)
    await kube.create(resources.LOAD_BALANCERS, load_balancer("web", ports=[("http", 80, 30080)]),
                      namespace=ns)  # fmt: skip

    async def use_daemonset(on: bool) -> None:
        await kube.patch(resources.CONFIGS, "default",
                         {"spec": {"envoyProxy": {"useDaemonset": on}}},
                         namespace=management_namespace)  # fmt: skip

    def only(kind: resources.Resource):
        other = resources.DAEMON_SETS if kind is resources.DEPLOYMENTS else resources.DEPLOYMENTS

        async def check():
            found = await get(kube, kind, ns, name)
            return found if found and await get(kube, other, ns, name) is None else None

        return check

    try:
        async with managers(manager_settings) as manager:
            deployment = await eventually(only(resources.DEPLOYMENTS), what="the Deployment")
            monitor = await eventually(lambda: get(kube, resources.POD_MONITORS, ns, name),
                                       what="the PodMonitor")  # fmt: skip
            assert monitor["spec"]["selector"] == deployment["spec"]["selector"]
            assert monitor["spec"]["podMetricsEndpoints"] == [
                {"port": "metrics", "path": "/stats/prometheus"}]  # fmt: skip
            template = deployment["spec"]["template"]
            assert "prometheus.io/scrape" not in template["metadata"].get("annotations", {})
            args = template["spec"]["containers"][0]["args"]
            boot = json.loads(args[args.index("--config-yaml") + 1])
            monitors = {m["name"]: m["typed_config"]
                        for m in boot["overload_manager"]["resource_monitors"]}  # fmt: skip
            assert monitors["envoy.resource_monitors.fixed_heap"]["max_heap_size_bytes"] == HEAP

            # The Deployment and PodMonitor are written before the reconcile that wrote them
            # counts the proxy: read the figures once the manager is done.
            await settled(manager, ns)
            samples = await scrape(manager)
            proxies = "kubelb_envoy_control_plane_envoy_proxies"
            assert sample(samples, proxies, namespace=ns, topology="shared") == 1
            created = "kubelb_envoy_control_plane_envoy_proxy_create_total"
            # (A reconcile that runs before the informer saw the new Deployment counts again.)
            assert sample(samples, created, namespace=ns) >= 1
            assert sample(samples, "kubelb_manager_envoy_proxies", namespace=ns,
                          topology="shared") == 1  # fmt: skip

            async def tenants_counted():
                listed = len((await kube.list(resources.TENANTS)).items)
                value = sample(await scrape(manager), "kubelb_manager_tenants")
                return value == listed and listed >= 1

            await eventually(tenants_counted, what="kubelb_manager_tenants = the Tenants listed")

            # DaemonSet and back: each time the other kind goes.
            await use_daemonset(True)
            daemon_set = await eventually(only(resources.DAEMON_SETS), what="the DaemonSet")
            assert "replicas" not in daemon_set["spec"]
            assert daemon_set["spec"]["template"]["spec"]["containers"][0]["name"] == "envoy-proxy"
            await use_daemonset(False)
            await eventually(only(resources.DEPLOYMENTS), what="the Deployment again")

            # PodMonitor off: it goes, and the scrape annotations come back.
            await kube.patch(resources.CONFIGS, "default",
                             {"spec": {"envoyProxy": {"podMonitor": {"enabled": False}}}},
                             namespace=management_namespace)  # fmt: skip

            async def monitor_gone():
                d = await get(kube, resources.DEPLOYMENTS, ns, name)
                annotations = d["spec"]["template"]["metadata"].get("annotations") or {}
                gone = await get(kube, resources.POD_MONITORS, ns, name) is None
                return gone and annotations.get("prometheus.io/scrape") == "true"

            await eventually(monitor_gone, what="PodMonitor deleted, annotations back")

            # On again, then the tenant's last LoadBalancer goes: the Envoy and its PodMonitor too.
            await kube.patch(resources.CONFIGS, "default",
                             {"spec": {"envoyProxy": {"podMonitor": {"enabled": True}}}},
                             namespace=management_namespace)  # fmt: skip
            await eventually(lambda: get(kube, resources.POD_MONITORS, ns, name),
                             what="the PodMonitor again")  # fmt: skip
            await kube.delete(resources.LOAD_BALANCERS, "web", namespace=ns)

            async def all_gone():
                found = [
                    await get(kube, r, ns, name)
                    for r in (resources.DEPLOYMENTS, resources.DAEMON_SETS, resources.POD_MONITORS)
                ]
                return not any(found)  # fmt: skip

            await eventually(all_gone, what="workload and PodMonitor deleted")
            samples = await scrape(manager)
            assert sample(samples, proxies, namespace=ns, topology="shared") is None
            deleted = "kubelb_envoy_control_plane_envoy_proxy_delete_total"
            assert sample(samples, deleted, namespace=ns) == 1
    finally:
        await kube.delete(resources.CONFIGS, "default", namespace=management_namespace)
        await kube.delete(resources.TENANTS, tenant_name)
