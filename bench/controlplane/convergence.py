"""Convergence: tenant Service created -> (a) address in its status, (b) first byte through Envoy.

The whole chain, as an operator runs it: a real management and tenant API server, the manager
(process deployer, real Envoy) and the agent as subprocesses, the agent using the kubeconfig the
manager issued for its Tenant. A tenant node is a Node object at 127.0.0.21 and its NodePort is a
real backend listening there. Services are created one at a time; median and p99 over --services.

Baseline, in the same invocation: the API-server floor for the same chain without kubelb — the
four writes that must happen in sequence (Service create in the tenant cluster, LoadBalancer
create and status write in the management cluster, Service status write in the tenant cluster).

    python -m bench controlplane_convergence [--services 50]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import results_file
from bench.controlplane import common
from kubelb.kube import client, errors, resources
from kubelb.localcluster import controlplane
from tests.support import cluster as test_cluster

NODE_ADDRESS = "127.0.0.21"
POOL = "127.0.0.70"
TENANT = "conv"
NAMESPACE = "shop"


def service_body(index: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": f"svc-{index:03d}", "namespace": NAMESPACE},
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app": "bench"},
            "ports": [{"name": "http", "port": 21000 + index, "protocol": "TCP"}],
        },
    }


async def first_byte(host: str, port: int) -> None:
    while True:
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            await asyncio.sleep(0.01)
            continue
        try:
            if await reader.read(1):
                return
        except OSError:
            pass
        finally:
            writer.close()
        await asyncio.sleep(0.01)


async def greeter(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"hello\n")
    await writer.drain()
    writer.close()


async def measure_one(tenant: client.Client, index: int) -> tuple[float, float]:
    started = time.perf_counter()
    created = await tenant.create(resources.SERVICES, service_body(index))
    node_port = created["spec"]["ports"][0]["nodePort"]
    backend = await asyncio.start_server(greeter, NODE_ADDRESS, node_port)
    try:
        ingress: list[dict[str, Any]] = []
        while not ingress:
            await asyncio.sleep(0.01)
            name = created["metadata"]["name"]
            svc = await tenant.get(resources.SERVICES, name, namespace=NAMESPACE)
            ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        address_at = time.perf_counter()
        await first_byte(ingress[0]["ip"], 21000 + index)
        return address_at - started, time.perf_counter() - started
    finally:
        backend.close()
        await backend.wait_closed()


async def floor_one(tenant: client.Client, mgmt: client.Client, index: int) -> float:
    started = time.perf_counter()
    body = service_body(index)
    body["metadata"]["namespace"] = "floor"
    svc = await tenant.create(resources.SERVICES, body)
    lb = {"apiVersion": "kubelb.k8c.io/v1alpha1", "kind": "LoadBalancer",
          "metadata": {"name": svc["metadata"]["uid"], "namespace": "floor"},
          "spec": {"ports": [{"name": "http", "port": 21000 + index}],
                   "endpoints": [{"addresses": [{"ip": NODE_ADDRESS}],
                                  "ports": [{"name": "http", "port": 30000}]}]}}  # fmt: skip
    await mgmt.create(resources.LOAD_BALANCERS, lb)
    status = {"status": {"loadBalancer": {"ingress": [{"ip": POOL}]}}}
    await mgmt.patch_status(
        resources.LOAD_BALANCERS, svc["metadata"]["uid"], status, namespace="floor"
    )
    await tenant.patch_status(
        resources.SERVICES, svc["metadata"]["name"], status, namespace="floor"
    )
    return time.perf_counter() - started


async def tenant_kubeconfig(mgmt: client.Client, path: Path) -> None:
    body = {"apiVersion": "kubelb.k8c.io/v1alpha1", "kind": "Tenant", "metadata": {"name": TENANT}}
    await mgmt.create(resources.TENANTS, body)
    async with asyncio.timeout(120):
        while True:
            try:
                secret = await mgmt.get(
                    resources.SECRETS, "kubelb-ccm-kubeconfig", namespace=f"tenant-{TENANT}"
                )
                data = base64.b64decode(secret["data"]["kubelb"])
                await asyncio.to_thread(path.write_bytes, data)
                return
            except errors.NotFoundError:
                await asyncio.sleep(0.2)


async def start_agent(
    tenant_kube: Path, kubelb_kube: Path, workdir: Path
) -> asyncio.subprocess.Process:
    log = (workdir / "agent.log").open("ab")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kubelb", "--mode=agent",
        "--kubeconfig", str(tenant_kube),
        "--kubelb-kubeconfig", str(kubelb_kube),
        "--cluster-name", TENANT,
        "--node-address-type", "InternalIP",
        "--leader-election-namespace", "default",
        "--metrics-addr", f"127.0.0.1:{common.free_port()}",
        "--health-probe-bind-address", f"127.0.0.1:{common.free_port()}",
        "--log-level", "warning",
        stdout=log, stderr=log,
    )  # fmt: skip
    log.close()
    return process


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"p50_s": statistics.median(ordered), "p99_s": p99, "max_s": ordered[-1]}


async def run(count: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="kubelb-bench-conv-") as tmp:
        workdir = Path(tmp)
        async with controlplane.ControlPlane() as cp:
            mgmt_cluster = cp.clusters["management"]
            tenant_cluster = test_cluster.Cluster.of(cp.clusters["tenant"])
            mgmt = await common.kube_client(mgmt_cluster.kubeconfig)
            tenant = await common.kube_client(tenant_cluster.kubeconfig)
            try:
                for kube, ns in ((tenant, "floor"), (mgmt, "floor"), (tenant, NAMESPACE)):
                    await common.ensure_namespace(kube, ns)
                await common.ensure_namespace(mgmt, "kubelb")
                await tenant_cluster.create_node("node-1", addresses=[("InternalIP", NODE_ADDRESS)])
                manager = common.ManagerProcess(mgmt_cluster.kubeconfig, workdir, address_pool=POOL)
                await manager.start()
                agent = None
                try:
                    await tenant_kubeconfig(mgmt, workdir / "kubelb.kubeconfig")
                    agent = await start_agent(
                        tenant_cluster.kubeconfig, workdir / "kubelb.kubeconfig", workdir
                    )
                    # Warm-up: the first Service also waits for the tenant's Envoy to start.
                    warmup = await measure_one(tenant, count)
                    samples = [await measure_one(tenant, i) for i in range(count)]
                finally:
                    if agent is not None:
                        agent.terminate()
                        await agent.wait()
                    await manager.stop()
                # After kubelb has stopped, so that no agent picks these Services up.
                floor = [await floor_one(tenant, mgmt, i) for i in range(count)]
            finally:
                await mgmt.close()
                await tenant.close()
    return {
        "services": count,
        "warmup_first_service_first_byte_s": warmup[1],
        "address_in_status": summary([s[0] for s in samples]),
        "first_byte": summary([s[1] for s in samples]),
        "api_floor": summary(floor),
        "ratio_address_p50_to_floor_p50": statistics.median(s[0] for s in samples)
        / statistics.median(floor),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench controlplane_convergence")
    parser.add_argument("--services", type=int, default=50)
    results_file.add_arguments(parser, "two Services")
    args = parser.parse_args(argv)
    if args.quick:
        args.services = 2
    common.exit_cleanly_on_sigterm()
    result = asyncio.run(run(args.services))
    results_file.write("controlplane_convergence", result, results_file.folder(args))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
