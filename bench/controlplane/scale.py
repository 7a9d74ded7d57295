"""Scale: 1,000 LoadBalancers across 10 tenants against one manager (issue 5).

A real control plane, the manager as a subprocess with the process deployer (so 10 real Envoy
processes serve 100 listeners each), Tenants created through the Tenant controller. The
LoadBalancers are written as the tenants' agents would write them. Measured: seconds from the last
create until every LoadBalancer is converged (an address in its status and Ready=True, which needs
its tenant's Envoy to serve it), the manager's RSS, and the number of xDS pushes.

Baseline, in the same invocation: the API server's own floor for the same work at the same
concurrency — create 1,000 LoadBalancers and write each one's status once, with no controller.

    python -m bench controlplane_scale [--tenants 10] [--per-tenant 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.controlplane import common
from kubelb.kube import client, resources
from kubelb.testing import controlplane

NODE_ADDRESS = "127.0.0.21"
POOL = "127.0.0.60"
CONCURRENCY = 16


def lb_body(namespace: str, index: int) -> dict[str, Any]:
    return {
        "apiVersion": "kubelb.k8c.io/v1alpha1",
        "kind": "LoadBalancer",
        "metadata": {"name": f"lb-{index:04d}", "namespace": namespace},
        "spec": {
            "type": "LoadBalancer",
            "ports": [{"name": "p", "port": 20000 + index, "protocol": "TCP"}],
            "endpoints": [
                {
                    "name": "default",
                    "addressesReference": {"name": "default"},
                    "ports": [{"name": "p", "port": 30000 + index % 2000, "protocol": "TCP"}],
                }
            ],
        },
    }


async def api_floor(kube: client.Client, count: int) -> float:
    """Create `count` LBs and write each status once, in a namespace no manager watches."""
    namespace = "bench-floor"
    await common.ensure_namespace(kube, namespace)
    started = time.perf_counter()
    await common.bounded(
        CONCURRENCY,
        [kube.create(resources.LOAD_BALANCERS, lb_body(namespace, i)) for i in range(count)],
    )
    status = {"status": {"loadBalancer": {"ingress": [{"ip": POOL}]}}}
    await common.bounded(
        CONCURRENCY,
        [
            kube.patch_status(resources.LOAD_BALANCERS, f"lb-{i:04d}", status, namespace=namespace)
            for i in range(count)
        ],
    )
    return time.perf_counter() - started


def converged(lb: dict[str, Any]) -> bool:
    status = lb.get("status") or {}
    ingress = (status.get("loadBalancer") or {}).get("ingress") or []
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    return bool(ingress) and ready


async def wait_converged(kube: client.Client, total: int, deadline: float) -> tuple[float, int]:
    done = 0
    async with asyncio.timeout(deadline):
        while True:
            listed = await kube.list(resources.LOAD_BALANCERS)
            done = sum(
                1
                for lb in listed.items
                if lb["metadata"]["namespace"].startswith("tenant-") and converged(lb)
            )
            if done >= total:
                return time.perf_counter(), done
            await asyncio.sleep(0.25)


async def create_tenants(kube: client.Client, count: int) -> list[str]:
    for i in range(count):
        body = {"apiVersion": "kubelb.k8c.io/v1alpha1", "kind": "Tenant",
                "metadata": {"name": f"bench{i}"}, "spec": {}}  # fmt: skip
        await kube.create(resources.TENANTS, body)
    namespaces = [f"tenant-bench{i}" for i in range(count)]
    async with asyncio.timeout(120):
        while True:
            present = {n["metadata"]["name"] for n in (await kube.list(resources.NAMESPACES)).items}
            if all(n in present for n in namespaces):
                break
            await asyncio.sleep(0.2)
    for ns in namespaces:
        addresses = {"apiVersion": "kubelb.k8c.io/v1alpha1", "kind": "Addresses",
                     "metadata": {"name": "default", "namespace": ns},
                     "spec": {"addresses": [{"ip": NODE_ADDRESS}]}}  # fmt: skip
        await kube.create(resources.ADDRESSES, addresses)
    return namespaces


async def run(tenants: int, per_tenant: int) -> dict[str, Any]:
    total = tenants * per_tenant
    with tempfile.TemporaryDirectory(prefix="kubelb-bench-scale-") as tmp:
        spec = controlplane.DEFAULT_CLUSTERS[:1]
        async with controlplane.ControlPlane(clusters=spec) as cp:
            kubeconfig = cp.clusters["management"].kubeconfig
            kube = await common.kube_client(kubeconfig)
            try:
                await common.ensure_namespace(kube, "kubelb")
                floor = await api_floor(kube, total)
                print(
                    f"baseline: API server floor for {total} creates + status writes: {floor:.1f} s"
                )
                manager = common.ManagerProcess(kubeconfig, Path(tmp), address_pool=POOL)
                await manager.start()
                try:
                    namespaces = await create_tenants(kube, tenants)
                    started = time.perf_counter()
                    await common.bounded(
                        CONCURRENCY,
                        [
                            kube.create(resources.LOAD_BALANCERS, lb_body(ns, t * per_tenant + i))
                            for t, ns in enumerate(namespaces)
                            for i in range(per_tenant)
                        ],
                    )
                    last_create = time.perf_counter()
                    done_at, _ = await wait_converged(kube, total, deadline=600)
                    text = await asyncio.to_thread(manager.metrics)
                    rss, peak = manager.rss_mib()
                finally:
                    await manager.stop()
            finally:
                await kube.close()
    pushes = common.metric_sum(text, "kubelb_envoy_control_plane_snapshot_updates_total")
    responses = common.metric_sum(text, "kubelb_envoy_control_plane_grpc_responses_total")
    return {
        "loadbalancers": total,
        "tenants": tenants,
        "create_seconds": last_create - started,
        "converged_after_last_create_seconds": done_at - last_create,
        "api_floor_seconds": floor,
        "ratio_to_api_floor": (done_at - started) / floor,
        "manager_rss_mib": rss,
        "manager_peak_rss_mib": peak,
        "snapshot_pushes": pushes,
        "xds_responses": responses,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench controlplane_scale")
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--per-tenant", type=int, default=100)
    args = parser.parse_args(argv)
    result = asyncio.run(run(args.tenants, args.per_tenant))
    for key, value in result.items():
        print(f"  {key}: {value:.2f}" if isinstance(value, float) else f"  {key}: {value}")
    common.RESULTS.mkdir(exist_ok=True)
    (common.RESULTS / "controlplane_scale.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
