"""KubeLB run as an operator would: `python -m kubelb --mode=manager|agent` processes, a Tenant
created in the management cluster, and its issued kubeconfig handed to that tenant's agent.

Inputs: the e2e control plane's clusters (`tests.support.cluster.Cluster`). Outputs:
`KubelbProcess` (start, wait for /readyz, stop with SIGTERM, restart on the same ports) and
`onboard_tenant` (Tenant -> Ready -> the `kubelb-ccm-kubeconfig` Secret written to a file). Every
server listens on 127.0.0.1 (probes, metrics, xDS) or on the address pool's 127.0.0.x.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from kubelb.kube import client, objects, resources
from kubelb.localcluster import processes
from kubelb.manager import kubeconfigs, tenantobjects
from tests.e2e.helpers import find, until
from tests.support import cluster

MANAGER_NAMESPACE = "kubelb"
DEPLOY_MANIFEST = Path(__file__).resolve().parents[2] / "configs" / "deploy" / "manager.yaml"
START_DEADLINE = 90.0


@dataclass
class KubelbProcess:
    """One kubelb process; `argv` is completed with its probe and metrics addresses."""

    name: str
    argv: list[str]
    log: Path
    probe_port: int = field(default_factory=processes.free_port)
    metrics_port: int = field(default_factory=processes.free_port)
    process: processes.Process | None = None
    starts: int = 0

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "kubelb", *self.argv,
            f"--health-probe-bind-address=127.0.0.1:{self.probe_port}",
            f"--metrics-addr=127.0.0.1:{self.metrics_port}",
        ]  # fmt: skip

    async def start(self) -> None:
        """Start and wait for /readyz 200 (the process's own verdict that it serves)."""
        self.process = processes.Process(self.name, self.command(), self.log)
        self.starts += 1
        async with aiohttp.ClientSession() as http:

            async def ready() -> bool:
                assert self.process is not None
                self.process.check_running()
                try:
                    async with http.get(f"http://127.0.0.1:{self.probe_port}/readyz") as resp:
                        return resp.status == 200
                except aiohttp.ClientError:
                    return False

            await until(ready, what=f"{self.name} /readyz", deadline=START_DEADLINE)

    async def stop(self) -> int | None:
        """SIGTERM (what a pod gets), wait for a clean exit; return the exit status."""
        if self.process is None:
            return None
        process, self.process = self.process, None
        await process.stop(grace=30.0)
        return process.returncode

    async def restart(self) -> None:
        code = await self.stop()
        assert code == 0, f"{self.name} exited with {code}:\n{self.tail()}"
        await self.start()

    async def metric(self, name: str, **labels: str) -> float:
        """The sum of the samples of metric `name` carrying `labels` (0 when there are none)."""
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{self.metrics_port}/metrics") as resp,
        ):
            text = await resp.text()
        wanted = [f'{k}="{v}"' for k, v in labels.items()]
        total = 0.0
        for line in text.splitlines():
            sample, _, value = line.rpartition(" ")
            metric, _, label_text = sample.partition("{")
            if metric == name and all(w in label_text.rstrip("}").split(",") for w in wanted):
                total += float(value)
        return total

    def tail(self, lines: int = 40) -> str:
        return self.process.tail(lines) if self.process else self.log.read_text()[-4000:]


def manager_kubeconfig(workdir: Path) -> Path:
    return workdir / "manager.kubeconfig"


async def write_manager_identity(management: cluster.Cluster, workdir: Path) -> Path:
    """The manager's kubeconfig: ServiceAccount kubelb/kubelb with the RBAC of
    `configs/deploy/manager.yaml`, as the deployed manager runs. Every e2e scenario so also
    proves that the shipped manifest grants what the manager needs."""
    manifest = await asyncio.to_thread(DEPLOY_MANIFEST.read_text)
    return await management.deployed_identity(manifest, manager_kubeconfig(workdir))


def manager_process(
    management: cluster.Cluster, workdir: Path, *, deployer: str, pool: tuple[str, ...] = ()
) -> KubelbProcess:
    """The manager, with the kubeconfig `write_manager_identity` writes (call it first)."""
    argv = [
        "--mode=manager",
        f"--kubeconfig={manager_kubeconfig(workdir)}",
        f"--namespace={MANAGER_NAMESPACE}",
        f"--listen-address=127.0.0.1:{processes.free_port()}",
        f"--envoy-deployer={deployer}",
        f"--state-dir={workdir / 'envoy'}",
        "--envoy-drain-seconds=1",
        f"--tenant-api-server={management.server}",
        "--log-level=debug",
    ]
    if pool:
        argv.append(f"--address-pool={','.join(pool)}")
    return KubelbProcess(f"manager-{deployer}", argv, workdir / f"manager-{deployer}.log")


def agent_process(
    tenant_name: str, tenant_cluster: cluster.Cluster, issued_kubeconfig: Path, workdir: Path
) -> KubelbProcess:
    argv = [
        "--mode=agent",
        f"--cluster-name={tenant_name}",
        f"--kubeconfig={tenant_cluster.kubeconfig}",
        f"--kubelb-kubeconfig={issued_kubeconfig}",
        "--node-address-type=InternalIP",
        "--enable-gateway-api",
        "--enable-leader-election=true",
        "--log-level=debug",
    ]
    return KubelbProcess(f"agent-{tenant_name}", argv, workdir / f"agent-{tenant_name}.log")


async def onboard_tenant(kube: client.Client, name: str, path: Path) -> Path:
    """Create Tenant `name`, wait until the manager reports it Ready, and write the kubeconfig
    it issued (Secret `kubelb-ccm-kubeconfig`, key `kubelb`) to `path`."""
    await kube.create(resources.TENANTS, {"metadata": {"name": name}, "spec": {}})

    async def issued() -> str | None:
        tenant = await find(kube, resources.TENANTS, name)
        status = (tenant or {}).get("status") or {}
        if status.get("phase") != "Ready" or status.get("observedGeneration") != (
            objects.generation(tenant or {})
        ):
            return None
        secret = await find(kube, resources.SECRETS, kubeconfigs.SECRET_NAME, f"tenant-{name}")
        return tenantobjects.secret_value(secret, kubeconfigs.SECRET_KEY)

    text: str = await until(issued, what=f"Tenant {name} Ready with its kubeconfig Secret")
    await asyncio.to_thread(path.write_text, text)
    return path
