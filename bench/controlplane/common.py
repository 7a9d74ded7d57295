"""Shared pieces of the control-plane benchmarks: a real control plane, a manager subprocess,
metrics scraping and memory readings."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import signal
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from bench import procstat
from kubelb.kube import client, errors, kubeconfig, resources
from kubelb.localcluster import cluster as local_cluster
from kubelb.util import ports
from tests.support import cluster as test_cluster

DEPLOY_MANIFEST = Path(__file__).resolve().parents[2] / "configs" / "deploy" / "manager.yaml"
TENANT_KUBECONFIG_SECRET = "kubelb-ccm-kubeconfig"
TENANT_KUBECONFIG_KEY = "kubelb"


def exit_cleanly_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so `finally` blocks stop the control plane we started
    (a process killed by the default handler would leave etcd and the API servers running)."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))


def free_port() -> int:
    return ports.free_port()


async def kube_client(path: Path) -> client.Client:
    return client.Client(await kubeconfig.open_source(path))


@dataclass
class ManagerProcess:
    """`kubelb --mode=manager` with the process deployer, as a real subprocess."""

    kubeconfig: Path
    workdir: Path
    address_pool: str
    namespace: str = "kubelb"
    extra_args: tuple[str, ...] = ()
    # Run the kubelb of another source tree (`python -m kubelb` there finds its own first).
    source_tree: Path | None = None
    process: asyncio.subprocess.Process | None = None
    metrics_port: int = 0
    probes_port: int = 0

    async def start(self) -> None:
        self.metrics_port, self.probes_port = free_port(), free_port()
        log = (self.workdir / "manager.log").open("ab")
        wrapper = os.environ.get("KUBELB_BENCH_MANAGER_WRAPPER", "").split()
        self.process = await asyncio.create_subprocess_exec(
            *wrapper, sys.executable, "-m", "kubelb", "--mode=manager",
            "--kubeconfig", str(self.kubeconfig),
            "--namespace", self.namespace,
            "--envoy-deployer=process",
            "--address-pool", self.address_pool,
            "--listen-address", f"127.0.0.1:{free_port()}",
            "--health-probe-bind-address", f"127.0.0.1:{self.probes_port}",
            "--metrics-addr", f"127.0.0.1:{self.metrics_port}",
            "--state-dir", str(self.workdir / "state"),
            "--log-level", "warning",
            *self.extra_args,
            stdout=log, stderr=log, start_new_session=True, cwd=self.source_tree,
        )  # fmt: skip
        log.close()
        for _ in range(300):  # the probe is another process's HTTP endpoint: poll it
            if await asyncio.to_thread(self._ready):
                return
            await asyncio.sleep(0.2)
        raise TimeoutError(f"the manager did not become ready; see {self.workdir}/manager.log")

    def _ready(self) -> bool:
        try:
            url = f"http://127.0.0.1:{self.probes_port}/readyz"
            with urllib.request.urlopen(url, timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as r:
            return str(r.read().decode())

    def rss_mib(self) -> tuple[float, float]:
        """(current, peak) resident memory of the manager process alone, in MiB."""
        assert self.process is not None
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
        hwm = int(re.search(r"VmHWM:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
        return rss / 1024, hwm / 1024

    def cpu_seconds(self) -> float:
        """User + system CPU time the manager process has used so far."""
        assert self.process is not None
        return procstat.process_cpu_seconds(self.process.pid)

    async def stop(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        # A wrapper (a profiler) writes its output on SIGINT and passes it on to the manager.
        wrapped = bool(os.environ.get("KUBELB_BENCH_MANAGER_WRAPPER"))
        self.process.send_signal(signal.SIGINT if wrapped else signal.SIGTERM)
        try:
            async with asyncio.timeout(60):
                await self.process.wait()
        except TimeoutError:
            os.killpg(self.process.pid, signal.SIGKILL)
            await self.process.wait()


async def manager_identity(cluster: local_cluster.Cluster, path: Path) -> Path:
    """A kubeconfig for what the manager runs as when deployed: ServiceAccount kubelb/kubelb
    with the RBAC of `configs/deploy/manager.yaml` (so a missing permission fails here), and
    its token, as the in-cluster configuration would give it. Bearer tokens are also what a
    real API server sees from the manager: it caches their verification, while a client
    certificate is verified again on every request."""
    manifest = await asyncio.to_thread(DEPLOY_MANIFEST.read_text)
    return await test_cluster.Cluster.of(cluster).deployed_identity(manifest, path)


async def tenant_client(kube: client.Client, namespace: str, path: Path) -> client.Client:
    """A client with the kubeconfig the manager issued for tenant `namespace` (the agent's
    management credentials), once the manager has written it."""
    async with asyncio.timeout(120):
        while True:
            with contextlib.suppress(errors.NotFoundError):
                secret = await kube.get(resources.SECRETS, TENANT_KUBECONFIG_SECRET,
                                        namespace=namespace)  # fmt: skip
                data = (secret.get("data") or {}).get(TENANT_KUBECONFIG_KEY)
                if data:
                    break
            await asyncio.sleep(0.2)
    await asyncio.to_thread(path.write_bytes, base64.b64decode(data))
    return await kube_client(path)


def metric_sum(text: str, name: str) -> float:
    """Sum of every sample of `name` (all label sets) in Prometheus text format."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and (line[len(name)] in " {"):
            total += float(line.rsplit(" ", 1)[1])
    return total


WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "APPLY", "DELETE"})
_LABEL = re.compile(r'(\w+)="([^"]*)"')


READ_VERBS = frozenset({"GET", "LIST", "WATCH"})


async def api_writes(kube: client.Client, verbs: frozenset[str] | None = None) -> dict[str, float]:
    """The API server's write requests (or those of `verbs`) so far (`apiserver_request_total`,
    every client and response code), by "resource" or "resource/subresource". Unlike a time, a
    count of writes does not move with the shared machine's load."""
    response = await kube.open("GET", "/metrics")
    async with response:
        text = await response.text()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(_LABEL.findall(line.split("}", 1)[0]))
        if labels.get("verb") not in (verbs or WRITE_VERBS):
            continue
        key = "/".join(filter(None, (labels.get("resource"), labels.get("subresource"))))
        out[key] = out.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


async def ensure_namespace(
    kube: client.Client, name: str, labels: dict[str, str] | None = None
) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": labels or {}},
    }
    with contextlib.suppress(errors.AlreadyExistsError):
        await kube.create(resources.NAMESPACES, body)


async def bounded(limit: int, coros: list) -> list:  # type: ignore[type-arg]
    """Run coroutines with at most `limit` in flight (an API client, not a load test)."""
    semaphore = asyncio.Semaphore(limit)

    async def one(coro):
        async with semaphore:
            return await coro

    return list(await asyncio.gather(*(one(c) for c in coros)))
