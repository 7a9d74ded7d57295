"""`kubelb --mode=agent` as a real process with the flags of issue 5: it leads (Lease in the tenant
cluster), serves a Service, answers probes and metrics, and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import aiohttp
import pytest

from kubelb.app import agent as agent_app
from kubelb.kube import objects, resources
from kubelb.util import ports
from tests.integration.agent.helpers import find, lb_service, wait_for

pytestmark = pytest.mark.integration


def free_port() -> int:
    return ports.free_port()


async def test_agent_process(tenant, tenant_setup, services_ns, tkube, mgmt, tmp_path):
    probes, metrics = free_port(), free_port()
    log_path = tmp_path / "agent.log"
    argv = [
        sys.executable, "-m", "kubelb", "--mode=agent",
        f"--cluster-name={tenant_setup.tenant.name}",
        f"--kubeconfig={tenant.kubeconfig}",
        f"--kubelb-kubeconfig={tenant_setup.kubeconfig}",
        "--node-address-type=InternalIP",
        # Only kubelb-class Services: this process watches every namespace of the shared cluster.
        "--use-loadbalancer-class",
        "--enable-cloud-provider=true",
        f"--metrics-addr=127.0.0.1:{metrics}",
        f"--health-probe-bind-address=127.0.0.1:{probes}",
        "--enable-leader-election=true",
        f"--leader-election-namespace={services_ns}",
        "--log-level=debug",
    ]  # fmt: skip
    with log_path.open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            *argv, stdout=log, stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"}
        )
    try:
        async with aiohttp.ClientSession() as http:

            async def ready():
                if process.returncode is not None:
                    raise AssertionError(f"agent exited:\n{log_path.read_text()}")
                try:
                    async with http.get(f"http://127.0.0.1:{probes}/readyz") as response:
                        return response.status == 200
                except aiohttp.ClientError:
                    return False

            await wait_for(ready, what="/readyz 200 from the agent process")

            async def leading():
                lease = await find(tkube, resources.LEASES, services_ns,
                                   agent_app.LEADER_ELECTION_ID)  # fmt: skip
                return lease if lease and lease["spec"].get("holderIdentity") else None

            await wait_for(leading, what="the agent to hold the Lease")
            svc = await tkube.create(resources.SERVICES,
                                     lb_service("cli", loadBalancerClass="kubelb"),
                                     namespace=services_ns)  # fmt: skip

            async def made():
                return await find(mgmt, resources.LOAD_BALANCERS, tenant_setup.namespace,
                                  objects.uid(svc))  # fmt: skip

            await wait_for(made, what="the LoadBalancer made by the agent process")
            async with http.get(f"http://127.0.0.1:{metrics}/metrics") as response:
                text = await response.text()
            assert 'kubelb_ccm_service_reconcile_total{namespace="' in text
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            assert await process.wait() == 0, log_path.read_text()
        lease = await tkube.get(resources.LEASES, agent_app.LEADER_ELECTION_ID,
                                namespace=services_ns)  # fmt: skip
        # Released on shutdown, so a successor need not wait for it to expire.
        assert not lease["spec"].get("holderIdentity")
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
