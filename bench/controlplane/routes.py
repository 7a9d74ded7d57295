"""Layer 7 at scale: HTTPRoutes through the manager and each tenant's Envoy (issue 11).

A real control plane, the manager as a subprocess with the process deployer (real Envoy
processes), Tenants created through the Tenant controller. Each tenant's Routes are written as
its agent writes them (a Gateway `kubelb` with one HTTP listener, HTTPRoutes attached to it,
each with its own hostname and a copy of its backend Service), with the kubeconfig the manager
issued for that tenant. One HTTP server on the node address stands in for every NodePort.

Measured:
- latency: one route at a time in one tenant, the seconds from its create until the first 200
  through Envoy with its hostname (p50, p99 over `--latency-routes`, default 50);
- scale: `--tenants` x `--per-tenant` (default 10 x 100) HTTPRoutes created at once: seconds
  from the last create until every one answers 200 through Envoy, then until the manager has
  written everything it will (every Route has its finalizer and says ResourceAppliedSuccessfully
  True at its generation, every Gateway counts all its routes), the manager's RSS (current and
  peak), and the API server's writes per route once settled (all clients, creates included:
  counted when every route answers, most finalizers and statuses are still to come).
Baseline, in the same invocation: the API server's own floor for the same work at the same
concurrency (create as many Routes and write each one's status once, with no controller).

    python -m bench routes [--tenants 10] [--per-tenant 100] [--latency-routes 50]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import results_file
from bench.controlplane import common, scale
from kubelb.kube import client, resources
from kubelb.localcluster import controlplane

NODE_ADDRESS = scale.NODE_ADDRESS  # the Addresses every bench tenant writes
POOL = "127.0.0.64/27"
NODE_PORT = 30080
CONCURRENCY = 16
GATEWAY_API = "gateway.networking.k8s.io/v1"


def _route(namespace: str, uid: str, resource: dict[str, Any], kind: str,
           services: list[dict[str, Any]]) -> dict[str, Any]:  # fmt: skip
    meta = resource["metadata"]
    return {
        "apiVersion": "kubelb.k8c.io/v1alpha1",
        "kind": "Route",
        "metadata": {
            "name": uid,
            "namespace": namespace,
            "labels": {
                "kubelb.k8c.io/origin-name": meta["name"],
                "kubelb.k8c.io/origin-ns": meta["namespace"],
                "kubelb.k8c.io/origin-resource-kind": f"{kind}.gateway.networking.k8s.io",
                "kubelb.k8c.io/managed-by": "kubelb",
            },
        },
        "spec": {
            "endpoints": [{"name": "default", "addressesReference": {"name": "default"}}],
            "source": {"kubernetes": {"resource": resource, "services": services}},
        },
    }


def gateway_route(namespace: str) -> dict[str, Any]:
    gateway = {
        "apiVersion": GATEWAY_API,
        "kind": "Gateway",
        "metadata": {"name": "kubelb", "namespace": "default", "uid": "gw-kubelb"},
        "spec": {
            "gatewayClassName": "kubelb",
            "listeners": [{"name": "http", "port": 80, "protocol": "HTTP",
                           "allowedRoutes": {"namespaces": {"from": "All"}}}],
        },
    }  # fmt: skip
    return _route(namespace, "gw-kubelb", gateway, "Gateway", [])


def backend_service() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"type": "NodePort",
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP",
                            "targetPort": 8080, "nodePort": NODE_PORT}]},
    }  # fmt: skip


def hostname(index: int) -> str:
    return f"r{index:04d}.bench.test"


def http_route(namespace: str, index: int) -> dict[str, Any]:
    route = {
        "apiVersion": GATEWAY_API,
        "kind": "HTTPRoute",
        "metadata": {"name": f"route-{index:04d}", "namespace": "default",
                     "uid": f"hr-{index:04d}"},
        "spec": {
            "parentRefs": [{"name": "kubelb"}],
            "hostnames": [hostname(index)],
            "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                       "backendRefs": [{"name": "web", "port": 80}]}],
        },
    }  # fmt: skip
    return _route(namespace, f"hr-{index:04d}", route, "HTTPRoute", [backend_service()])


async def backend_server() -> asyncio.Server:
    """Answers every request with 200 on the node address and NodePort, keep-alive."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if not head:
                    break
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, NODE_ADDRESS, NODE_PORT)


async def status_of(host: str, address: str, port: int = 80) -> int:
    """One GET with `host`; 0 when the connection fails."""
    try:
        async with asyncio.timeout(5):
            reader, writer = await asyncio.open_connection(address, port)
            try:
                writer.write(
                    f"GET / HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n".encode()
                )
                line = await reader.readline()
            finally:
                writer.close()
    except (OSError, TimeoutError):
        return 0
    parts = line.split()
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


async def until_200(host: str, address: str, *, interval: float = 0.01) -> None:
    for _ in range(int(120 / interval)):
        if await status_of(host, address) == 200:
            return
        await asyncio.sleep(interval)
    raise TimeoutError(f"{host} never answered 200 through {address}:80")


async def gateway_address(agent: client.Client, namespace: str) -> str:
    """The tenant's L7 address, from the Gateway Route's status (the manager's word)."""
    for _ in range(1200):
        route = await agent.get(resources.ROUTES, "gw-kubelb", namespace=namespace)
        status: dict[str, Any] = ((route.get("status") or {}).get("resources") or {}).get(
            "route"
        ) or {}
        addresses = (status.get("status") or {}).get("addresses") or []
        if addresses:
            return str(addresses[0]["value"])
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{namespace}: the Gateway Route never reported an address")


def _applied_now(route: dict[str, Any]) -> bool:
    """The Route has the manager's finalizer and says it is served, at its generation."""
    state = ((route.get("status") or {}).get("resources") or {}).get("route") or {}
    generation = route["metadata"].get("generation")
    return "kubelb.k8c.io/cleanup" in (route["metadata"].get("finalizers") or ()) and any(
        c.get("type") == "ResourceAppliedSuccessfully"
        and c.get("status") == "True"
        and c.get("observedGeneration") == generation
        for c in state.get("conditions") or ()
    )


def _settled_in(routes: list[dict[str, Any]]) -> bool:
    """Every Route applied, and the Gateway's listener counts every HTTPRoute."""
    gateway = next((r for r in routes if r["metadata"]["name"] == "gw-kubelb"), None)
    if gateway is None or not all(_applied_now(r) for r in routes):
        return False
    served = ((gateway.get("status") or {}).get("resources") or {}).get("route") or {}
    listeners = (served.get("status") or {}).get("listeners") or []
    return [li.get("attachedRoutes") for li in listeners] == [len(routes) - 1]


async def until_settled(kube: client.Client, namespaces: list[str]) -> None:
    """Until the manager has written what it will for every Route of `namespaces`."""
    pending = list(namespaces)
    for _ in range(1200):
        listed = [(ns, await kube.list(resources.ROUTES, namespace=ns)) for ns in pending]
        pending = [ns for ns, found in listed if not _settled_in(list(found.items))]
        if not pending:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"Routes of {pending} never settled")


async def api_floor(kube: client.Client, count: int) -> float:
    """Create `count` Routes and write each status once, in a namespace no manager watches."""
    namespace = "bench-floor"
    await common.ensure_namespace(kube, namespace)
    started = time.perf_counter()
    await common.bounded(
        CONCURRENCY, [kube.create(resources.ROUTES, http_route(namespace, i)) for i in range(count)]
    )
    status: dict[str, Any] = {"status": {"resources": {"route": {"status": {"parents": []}}}}}
    await common.bounded(
        CONCURRENCY,
        [kube.patch_status(resources.ROUTES, f"hr-{i:04d}", status, namespace=namespace)
         for i in range(count)],
    )  # fmt: skip
    return time.perf_counter() - started


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def run(tenants: int, per_tenant: int, latency_routes: int) -> dict[str, Any]:
    total = tenants * per_tenant
    with tempfile.TemporaryDirectory(prefix="kubelb-bench-routes-") as tmp:
        async with controlplane.ControlPlane(clusters=controlplane.DEFAULT_CLUSTERS[:1]) as cp:
            management = cp.clusters["management"]
            kube = await common.kube_client(management.kubeconfig)
            agents: dict[str, client.Client] = {}
            server = await backend_server()
            try:
                identity = await common.manager_identity(
                    management, Path(tmp) / "manager.kubeconfig"
                )
                as_manager = await common.kube_client(identity)
                try:
                    floor = await api_floor(as_manager, total)
                finally:
                    await as_manager.close()
                print(f"baseline: API server floor for {total} Route creates + status writes: "
                      f"{floor:.1f} s", flush=True)  # fmt: skip
                manager = common.ManagerProcess(identity, Path(tmp), address_pool=POOL)
                await manager.start()
                try:
                    agents = await scale.create_tenants(kube, tenants, Path(tmp))
                    addresses = {}
                    for ns, agent in agents.items():
                        await agent.create(resources.ROUTES, gateway_route(ns))
                        addresses[ns] = await gateway_address(agent, ns)
                    first_ns, first = next(iter(agents.items()))
                    latencies = []
                    for i in range(latency_routes):
                        index = total + i
                        started = time.perf_counter()
                        await first.create(resources.ROUTES, http_route(first_ns, index))
                        await until_200(hostname(index), addresses[first_ns])
                        latencies.append(time.perf_counter() - started)
                    print(f"latency: p50 {statistics.median(latencies):.3f} s, "
                          f"p99 {percentile(latencies, 0.99):.3f} s", flush=True)  # fmt: skip
                    writes_before = await common.api_writes(kube)
                    started = time.perf_counter()
                    await common.bounded(
                        CONCURRENCY,
                        [agent.create(resources.ROUTES, http_route(ns, t * per_tenant + i))
                         for t, (ns, agent) in enumerate(agents.items())
                         for i in range(per_tenant)],
                    )  # fmt: skip
                    last_create = time.perf_counter()
                    await common.bounded(
                        CONCURRENCY,
                        [until_200(hostname(t * per_tenant + i), addresses[ns], interval=0.05)
                         for t, ns in enumerate(agents)
                         for i in range(per_tenant)],
                    )  # fmt: skip
                    served_at = time.perf_counter()
                    writes_served = await common.api_writes(kube)
                    await until_settled(kube, list(agents))
                    settled_at = time.perf_counter()
                    writes_after = await common.api_writes(kube)
                    rss, peak = manager.rss_mib()
                finally:
                    await manager.stop()
            finally:
                server.close()
                for agent in agents.values():
                    await agent.close()
                await kube.close()
    writes = {k: n - writes_before.get(k, 0.0) for k, n in writes_after.items()}
    writes = {k: n for k, n in sorted(writes.items(), key=lambda kv: -kv[1]) if n}
    served_writes = sum(writes_served.values()) - sum(writes_before.values())
    return {
        "routes": total,
        "tenants": tenants,
        "first_200_p50_seconds": statistics.median(latencies),
        "first_200_p99_seconds": percentile(latencies, 0.99),
        "latency_samples": len(latencies),
        "create_seconds": last_create - started,
        "all_serving_after_last_create_seconds": served_at - last_create,
        "all_settled_after_last_create_seconds": settled_at - last_create,
        "api_floor_seconds": floor,
        "ratio_to_api_floor": (served_at - started) / floor,
        "manager_rss_mib": rss,
        "manager_peak_rss_mib": peak,
        "api_writes_per_route": sum(writes.values()) / total,
        "api_writes_by_resource": writes,
        "api_writes_per_route_when_all_serving": served_writes / total,
        "load_average": list(os.getloadavg()),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench routes")
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--per-tenant", type=int, default=100)
    parser.add_argument("--latency-routes", type=int, default=50)
    results_file.add_arguments(parser, "one tenant, 3 routes, 3 latency samples")
    args = parser.parse_args(argv)
    if args.quick:
        args.tenants, args.per_tenant, args.latency_routes = 1, 3, 3
    common.exit_cleanly_on_sigterm()
    result = asyncio.run(run(args.tenants, args.per_tenant, args.latency_routes))
    for key, value in result.items():
        print(f"  {key}: {value:.3f}" if isinstance(value, float) else f"  {key}: {value}")
    recorded = (args.tenants, args.per_tenant, args.latency_routes) == (10, 100, 50)
    if args.out is not None or (recorded and not args.quick):
        results_file.write("routes", result, results_file.folder(args), echo=False)
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
