"""Swapping only the image in an upstream KubeLB install (issue 13): the manager and the agent
start with the arguments upstream's Helm charts render, against real API servers, and become
ready. The lists below are upstream's `kubelb-manager` and `kubelb-ccm` deployment args
with every value switched on, plus the CCM flags a newer chart or an operator's extra args
add. Neither gets --namespace or --leader-election-namespace: the charts set $NAMESPACE
instead, and the Leases show both processes honoured it.

Beyond the chart, each process gets only what a test run needs: kubeconfigs (in a pod,
in-cluster config and the mounted Secret) and loopback probe/metrics/xDS ports. The server URL
of tenant kubeconfigs comes from the cluster's `kube-public/cluster-info`, as upstream's
manager reads it (the test control plane publishes it, as kubeadm does). The LoadBalancer the
agent makes gets an address end to end: the test plays MetalLB for the management Service, and
the agent writes the address into its tenant Service's status. The agent also logs with
--zap-encoder=json, so its every line is checked to be a JSON object with the fields operators
grep for."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from kubelb.app import agent as agent_app, manager as manager_app
from kubelb.kube import client, errors, objects, resources
from kubelb.manager import kubeconfigs, lbservice, tenantobjects
from kubelb.util import ports
from tests.integration.agent.helpers import find, wait_for
from tests.support import cluster

pytestmark = pytest.mark.integration

# charts/kubelb-manager/templates/deployment.yaml, every option on (kubelb.debug is true by
# default there).
MANAGER_CHART_ARGS = [
    "--enable-leader-election=true",
    "--enable-gateway-api=true",
    "--enable-tenant-migration=true",
    "--debug=true",
    "--zap-log-level=info",
]
# charts/kubelb-ccm/templates/deployment.yaml with its options set away from their defaults
# where a shared test cluster allows (kubelb-class Services only), then the
# remaining CCM flags (Ingress conversion, Enterprise Edition) as extra args.
CCM_CHART_ARGS = [
    "--enable-leader-election=true",
    "--node-address-type=InternalIP",
    "--use-loadbalancer-class=true",
    "--enable-gateway-api=true",
    "--use-gateway-class=false",
    "--use-ingress-class=false",
    "--disable-ingress-controller=true",
    "--disable-gateway-controller=true",
    "--disable-httproute-controller=true",
    "--disable-grpcroute-controller=true",
    "--enable-secret-synchronizer=true",
    # `--install-gateway-api-crds=true` is left out: it rewrites the shared tenant cluster's
    # CRDs; tests/integration/agent/test_gateway_crds.py runs it on a private control plane.
    "--gateway-api-crds-channel=standard",
    "--zap-log-level=debug",
    "--enable-cloud-provider=true",
    "--ingress-conversion-only=false",
    "--enable-ingress-conversion=true",
    "--conversion-gateway-name=kubelb",
    "--conversion-gateway-namespace=kubelb",
    "--conversion-gateway-class=kubelb",
    "--conversion-ingress-class=nginx",
    "--conversion-domain-replace=example.com",
    "--conversion-domain-suffix=example.org",
    "--conversion-propagate-external-dns-annotations=true",
    "--conversion-gateway-annotations=a=b,c=d",
    "--conversion-disable-envoy-gateway-features=false",
    "--conversion-copy-tls-secrets=true",
]
# The chart's `--cluster-name={{ .Values.kubelb.tenantName }}` comes with the tenant below.
JSON_KEYS = {"ts", "level", "logger", "msg", "caller"}
ADDRESS = "203.0.113.80"


def free_port() -> int:
    return ports.free_port()


class Running:
    """`python -m kubelb ARGS` with $NAMESPACE set, as the chart's Deployment runs it."""

    def __init__(self, name: str, argv: list[str], namespace: str, log: Path) -> None:
        self.name, self.log, self.probes = name, log, free_port()
        self.argv = [sys.executable, "-m", "kubelb", *argv,
                     f"--health-probe-bind-address=127.0.0.1:{self.probes}",
                     f"--metrics-addr=127.0.0.1:{free_port()}"]  # fmt: skip
        self.env = {**os.environ, "NAMESPACE": namespace, "PYTHONUNBUFFERED": "1"}
        self.env.pop("POD_NAMESPACE", None)
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv, stdout=out, stderr=out, env=self.env
            )
        async with aiohttp.ClientSession() as http:

            async def ready() -> bool:
                assert self.process is not None
                if self.process.returncode is not None:
                    raise AssertionError(f"{self.name} exited:\n{self.text()}")
                try:
                    async with http.get(f"http://127.0.0.1:{self.probes}/readyz") as response:
                        return response.status == 200
                except aiohttp.ClientError:
                    return False

            await wait_for(ready, what=f"/readyz 200 from the {self.name}")

    async def stop(self) -> int | None:
        if self.process is None or self.process.returncode is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(60):
                return await self.process.wait()
        except TimeoutError:
            self.process.kill()
            return await self.process.wait()

    def text(self) -> str:
        return self.log.read_text(errors="replace")


async def holder(kube: client.Client, namespace: str, name: str) -> str | None:
    lease = await find(kube, resources.LEASES, namespace, name)
    identity = (lease or {}).get("spec", {}).get("holderIdentity")
    return str(identity) if identity else None


async def test_manager_and_agent_start_with_upstreams_chart_args(
    management: cluster.Cluster,
    tenant: cluster.Cluster,
    management_namespace: str,
    tenant_namespace: str,
    management_api: Any,
    tenant_api: Any,
    tmp_path: Path,
) -> None:
    mgmt = client.Client(management_api, field_manager="kubelb-test")
    tkube = client.Client(tenant_api, field_manager="kubelb-test")
    manager = Running(
        "manager",
        ["--mode=manager", *MANAGER_CHART_ARGS, f"--kubeconfig={management.kubeconfig}",
         f"--listen-address=127.0.0.1:{free_port()}"],
        management_namespace,
        tmp_path / "manager.log",
    )  # fmt: skip
    name = f"flags-{secrets.token_hex(3)}"
    agent: Running | None = None
    try:
        await manager.start()

        async def leads() -> str | None:
            return await holder(mgmt, management_namespace, manager_app.LEASE_NAME)

        await wait_for(leads, what=f"the manager's Lease in $NAMESPACE {management_namespace}")
        await mgmt.create(resources.TENANTS, {"metadata": {"name": name}, "spec": {}})

        async def issued() -> str | None:
            secret = await find(mgmt, resources.SECRETS, f"tenant-{name}",
                                kubeconfigs.SECRET_NAME)  # fmt: skip
            return tenantobjects.secret_value(secret, kubeconfigs.SECRET_KEY) if secret else None

        kubelb_kubeconfig = tmp_path / "kubelb"
        text = await wait_for(issued, what="the tenant's kubeconfig")
        parts = kubeconfigs.parse_kubeconfig(text or "")
        assert parts is not None
        assert (parts.server, parts.ca_pem) == (management.server, management.ca_pem)
        # Where upstream's manager finds it (it has no fallback to its own connection).
        info = await find(mgmt, resources.CONFIG_MAPS, kubeconfigs.CLUSTER_INFO_NAMESPACE,
                          kubeconfigs.CLUSTER_INFO_NAME)  # fmt: skip
        assert kubeconfigs.server_from_cluster_info(info) == (parts.server, parts.ca_pem)
        kubelb_kubeconfig.write_text(text or "")
        agent = Running(
            "agent",
            ["--mode=agent", *CCM_CHART_ARGS, f"--cluster-name={name}",
             f"--kubeconfig={tenant.kubeconfig}", f"--kubelb-kubeconfig={kubelb_kubeconfig}",
             "--zap-encoder=json"],
            tenant_namespace,
            tmp_path / "agent.log",
        )  # fmt: skip
        await agent.start()

        async def agent_leads() -> str | None:
            return await holder(tkube, tenant_namespace, agent_app.LEADER_ELECTION_ID)

        await wait_for(agent_leads, what=f"the agent's Lease in $NAMESPACE {tenant_namespace}")
        svc = await tkube.create(
            resources.SERVICES,
            {"metadata": {"name": "web"},
             "spec": {"type": "LoadBalancer", "loadBalancerClass": "kubelb",
                      "ports": [{"port": 80}]}},
            namespace=tenant_namespace,
        )  # fmt: skip

        async def made() -> objects.RawObject | None:
            return await find(mgmt, resources.LOAD_BALANCERS, f"tenant-{name}", objects.uid(svc))

        lb = await wait_for(made, what="the LoadBalancer the agent made")
        assert lb is not None
        # What MetalLB would do for the management Service; the address flows back to the tenant.
        management_service = lbservice.service_name(objects.name(lb))

        async def exposed() -> objects.RawObject | None:
            return await find(mgmt, resources.SERVICES, f"tenant-{name}", management_service)

        exposed_service = await wait_for(exposed, what="the management Service")
        assert exposed_service is not None
        exposed_service["status"] = {"loadBalancer": {"ingress": [{"ip": ADDRESS}]}}
        await mgmt.replace_status(resources.SERVICES, exposed_service)

        async def addressed() -> bool:
            web = await find(tkube, resources.SERVICES, tenant_namespace, "web")
            ingress = objects.lookup(web or {}, "status.loadBalancer.ingress") or []
            return [i.get("ip") for i in ingress] == [ADDRESS]

        await wait_for(addressed, what=f"the tenant Service's address {ADDRESS}")
        await tkube.delete(resources.SERVICES, "web", namespace=tenant_namespace)

        async def gone() -> bool:
            return await find(tkube, resources.SERVICES, tenant_namespace, "web") is None

        await wait_for(gone, what="the Service released by the agent")
        assert await agent.stop() == 0, agent.text()
    finally:
        if agent is not None:
            await agent.stop()
        with contextlib.suppress(errors.NotFoundError):
            await mgmt.delete(resources.TENANTS, name)

        async def tenant_gone() -> bool:
            return await find(mgmt, resources.TENANTS, "", name) is None

        try:
            await wait_for(tenant_gone, what="the Tenant removed by the manager")
        finally:
            code = await manager.stop()
    assert code == 0, manager.text()

    manager_log = manager.text()
    for flag in ("--enable-gateway-api", "--enable-tenant-migration"):
        assert f"WARNING kubelb.app.manager: {flag}" in manager_log  # never silently

    lines = [json.loads(line) for line in agent.text().splitlines() if line.strip()]
    assert lines, "the agent logged nothing"
    for line in lines:
        assert line.keys() >= JSON_KEYS, line
        assert line["tenant"] == f"tenant-{name}", line
    noted = {line["msg"].split("=")[0] for line in lines if line["level"] == "warn"}
    # --enable-secret-synchronizer is honoured (Secrets become SyncSecrets), so not among them.
    assert {"--enable-ingress-conversion", "--conversion-domain-suffix"} <= noted
    assert "--enable-secret-synchronizer" not in noted
    assert any(line.get("object") == f"{tenant_namespace}/web" for line in lines), (
        "no log line names the Service"
    )
