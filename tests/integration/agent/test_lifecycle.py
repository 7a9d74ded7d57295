"""The agent as a process: restarts, a rotated kubeconfig, probes and metrics, leader election."""

from __future__ import annotations

import contextlib

import aiohttp
import pytest

from kubelb.api import finalizers
from kubelb.kube import client, errors, kubeconfig, objects, resources
from tests.integration.agent.conftest import grant_tenant_role
from tests.integration.agent.helpers import find, lb_service, load_balancers, wait_for

pytestmark = pytest.mark.integration


async def lb_names(mgmt, namespace):
    return sorted(objects.name(lb) for lb in await load_balancers(mgmt, namespace))


async def test_restart_creates_no_duplicates_and_catches_up(
    agent, tenant_setup, services_ns, tkube, mgmt
):
    ns = tenant_setup.namespace
    async with agent():
        made = [await tkube.create(resources.SERVICES, lb_service(f"svc-{i}"),
                                   namespace=services_ns) for i in range(3)]  # fmt: skip
        uids = sorted(objects.uid(s) for s in made)

        async def all_made():
            return await lb_names(mgmt, ns) == uids

        await wait_for(all_made, what="three LoadBalancers")
    before = {
        objects.name(lb): objects.resource_version(lb) for lb in await load_balancers(mgmt, ns)
    }

    # While the agent is down: one Service is deleted (its finalizer holds it), another is
    # force-removed (finalizer stripped), so only its LoadBalancer is left behind.
    await tkube.delete(resources.SERVICES, "svc-0", namespace=services_ns)
    await tkube.patch(resources.SERVICES, "svc-1", {"metadata": {"finalizers": None}},
                      namespace=services_ns)  # fmt: skip
    await tkube.delete(resources.SERVICES, "svc-1", namespace=services_ns)

    async with agent() as running:

        async def caught_up():
            gone = await find(tkube, resources.SERVICES, services_ns, "svc-0") is None
            return gone and await lb_names(mgmt, ns) == [objects.uid(made[2])]

        await wait_for(caught_up, what="stale LoadBalancers deleted, svc-0 released, after restart")

        async def settled():
            return running.service_controller.reconciles >= 3 and not len(
                running.service_controller.queue
            )

        await wait_for(settled, what="the restarted agent to reconcile everything")
        [kept] = await load_balancers(mgmt, ns)
        # The surviving LoadBalancer was not rewritten by the restart.
        assert objects.resource_version(kept) == before[objects.name(kept)]


async def test_rotated_kubeconfig_is_picked_up(
    agent, management, tenant_setup, services_ns, tkube, mgmt
):
    ns = tenant_setup.namespace
    async with agent() as running:
        first = await tkube.create(resources.SERVICES, lb_service("before"), namespace=services_ns)

        async def first_made():
            return await find(mgmt, resources.LOAD_BALANCERS, ns, objects.uid(first))

        await wait_for(first_made, what="a LoadBalancer with the first credentials")

        # Rotation: a new account's token replaces the file in place; the old account goes,
        # and with it every token it had.
        old_copy = tenant_setup.kubeconfig.with_name("old.kubeconfig")
        old_copy.write_bytes(tenant_setup.kubeconfig.read_bytes())
        await grant_tenant_role(mgmt, ns, "kubelb-ccm-2")
        await management.service_account_kubeconfig(ns, "kubelb-ccm-2", tenant_setup.kubeconfig)
        await mgmt.delete(resources.SERVICE_ACCOUNTS, "kubelb-ccm", namespace=ns)

        old = client.Client(kubeconfig.KubeconfigFile(old_copy))
        try:

            async def old_rejected():
                try:
                    await old.list(resources.LOAD_BALANCERS, namespace=ns)
                except errors.UnauthorizedError:
                    return True
                return False

            await wait_for(old_rejected, what="the old token to be rejected")
        finally:
            await old.close()

        second = await tkube.create(resources.SERVICES, lb_service("after"), namespace=services_ns)

        async def second_made():
            return await find(mgmt, resources.LOAD_BALANCERS, ns, objects.uid(second))

        await wait_for(second_made, what="a LoadBalancer with the rotated credentials")
        source = running.management_client.source
        assert isinstance(source, kubeconfig.KubeconfigFile)
        assert source.reloads >= 1


def metric_value(text: str, name: str, **labels: str) -> float | None:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        metric, _, label_text = series.partition("{")
        got = ",".join(sorted(label_text.rstrip("}").split(","))) if label_text else ""
        if metric == name and got == wanted:
            return float(value)
    return None


async def test_probes_and_metrics(agent, tenant_setup, services_ns, tkube, mgmt):
    async with agent() as running, aiohttp.ClientSession() as http:
        await running.serving.wait()
        probes = f"http://127.0.0.1:{running.probes.port}"
        metrics = f"http://127.0.0.1:{running.metrics.port}/metrics"

        async def ready():
            async with http.get(f"{probes}/readyz") as response:
                return response.status == 200

        await wait_for(ready, what="/readyz 200")
        async with http.get(f"{probes}/healthz") as response:
            assert response.status == 200

        svc = await tkube.create(resources.SERVICES, lb_service("counted"), namespace=services_ns)

        async def made():
            return await find(mgmt, resources.LOAD_BALANCERS, tenant_setup.namespace,
                              objects.uid(svc))  # fmt: skip

        await wait_for(made, what="the LoadBalancer")

        async def scraped():
            async with http.get(metrics) as response:
                text = await response.text()
            managed = metric_value(text, "kubelb_ccm_managed_services", namespace=services_ns)
            return text if managed == 1.0 else None

        text = await wait_for(scraped, what="kubelb_ccm_managed_services = 1")
        success = metric_value(text, "kubelb_ccm_service_reconcile_total",
                               namespace=services_ns, result="success")  # fmt: skip
        assert success is not None
        assert success >= 1
        assert metric_value(text, "kubelb_ccm_kubelb_cluster_connected") == 1.0
        created = metric_value(text, "kubelb_ccm_kubelb_cluster_operations_total",
                               operation="create", result="success")  # fmt: skip
        assert created is not None
        assert created >= 1
        assert "kubelb_ccm_service_reconcile_duration_seconds_bucket" in text
        assert "kubelb_ccm_node_reconcile_total" in text


async def test_leader_election_moves_to_the_standby(agent, tenant_setup, services_ns, tkube, mgmt):
    ns = tenant_setup.namespace

    async def served(name):
        svc = await tkube.create(resources.SERVICES, lb_service(name), namespace=services_ns)

        async def made():
            return await find(mgmt, resources.LOAD_BALANCERS, ns, objects.uid(svc))

        await wait_for(made, what=f"the leader to serve Service {name}")

    async with contextlib.AsyncExitStack() as stack:
        first = await stack.enter_async_context(agent(enable_leader_election=True))
        await wait_for(_leading(first), what="the first agent to lead")
        async with agent(enable_leader_election=True) as second:
            await served("one")
            assert second.elector is not None
            assert not second.elector.is_leader
            assert second.service_controller.reconciles == 0
            # The leader stops (and releases the Lease): the standby takes over.
            await stack.aclose()
            await wait_for(_leading(second), what="the standby to lead")
            await served("two")


def _leading(running):
    async def check():
        return running.elector is not None and running.elector.is_leader

    return check


async def test_finalizer_legacy_is_replaced(agent, tenant_setup, services_ns, tkube, mgmt):
    body = lb_service("legacy")
    body["metadata"]["finalizers"] = [finalizers.LEGACY_LB_FINALIZER]
    async with agent():
        await tkube.create(resources.SERVICES, body, namespace=services_ns)

        async def replaced():
            current = await tkube.get(resources.SERVICES, "legacy", namespace=services_ns)
            return objects.finalizers(current) == [finalizers.CLEANUP]

        await wait_for(replaced, what="the legacy finalizer replaced by kubelb.k8c.io/cleanup")
