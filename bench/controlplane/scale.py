"""Scale: 1,000 LoadBalancers across 10 tenants against one manager (issue 5).

A real control plane, the manager as a subprocess with the process deployer (so 10 real Envoy
processes serve 100 listeners each), Tenants created through the Tenant controller. The
manager runs as its deployed ServiceAccount with the RBAC of `configs/deploy/manager.yaml`, and
each tenant's LoadBalancers are written as its agent would write them: the agent's mapping, with
the kubeconfig the manager issued for that tenant. Measured: seconds from the last
create until every LoadBalancer is converged (an address in its status and Ready=True, which needs
its tenant's Envoy to serve it; seen through a watch), the manager's RSS (current and peak at
convergence, and at start in a run of its own before any LoadBalancer exists), an agent's idle
RSS (started for one tenant, ready, no Services to serve), the number of xDS
pushes, the API server's writes per LoadBalancer by resource (all clients: the manager,
kube-controller-manager, the benchmark), and the load average before and after (the machine is
shared; the write count does not depend on its load).

Baseline, in the same invocation: the API server's own floor for the same work at the same
concurrency — create 1,000 LoadBalancers and write each one's status once, with no controller.

Each run starts its own control plane and manager. With `--runs N` (default 3) the result is
the run with the median convergence time, and every run's headline numbers are kept beside it.

`--baseline-tree DIR` compares with the kubelb of another source tree (e.g. `git worktree add
DIR main`): each run is then a pair, the baseline's manager and agent first, this tree's next,
on the same machine at nearly the same time, and the baseline's median run and headline numbers
are kept beside this tree's (`baseline`, `baseline_runs`).

    python -m bench controlplane_scale [--runs 3] [--tenants 10] [--per-tenant 100]
                                       [--baseline-tree DIR]

`KUBELB_BENCH_MANAGER_WRAPPER` prefixes the manager's command line, e.g. with
`py-spy record -o manager.raw -f raw --` to profile it (it is stopped with SIGINT then).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import re
import signal
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench import procstat, results_file
from bench.controlplane import common
from kubelb.agent import lbmapping
from kubelb.kube import client, informer, objects, resources
from kubelb.localcluster import controlplane

NODE_ADDRESS = "127.0.0.21"
POOL = "127.0.0.60"
CONCURRENCY = 16


def lb_body(namespace: str, index: int) -> dict[str, Any]:
    """The LoadBalancer our agent writes for a one-port Service (its own mapping)."""
    service = {
        "metadata": {"name": f"svc-{index:04d}", "namespace": "default", "uid": f"lb-{index:04d}"},
        "spec": {
            "type": "LoadBalancer",
            "ports": [{"name": "p", "port": 20000 + index, "protocol": "TCP",
                       "nodePort": 30000 + index % 2000}],
        },
    }  # fmt: skip
    mapping = lbmapping.desired_load_balancer(service, namespace=namespace)
    assert mapping.lb is not None, mapping.blocker
    return mapping.lb


async def api_floor(kube: client.Client, count: int) -> float:
    """Create `count` LBs and write each status once, in a namespace no manager watches, with
    the manager's credentials (a bearer token, as the agents' and the manager's writes)."""
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


def ready_reason(lb: dict[str, Any]) -> str:
    for c in (lb.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return f"{c.get('status')}/{c.get('reason')}"
    return "none"


async def report_progress(tracker: Convergence, started: float) -> None:
    while True:
        await asyncio.sleep(2)
        counts = collections.Counter(tracker.reasons.values())
        elapsed = time.perf_counter() - started
        print(f"  t={elapsed:5.1f}s seen={len(tracker.reasons)} converged={len(tracker.done)} "
              f"{dict(sorted(counts.items()))}", flush=True)  # fmt: skip


class Convergence:
    """Follows every LoadBalancer through a watch (an informer) and notes when `total` of those
    in tenant namespaces are converged. Polling a list of 2,000 objects four times a second
    loaded the API server the manager shares: a watch costs it one event per write."""

    def __init__(self, kube: client.Client, total: int) -> None:
        self.total = total
        self.done: set[objects.ObjectKey] = set()
        self.reasons: dict[objects.ObjectKey, str] = {}  # the Ready reason of each, for --progress
        self.reached = asyncio.Event()
        self.at = 0.0
        self.informer = informer.Informer(kube, resources.LOAD_BALANCERS)
        self.informer.add_handler(self._changed)

    def _changed(self, change: informer.Change) -> None:
        key = objects.key_of(change.obj)
        if not key.namespace.startswith("tenant-"):
            return
        self.reasons.pop(key, None)
        if change.new is not None:
            self.reasons[key] = ready_reason(change.new)
        if change.new is not None and converged(change.new):
            self.done.add(key)
        else:
            self.done.discard(key)
        if len(self.done) >= self.total and not self.reached.is_set():
            self.at = time.perf_counter()
            self.reached.set()


async def wait_converged(tracker: Convergence, manager: common.ManagerProcess) -> None:
    """Until every LoadBalancer converged; fails at once if the manager exits meanwhile."""
    assert manager.process is not None
    reached = asyncio.create_task(tracker.reached.wait())
    exited = asyncio.create_task(manager.process.wait())
    try:
        await asyncio.wait([reached, exited], timeout=600, return_when=asyncio.FIRST_COMPLETED)
    finally:
        exited.cancel()
        reached.cancel()
    if not tracker.reached.is_set():
        log = (manager.workdir / "manager.log").read_text(errors="replace").splitlines()
        print("\n".join(["manager.log (last 40 lines):", *log[-40:]]), file=sys.stderr)
        raise RuntimeError(f"not converged ({len(tracker.done)} of {tracker.total}); manager "
                           f"exit code {manager.process.returncode}")  # fmt: skip


def rss_mib(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of process `pid`, in MiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    hwm = int(re.search(r"VmHWM:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    return rss / 1024, hwm / 1024


async def manager_rss_at_start(
    identity: Path, workdir: Path, tree: Path | None = None
) -> tuple[float, float]:
    """(current, peak) RSS of a manager that has just become ready, before any LoadBalancer
    exists: started, read and stopped on its own, so the measured run is undisturbed."""
    await asyncio.to_thread(workdir.mkdir)
    manager = common.ManagerProcess(identity, workdir, address_pool=POOL, source_tree=tree)
    await manager.start()
    try:
        return manager.rss_mib()
    finally:
        await manager.stop()


async def agent_idle_rss(
    tenant_kubeconfig: Path,
    management_kubeconfig: Path,
    tenant: str,
    workdir: Path,
    tree: Path | None = None,
) -> tuple[float, float]:
    """(current, peak) RSS of `kubelb --mode=agent` for `tenant` once ready, with nothing to
    serve: its tenant cluster is the management cluster, which has no kubelb-class Services."""
    probes = common.free_port()
    log = (workdir / "agent.log").open("ab")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kubelb", "--mode=agent",
        f"--cluster-name={tenant}",
        f"--kubeconfig={tenant_kubeconfig}",
        f"--kubelb-kubeconfig={management_kubeconfig}",
        "--node-address-type=InternalIP",
        "--use-loadbalancer-class",
        "--enable-leader-election=false",
        f"--metrics-addr=127.0.0.1:{common.free_port()}",
        f"--health-probe-bind-address=127.0.0.1:{probes}",
        "--log-level=warning",
        stdout=log, stderr=log, start_new_session=True, cwd=tree,
    )  # fmt: skip
    log.close()
    try:
        for _ in range(300):  # another process's HTTP endpoint: poll it
            if process.returncode is not None:
                raise RuntimeError(f"the agent exited; see {workdir}/agent.log")
            if await asyncio.to_thread(_ready, probes):
                return rss_mib(process.pid)
            await asyncio.sleep(0.2)
        raise TimeoutError(f"the agent did not become ready; see {workdir}/agent.log")
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(60):
                    await process.wait()
            except TimeoutError:
                os.killpg(process.pid, signal.SIGKILL)
                await process.wait()


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


async def create_tenants(
    kube: client.Client, count: int, workdir: Path
) -> dict[str, client.Client]:
    """Tenants `bench<i>`, each with its Addresses written as its agent would: with the
    kubeconfig the manager issued for it. Returns each tenant namespace's client."""
    for i in range(count):
        body = {"apiVersion": "kubelb.k8c.io/v1alpha1", "kind": "Tenant",
                "metadata": {"name": f"bench{i}"}, "spec": {}}  # fmt: skip
        await kube.create(resources.TENANTS, body)
    namespaces = [f"tenant-bench{i}" for i in range(count)]
    agents = {ns: await common.tenant_client(kube, ns, workdir / f"{ns}.kubeconfig")
              for ns in namespaces}  # fmt: skip
    for ns, agent in agents.items():
        addresses = {"apiVersion": "kubelb.k8c.io/v1alpha1", "kind": "Addresses",
                     "metadata": {"name": "default", "namespace": ns},
                     "spec": {"addresses": [{"ip": NODE_ADDRESS}]}}  # fmt: skip
        await agent.create(resources.ADDRESSES, addresses)
    return agents


async def run(
    tenants: int,
    per_tenant: int,
    progress: bool = False,
    manager_args: tuple[str, ...] = (),
    tree: Path | None = None,
) -> dict[str, Any]:
    """One run; `tree`: the kubelb source tree the manager and agent run from (default: ours)."""
    total = tenants * per_tenant
    with tempfile.TemporaryDirectory(prefix="kubelb-bench-scale-") as tmp:
        spec = controlplane.DEFAULT_CLUSTERS[:1]
        async with controlplane.ControlPlane(clusters=spec) as cp:
            management = cp.clusters["management"]
            kube = await common.kube_client(management.kubeconfig)
            agents: dict[str, client.Client] = {}
            try:
                identity = await common.manager_identity(
                    management, Path(tmp) / "manager.kubeconfig"
                )
                start_rss, start_peak = await manager_rss_at_start(
                    identity, Path(tmp) / "start", tree
                )
                print(f"manager at start: RSS {start_rss:.1f} MiB (peak {start_peak:.1f})")
                as_manager = await common.kube_client(identity)
                try:
                    floor = await api_floor(as_manager, total)
                finally:
                    await as_manager.close()
                print(
                    f"baseline: API server floor for {total} creates + status writes: {floor:.1f} s"
                )
                manager = common.ManagerProcess(
                    identity, Path(tmp), address_pool=POOL, extra_args=manager_args,
                    source_tree=tree,
                )  # fmt: skip
                await manager.start()
                tracker = Convergence(kube, total)
                watching = asyncio.create_task(tracker.informer.run(), name="convergence")
                try:
                    await tracker.informer.wait_synced()
                    agents = await create_tenants(kube, tenants, Path(tmp))
                    agent_rss, agent_peak = await agent_idle_rss(
                        management.kubeconfig, Path(tmp) / "tenant-bench0.kubeconfig", "bench0",
                        Path(tmp), tree,
                    )  # fmt: skip
                    print(f"agent idle: RSS {agent_rss:.1f} MiB (peak {agent_peak:.1f})")
                    writes_before = await common.api_writes(kube)
                    reads_before = await common.api_writes(kube, common.READ_VERBS)
                    load_before = os.getloadavg()
                    cpu_before = manager.cpu_seconds()
                    plane_before = sum(map(procstat.process_cpu_seconds, cp.pids))
                    bench_before = time.process_time()
                    machine_before = sum(procstat.core_busy_seconds().values())
                    started = time.perf_counter()
                    if progress:
                        reporter = asyncio.create_task(report_progress(tracker, started))
                        watching.add_done_callback(lambda _: reporter.cancel())
                    await common.bounded(
                        CONCURRENCY,
                        [
                            agent.create(resources.LOAD_BALANCERS, lb_body(ns, t * per_tenant + i))
                            for t, (ns, agent) in enumerate(agents.items())
                            for i in range(per_tenant)
                        ],
                    )
                    last_create = time.perf_counter()
                    await wait_converged(tracker, manager)
                    done_at = tracker.at
                    load_after = os.getloadavg()
                    writes_after = await common.api_writes(kube)
                    reads_after = await common.api_writes(kube, common.READ_VERBS)
                    cpu = manager.cpu_seconds() - cpu_before
                    plane_cpu = sum(map(procstat.process_cpu_seconds, cp.pids)) - plane_before
                    bench_cpu = time.process_time() - bench_before
                    cores = procstat.core_busy_seconds()
                    machine_cpu = sum(cores.values()) - machine_before
                    text = await asyncio.to_thread(manager.metrics)
                    rss, peak = manager.rss_mib()
                finally:
                    watching.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await watching
                    await manager.stop()
            finally:
                for agent in agents.values():
                    await agent.close()
                await kube.close()
    writes = {k: n - writes_before.get(k, 0.0) for k, n in writes_after.items()}
    writes = {k: n for k, n in sorted(writes.items(), key=lambda kv: -kv[1]) if n}
    reads = {k: n - reads_before.get(k, 0.0) for k, n in reads_after.items()}
    reads = {k: n for k, n in sorted(reads.items(), key=lambda kv: -kv[1]) if n}
    pushes = common.metric_sum(text, "kubelb_envoy_control_plane_snapshot_updates_total")
    restarts = common.metric_sum(text, "kubelb_envoy_control_plane_envoy_proxy_restarts_total")
    responses = common.metric_sum(text, "kubelb_envoy_control_plane_grpc_responses_total")
    lb_reconciles = common.metric_sum(text, "kubelb_manager_loadbalancer_reconcile_total")
    snapshot_reconciles = common.metric_sum(text, "kubelb_manager_envoycp_reconcile_total")
    return {
        "loadbalancers": total,
        "tenants": tenants,
        "create_seconds": last_create - started,
        "converged_after_last_create_seconds": done_at - last_create,
        "api_floor_seconds": floor,
        "ratio_to_api_floor": (done_at - started) / floor,
        "manager_rss_mib": rss,
        "manager_peak_rss_mib": peak,
        "manager_rss_at_start_mib": start_rss,  # ready, before any LoadBalancer
        "manager_peak_rss_at_start_mib": start_peak,
        "agent_idle_rss_mib": agent_rss,  # ready, nothing to serve
        "agent_idle_peak_rss_mib": agent_peak,
        "manager_cpu_seconds": cpu,  # from the first create until converged
        # The same window: etcd, kube-apiserver and kube-controller-manager; this benchmark (it
        # stands in for the agents, and follows every LoadBalancer through a watch); and the
        # share of all the machine's cores that was busy (1.0: saturated).
        "control_plane_cpu_seconds": plane_cpu,
        "benchmark_cpu_seconds": bench_cpu,
        "machine_busy_fraction": machine_cpu / (len(cores) * (done_at - started)),
        "snapshot_pushes": pushes,
        # Tenant Envoys restarted after an exit (each waits a growing backoff): a slow run
        # with restarts points at the data plane, not at the controllers.
        "envoy_restarts": restarts,
        # Every client's writes from the first create until converged (the benchmark's own
        # LoadBalancer creates and its API server's IPAddress per Service included).
        "api_writes_per_loadbalancer": sum(writes.values()) / total,
        "api_writes_by_resource": writes,
        "api_reads_by_resource": reads,  # GET, LIST and WATCH requests
        "xds_responses": responses,
        # Since the manager started (tenant set-up included).
        "loadbalancer_reconciles": lb_reconciles,
        "snapshot_reconciles": snapshot_reconciles,
        # 1/5/15-minute load averages (`uptime`) on the 2-core machine, shared with others.
        "load_average_at_start": list(load_before),
        "load_average_at_convergence": list(load_after),
    }


HEADLINE = ("converged_after_last_create_seconds", "create_seconds", "api_floor_seconds",
            "manager_cpu_seconds", "manager_rss_mib", "manager_peak_rss_mib",
            "manager_rss_at_start_mib", "agent_idle_rss_mib", "snapshot_pushes",
            "envoy_restarts")  # fmt: skip


def summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median convergence time, every run's headline numbers (`runs`), and
    the median of each headline number across runs (`medians`)."""
    key = "converged_after_last_create_seconds"
    ranked = sorted(results, key=lambda r: float(r[key]))
    result = dict(ranked[(len(ranked) - 1) // 2])
    result["runs"] = [{k: r[k] for k in HEADLINE} for r in results]
    result["medians"] = {k: statistics.median(float(r[k]) for r in results) for k in HEADLINE}
    return result


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench controlplane_scale")
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--per-tenant", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3, help="report the median run (default 3)")
    parser.add_argument("--progress", action="store_true", help="print Ready reasons every 2 s")
    parser.add_argument(
        "--manager-args", default="", help="extra manager flags, e.g. '--workers 32'"
    )
    parser.add_argument(
        "--baseline-tree", type=Path, default=None,
        help="also run the manager and agent of this kubelb source tree, alternating with ours",
    )  # fmt: skip
    results_file.add_arguments(parser, "one run of one tenant with 3 LoadBalancers")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.tenants, args.per_tenant = 1, 1, 3
    baseline_tree = args.baseline_tree.resolve() if args.baseline_tree else None
    if baseline_tree is not None and not (baseline_tree / "kubelb" / "__init__.py").is_file():
        parser.error(f"--baseline-tree {baseline_tree}: no kubelb package there")
    common.exit_cleanly_on_sigterm()
    trees: list[tuple[str, Path | None]] = [("this tree", None)]
    if baseline_tree is not None:
        trees.insert(0, ("baseline", baseline_tree))
    results: dict[str, list[dict[str, Any]]] = {label: [] for label, _ in trees}
    for i in range(args.runs):
        for label, tree in trees:
            print(f"run {i + 1} of {args.runs} ({label})", flush=True)
            one = asyncio.run(run(args.tenants, args.per_tenant, args.progress,
                                  tuple(args.manager_args.split()), tree))  # fmt: skip
            print(f"  converged {one['converged_after_last_create_seconds']:.2f} s after the "
                  f"last create; manager CPU {one['manager_cpu_seconds']:.1f} s, peak RSS "
                  f"{one['manager_peak_rss_mib']:.1f} MiB", flush=True)  # fmt: skip
            results[label].append(one)
    result = summary(results["this tree"])
    if baseline_tree is not None:
        base = summary(results["baseline"])
        result["baseline"] = {"tree": str(baseline_tree), "medians": base["medians"],
                              "runs": base["runs"]}  # fmt: skip
    for key, value in result.items():
        print(f"  {key}: {value:.2f}" if isinstance(value, float) else f"  {key}: {value}")
    # Only the default size with default flags is the recorded result; the rest are experiments
    # (written only where --out says).
    recorded = (args.tenants, args.per_tenant) == (10, 100) and not args.manager_args
    if args.out is not None or recorded:
        results_file.write("controlplane_scale", result, results_file.folder(args), echo=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
