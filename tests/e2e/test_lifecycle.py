"""Lifecycle end to end: deleting a Service cleans up everything, NodePort and ExternalName
Services are ignored, traffic outlives a paused control plane, a manager restart moves no port
or address (also when it switches the Envoys to delta xDS), and an agent restart creates no
duplicates."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator

import pytest

from kubelb.api import labels
from kubelb.kube import client, objects, resources
from tests.e2e import backends
from tests.e2e.conftest import POOL, Stack
from tests.e2e.helpers import (
    answered,
    find,
    ingress_ips,
    lb_service,
    load_balancers_of,
    node_ports,
    ready_condition,
    served_address,
    until,
)

pytestmark = pytest.mark.e2e


async def refused(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection(host, port)
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return False


@contextlib.asynccontextmanager
async def served(
    stack: Stack, kube: client.Client, namespace: str, name: str
) -> AsyncIterator[tuple[objects.RawObject, str, int]]:
    """A one-port LoadBalancer Service with backends on every alpha node, once traffic flows:
    yields (Service as created, address, port)."""
    port = backends.free_port(POOL)
    body = lb_service(name, [{"name": "tcp", "port": port}])
    svc = await kube.create(resources.SERVICES, body, namespace=namespace)
    (node_port,) = node_ports(svc).values()
    async with backends.node_backends(stack.tenants["alpha"].nodes, node_port):
        ip = await served_address(kube, namespace, name)
        await answered(ip, port, b"ping")
        yield svc, ip, port


async def test_deleting_the_service_cleans_up_everything(stack: Stack, mgmt, kube_a, shop):
    ns = stack.tenants["alpha"].namespace
    async with served(stack, kube_a, shop, "gone") as (svc, ip, port):
        lb_name = objects.uid(svc)
        assert await find(mgmt, resources.SERVICES, f"envoy-{lb_name}", ns) is not None
        await kube_a.delete(resources.SERVICES, "gone", namespace=shop)

        async def cleaned() -> bool:
            return (
                await find(kube_a, resources.SERVICES, "gone", shop) is None  # finalizer ran
                and await find(mgmt, resources.LOAD_BALANCERS, lb_name, ns) is None
                and await find(mgmt, resources.SERVICES, f"envoy-{lb_name}", ns) is None
            )

        await until(cleaned, what="the tenant Service, its LB and management Service gone")
        await until(lambda: refused(ip, port), what=f"the listener on {ip}:{port} closed")


async def test_nodeport_and_externalname_services_are_ignored(stack: Stack, mgmt, kube_a, shop):
    alpha = stack.tenants["alpha"]
    node_port = {"metadata": {"name": "np"},
                 "spec": {"type": "NodePort", "ports": [{"port": 80}]}}  # fmt: skip
    external = {"metadata": {"name": "ext"},
                "spec": {"type": "ExternalName", "externalName": "example.com"}}  # fmt: skip
    for body in (node_port, external):
        await kube_a.create(resources.SERVICES, body, namespace=shop)
    async with served(stack, kube_a, shop, "control"):

        async def skipped_both() -> bool:  # the agent has seen and skipped them
            skips = await alpha.agent.metric("kubelb_ccm_service_reconcile_total",
                                             namespace=shop, result="skipped")  # fmt: skip
            return skips >= 2

        await until(skipped_both, what="the agent to skip the NodePort and ExternalName Services")
        lbs = await load_balancers_of(mgmt, alpha.namespace, shop)
        assert [lb["metadata"]["labels"][labels.ORIGIN_NAME] for lb in lbs] == ["control"]
        for name in ("np", "ext"):
            svc = await kube_a.get(resources.SERVICES, name, namespace=shop)
            assert not objects.finalizers(svc), name
            assert ingress_ips(svc) == [], name


async def test_traffic_survives_a_paused_control_plane(stack: Stack, kube_a, shop):
    """Envoy keeps serving its last configuration while the manager cannot answer (stopped with
    SIGSTOP: xDS, probes and controllers all frozen): an open connection keeps working and new
    connections are served."""
    async with served(stack, kube_a, shop, "steady") as (_, ip, port):
        conn = await backends.Connection.open(ip, port)
        assert stack.manager.process is not None
        pid = stack.manager.process.pid
        try:
            assert backends.served_by(await conn.roundtrip(b"before")) is not None
            os.kill(pid, signal.SIGSTOP)
            try:
                answer = await conn.roundtrip(b"during")
                assert answer is not None
                assert answer.endswith(b":during")
                assert (await answered(ip, port, b"new")).endswith(b":new")
            finally:
                os.kill(pid, signal.SIGCONT)
            assert (await conn.roundtrip(b"after")) is not None
        finally:
            await conn.close()


async def test_manager_restart_moves_no_port_or_address(stack: Stack, mgmt, kube_a, shop):
    """A new manager process recovers the address assignment and the port allocation from the
    statuses: the tenant Service keeps its address, the LB its ports, and traffic flows again.
    (With the process deployer the Envoys are the manager's children: they drain and stop with
    it, so connections open across the restart end; new ones work once it is back.)"""
    ns = stack.tenants["alpha"].namespace
    async with served(stack, kube_a, shop, "kept") as (svc, ip, port):
        lb_name = objects.uid(svc)
        before_lb = await mgmt.get(resources.LOAD_BALANCERS, lb_name, namespace=ns)
        before_svc = await mgmt.get(resources.SERVICES, f"envoy-{lb_name}", namespace=ns)
        await stack.manager.restart()
        answer = await answered(ip, port, b"again")
        assert answer.endswith(b":again")

        async def ready_again() -> objects.RawObject | None:
            lb = await find(mgmt, resources.LOAD_BALANCERS, lb_name, ns)
            condition = ready_condition(lb)
            return lb if condition and condition["status"] == "True" else None

        after_lb = await until(ready_again, what="the LB Ready after the restart")
        after_svc = await mgmt.get(resources.SERVICES, f"envoy-{lb_name}", namespace=ns)
        assert after_lb["status"]["service"] == before_lb["status"]["service"]
        assert ingress_ips(after_lb) == ingress_ips(before_lb) == [ip]
        assert after_svc["spec"]["ports"] == before_svc["spec"]["ports"]
        assert ingress_ips(after_svc) == [ip]
        tenant_svc = await kube_a.get(resources.SERVICES, "kept", namespace=shop)
        assert ingress_ips(tenant_svc) == [ip]


async def test_manager_switching_to_xds_delta_keeps_serving(stack: Stack, kube_a, shop):
    """`--xds-delta` on a running fleet: the manager's new Envoys take their configuration by
    delta xDS, the existing LB is served again on its address and port, and a new one works."""
    argv = list(stack.manager.argv)
    async with served(stack, kube_a, shop, "before-delta") as (_, ip, port):
        stack.manager.argv.append("--xds-delta")
        try:
            await stack.manager.restart()
            answer = await answered(ip, port, b"delta")
            assert answer.endswith(b":delta")
            async with served(stack, kube_a, shop, "with-delta") as (_, ip2, port2):
                assert (await answered(ip2, port2, b"new")).endswith(b":new")
            assert "xDS delta stream" in stack.manager.log.read_text(errors="replace")
        finally:
            stack.manager.argv[:] = argv
            await stack.manager.restart()


async def test_agent_restart_creates_no_duplicates(stack: Stack, mgmt, kube_a, shop):
    alpha = stack.tenants["alpha"]
    async with served(stack, kube_a, shop, "one"), served(stack, kube_a, shop, "two"):

        async def settled() -> list[objects.RawObject] | None:
            lbs = await load_balancers_of(mgmt, alpha.namespace, shop)
            conditions = [ready_condition(lb) or {} for lb in lbs]
            done = len(lbs) == 2 and all(c.get("status") == "True" for c in conditions)
            return lbs if done else None

        before = await until(settled, what="both LBs Ready")
        addresses = await mgmt.get(resources.ADDRESSES, "default", namespace=alpha.namespace)
        services = (await kube_a.list(resources.SERVICES, namespace=shop)).items
        await alpha.agent.restart()

        async def reconciled_both() -> bool:  # the new process has looked at both Services
            done = await alpha.agent.metric("kubelb_ccm_service_reconcile_total",
                                            namespace=shop, result="success")  # fmt: skip
            return done >= 2

        await until(reconciled_both, what="the restarted agent to reconcile both Services")
        after = await load_balancers_of(mgmt, alpha.namespace, shop)
        assert _versions(after) == _versions(before), "no LB recreated or rewritten"
        again = await mgmt.get(resources.ADDRESSES, "default", namespace=alpha.namespace)
        assert objects.resource_version(again) == objects.resource_version(addresses)
        services_after = (await kube_a.list(resources.SERVICES, namespace=shop)).items
        assert _versions(services_after) == _versions(services)


def _versions(items: list[objects.RawObject]) -> dict[str, str]:
    return {objects.name(o): objects.resource_version(o) for o in items}
