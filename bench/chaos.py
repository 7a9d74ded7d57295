"""`make chaos`: faults and hostile inputs on real parts, with the figures an operator asks about.

Every scenario runs real processes (kubelb, Envoy, kube-apiserver) with traffic only to
127.0.0.0/8, bounded in count and time, and prints one table:

- Envoy kill -9: standalone mode with the Envoy data plane and a steady loop of new connections
  through one LoadBalancer; the supervisor restarts Envoy. Failed requests and the longest outage.
- kubelb kill -9: standalone mode, each data plane; kubelb is killed and started again on the
  same `--state-dir`, and adopts the data plane left serving (Envoy, or the Python data plane's
  own process). Failed requests and the longest outage.
- manager kill -9: manager process mode (process deployer, real Envoy) on the test control
  plane; the manager is killed and started again on the same `--state-dir` and xDS port, and a
  LoadBalancer's endpoint moved after each restart. Failed requests, the longest outage, and the
  restarts that adopted the tenant's Envoy (the same pid).
- API server stop: manager process mode (process deployer, real Envoy) on the test control plane;
  the management kube-apiserver is frozen (SIGSTOP) for N seconds under traffic, then resumed
  (SIGCONT) and a LoadBalancer's endpoint moved at once: failed requests, and seconds until
  traffic reaches the new endpoint.
- Endpoint churn: standalone mode, each data plane; a LoadBalancer's endpoint moved between two
  live backends N times under new-connection load. Failed new connections.
- Route churn: standalone mode, each data plane, Routes from files (Ingresses with inline
  endpoints): a steady request stream through one route while N edits of other Routes land on
  the same listener (hosts and paths added, moved, removed, backends swapped), each edit
  waited for until the data plane serves it. Failed requests of the steady route.
- Hostile inputs: the inputs of tests/integration/standalone/test_bad_files.py and more, each
  written next to a serving LoadBalancer: tried, crashes of kubelb, and times that LoadBalancer
  stopped serving.

The short versions live in tests/ (test_bad_files.py, dataplanes/test_churn.py,
dataplanes/test_route_churn.py,
manager and e2e lifecycle tests, xds/test_supervisor.py).

    python -m bench.chaos [--quick] [--out DIR]     (make chaos)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import results_file
from kubelb.dataplane import control
from kubelb.envoy import supervisor
from kubelb.util import naming
from tests.integration.dataplane import backends as http_backends, scenarios
from tests.integration.standalone import backends, harness

HOST = "127.0.0.1"
BACKEND_A, BACKEND_B = "127.0.0.11", "127.0.0.12"


@dataclass
class Sizes:
    envoy_kills: int = 5
    kubelb_kills: int = 3
    api_stop_seconds: float = 30.0
    endpoint_moves: int = 100
    route_edits: int = 200
    hostile_inputs: int = 1000  # all of them

    @classmethod
    def quick(cls) -> Sizes:
        # Every scenario once: a freeze under traffic, a move each way, every kind of route edit,
        # five kinds of input.
        return cls(envoy_kills=1, kubelb_kills=1, api_stop_seconds=1.0, endpoint_moves=2,
                   route_edits=4, hostile_inputs=5)  # fmt: skip


async def echo_name(host: str, port: int) -> str:
    """The name of the TCP echo backend that answered through `host:port`."""
    answer = await backends.request(host, port)
    return answer.split(b":", 1)[0].decode()


@dataclass
class Traffic:
    """Clients that each open a new connection per request and ask `ask` which backend
    answered (by default the TCP echo's `NAME:ping`); a refused, reset, silent or wrong answer
    is a failure."""

    host: str
    port: int
    clients: int = 2
    ask: Callable[[str, int], Awaitable[str]] = echo_name
    events: list[tuple[float, str]] = field(default_factory=list)  # (time, backend or "")
    _stop: bool = False
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def __aenter__(self) -> Traffic:
        self._tasks = [asyncio.create_task(self._client()) for _ in range(self.clients)]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop = True
        await asyncio.gather(*self._tasks)

    async def _client(self) -> None:
        while not self._stop:
            name = ""
            with contextlib.suppress(
                OSError, TimeoutError, asyncio.IncompleteReadError, ValueError
            ):
                async with asyncio.timeout(3):
                    name = await self.ask(self.host, self.port)
            self.events.append((time.monotonic(), name))
            await asyncio.sleep(0.005)

    @property
    def failed(self) -> int:
        return sum(1 for _, name in self.events if not name)

    async def answered(self, count: int, *, by: str = "", deadline: float = 120.0) -> None:
        """Until `count` more answers (from backend `by`, when given) than now."""
        mark = len(self.events)

        def enough() -> bool:
            return sum(1 for _, n in self.events[mark:] if n and (not by or n == by)) >= count

        await until(enough, deadline)

    def outages(self) -> list[float]:
        """Per run of failures, seconds from the last answer before it to the first after."""
        found: list[float] = []
        last_ok, failing = None, False
        for t, name in self.events:
            if name:
                if failing and last_ok is not None:
                    found.append(round(t - last_ok, 3))
                last_ok, failing = t, False
            else:
                failing = True
        return found

    def longest_outage(self) -> float:
        return max(self.outages(), default=0.0)


def _standalone(root: Path, dataplane: str) -> harness.Standalone:
    (root / "config").mkdir(parents=True, exist_ok=True)
    return harness.Standalone(dataplane=dataplane, config_dir=root / "config",
                              state_dir=root / "state", log_path=root / "kubelb.log")  # fmt: skip


@contextlib.asynccontextmanager
async def serving(dataplane: str) -> AsyncIterator[tuple[harness.Standalone, int, int, Path]]:
    """kubelb standalone with LoadBalancer `a` on a fresh port in front of backend A; yields
    (kubelb, LB port, backend port, root). Backends A and B listen on the same port."""
    with tempfile.TemporaryDirectory(prefix="kubelb-chaos-") as tmp:
        root = Path(tmp)
        kubelb = _standalone(root, dataplane)
        port, backend = harness.free_port(), harness.free_port()
        (kubelb.config_dir / "a.yaml").write_text(
            harness.lb_yaml("a", port, [(BACKEND_A, backend)])
        )
        async with (
            backends.tcp_echo("A", BACKEND_A, backend),
            backends.tcp_echo("B", BACKEND_B, backend),
        ):
            await kubelb.start()
            try:
                await backends.eventually(lambda: backends.request(HOST, port), "LB a serves")
                yield kubelb, port, backend, root
            finally:
                if kubelb.process is not None and kubelb.process.returncode is None:
                    await kubelb.stop()
                _kill_leftover_envoys(root)


def envoy_pids(root: Path) -> list[int]:
    """Envoy processes started for this scenario (their command line names our state folder)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"envoy") and str(root).encode() in b" ".join(argv):
            pids.append(int(entry.name))
    return pids


def _kill_leftover_envoys(root: Path) -> None:
    for state in (root / "state", root):
        if state.exists():
            # Envoys and the Python data plane outlive a killed kubelb by design.
            supervisor.reap(state)
            control.reap(state)
    for pid in envoy_pids(root):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


async def until(check: Callable[[], bool], deadline: float = 120.0) -> None:
    async with asyncio.timeout(deadline):
        while True:
            if check():
                return
            await asyncio.sleep(0.02)


async def envoy_kill(sizes: Sizes) -> dict[str, Any]:
    async with serving("envoy") as (_kubelb, port, _backend, root):
        async with Traffic(HOST, port) as traffic:
            await traffic.answered(20)
            for _ in range(sizes.envoy_kills):
                (victim,) = envoy_pids(root)
                os.kill(victim, signal.SIGKILL)
                await until(lambda: bool(set(envoy_pids(root)) - {victim}))  # noqa: B023
                await traffic.answered(20)
        return {"kills": sizes.envoy_kills, "requests": len(traffic.events),
                "failed": traffic.failed, "longest_outage_s": traffic.longest_outage(),
                "outages_s": traffic.outages()}  # fmt: skip


async def kubelb_kill(sizes: Sizes, dataplane: str) -> dict[str, Any]:
    adopted = 0  # restarts that took over the running data plane (the same pid)
    async with serving(dataplane) as (kubelb, port, _backend, _root):
        async with Traffic(HOST, port) as traffic:
            await traffic.answered(20)
            for _ in range(sizes.kubelb_kills):
                before = (await kubelb.status())["dataplane"].get("pid")
                assert kubelb.process is not None
                kubelb.process.kill()
                await kubelb.process.wait()
                await kubelb.start()
                await traffic.answered(20)
                after = await kubelb.status()
                adopted += bool(after["dataplane"].get("adopted")) and (
                    after["dataplane"].get("pid") == before
                )
        return {"kills": sizes.kubelb_kills, "requests": len(traffic.events),
                "failed": traffic.failed, "longest_outage_s": traffic.longest_outage(),
                "outages_s": traffic.outages(), "adopted": adopted}  # fmt: skip


async def endpoint_churn(sizes: Sizes, dataplane: str) -> dict[str, Any]:
    async with serving(dataplane) as (kubelb, port, backend, _root):
        async with Traffic(HOST, port, clients=4) as traffic:
            await traffic.answered(20, by="A")
            for move in range(sizes.endpoint_moves):
                to, name = (BACKEND_B, "B") if move % 2 == 0 else (BACKEND_A, "A")
                text = harness.lb_yaml("a", port, [(to, backend)])
                (kubelb.config_dir / "a.yaml").write_text(text)
                await traffic.answered(4, by=name)
        return {"moves": sizes.endpoint_moves, "requests": len(traffic.events),
                "failed": traffic.failed}  # fmt: skip


def _hostile_inputs(port: int, backend: int) -> list[tuple[str, Callable[[Path], None]]]:
    """(name, write it into the config folder) for each hostile input; `_undo` removes it."""
    good = harness.lb_yaml("a", port, [(BACKEND_A, backend)])

    def file(name: str, text: str | bytes) -> Callable[[Path], None]:
        def write(config: Path) -> None:
            path = config / name
            if isinstance(text, bytes):
                path.write_bytes(text)
            else:
                path.write_text(text)

        return write

    def own_file(text: str) -> Callable[[Path], None]:
        return file("a.yaml", text)

    def folder_for_own_file(config: Path) -> None:
        (config / "a.yaml").unlink()
        (config / "a.yaml").mkdir()

    def symlink_loop(config: Path) -> None:
        (config / "loop.yaml").symlink_to(config / "loop2.yaml")
        (config / "loop2.yaml").symlink_to(config / "loop.yaml")

    def dangling(config: Path) -> None:
        (config / "dangling.yaml").symlink_to(config.parent / "nowhere.yaml")

    def folder_gone(config: Path) -> None:
        config.rename(config.parent / "config.moved")

    other = harness.free_port()
    return [
        ("4 KB of nested brackets", file("deep.yaml", "[" * 2048 + "]" * 2048)),
        ("deep nested mappings", file("deep2.yaml", "a: {" * 1500 + "}" * 1500)),
        ("the LoadBalancer's file replaced by a folder", folder_for_own_file),
        ("symlink loop", symlink_loop),
        ("dangling symlink", dangling),
        ("duplicate LoadBalancer in an earlier file",
         file("0.yaml", harness.lb_yaml("a", port, [(BACKEND_B, other)]))),
        ("port 70000", own_file(good.replace(f"port: {port},", "port: 70000,", 1))),
        ("port 0", own_file(good.replace(f"port: {port},", "port: 0,", 1))),
        ("endpoint 999.1.1.1", own_file(good.replace(BACKEND_A, "999.1.1.1"))),
        ("endpoint hostname", own_file(good.replace(BACKEND_A, "no-such-host.invalid"))),
        ("unknown field (typo)", own_file(good.replace("spec:\n", "spec:\n  prots: []\n"))),
        ("binary garbage", file("garbage.yaml", bytes(range(256)) * 16)),
        ("invalid YAML", file("bad.yaml", "kind: LoadBalancer\n  : : [\n")),
        ("empty file", file("empty.yaml", "")),
        ("YAML anchors bomb", file("bomb.yaml", "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
            f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n"
            for p, c in zip("abcdefgh", "bcdefghi", strict=True)))),
        ("64 KiB name", file("long.yaml", harness.lb_yaml("n" * 65536, harness.free_port(),
                                                          [(BACKEND_B, other)]))),
        ("name with a slash", file("slash.yaml", harness.lb_yaml("a/b", harness.free_port(),
                                                                [(BACKEND_B, other)]))),
        ("a list where a mapping belongs", own_file(good.replace("spec:\n", "spec: []\nx:\n"))),
        ("a second LoadBalancer on the same port",
         file("same-port.yaml", harness.lb_yaml("b", port, [(BACKEND_B, other)]))),
        ("the whole config folder renamed away", folder_gone),
    ]  # fmt: skip


def _undo(root: Path, good: str) -> None:
    config = root / "config"
    if (root / "config.moved").exists() and not config.exists():
        (root / "config.moved").rename(config)
    for path in list(config.iterdir()):
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.is_dir():
            path.rmdir()
    (config / "a.yaml").write_text(good)


async def hostile_inputs(sizes: Sizes) -> dict[str, Any]:
    tried = crashes = stopped = 0
    notes: list[str] = []
    async with serving("python") as (kubelb, port, backend, root):
        good = (kubelb.config_dir / "a.yaml").read_text()
        inputs = _hostile_inputs(port, backend)[: sizes.hostile_inputs]
        for name, write in inputs:
            tried += 1
            before = await kubelb.status()
            write(kubelb.config_dir)
            # Settle: until the status changes (the file was read), for at most 5 s.
            with contextlib.suppress(TimeoutError, OSError, ValueError):
                async with asyncio.timeout(5):
                    while True:
                        if await kubelb.status() != before:
                            break
                        await asyncio.sleep(0.1)
            assert kubelb.process is not None
            if kubelb.process.returncode is not None:
                crashes += 1
                notes.append(f"{name}: kubelb exited with {kubelb.process.returncode}")
                _undo(root, good)
                await kubelb.start()
                continue
            try:
                async with asyncio.timeout(5):
                    answer = await backends.request(HOST, port)
                ready = bool((kubelb.lb(await kubelb.status(), "a") or {}).get("ready"))
            except (OSError, TimeoutError, asyncio.IncompleteReadError) as err:
                answer, ready = repr(err).encode(), False
            if not answer.startswith(b"A:") or not ready:
                stopped += 1
                notes.append(f"{name}: LoadBalancer a answered {answer!r}, ready={ready}")
            _undo(root, good)
            await kubelb.wait_for(lambda d: bool((kubelb.lb(d, "a") or {}).get("ready"))
                                  and not d["errors"], f"clean after {name}")  # fmt: skip
    return {"tried": tried, "crashes": crashes, "wrongly_stopped": stopped, "notes": notes}


@dataclass
class ManagedLB:
    """A manager (process mode, real Envoy) on the test control plane serving LoadBalancer `a`
    of tenant `chaos` at `address:port`, in front of backend A."""

    manager: Any  # bench.controlplane.common.ManagerProcess
    mgmt: Any  # kubelb.kube.client.Client of the management cluster
    apiserver: int  # the management kube-apiserver's pid
    namespace: str
    address: str
    port: int
    backend: int
    state_dir: Path

    def spec(self, ip: str) -> dict[str, Any]:
        endpoint = {"addresses": [{"ip": ip}], "ports": [{"name": "p", "port": self.backend}]}
        return {"type": "LoadBalancer", "ports": [{"name": "p", "port": self.port}],
                "endpoints": [endpoint]}  # fmt: skip

    def envoy_pid(self) -> int | None:
        """The pid the manager recorded for the tenant's Envoy (its shim)."""
        path = self.state_dir / naming.dns1035(self.namespace) / supervisor.RECORD
        with contextlib.suppress(OSError, ValueError, KeyError):
            return int(json.loads(path.read_text())["pid"])
        return None


@contextlib.asynccontextmanager
async def managed_lb(workdir: Path) -> AsyncIterator[ManagedLB | None]:
    """A `ManagedLB`, serving; None when the test control plane is not built."""
    from bench.controlplane import common
    from kubelb.kube import errors, resources
    from kubelb.localcluster import binaries, controlplane

    if binaries.missing(binaries.default_dir()):
        yield None
        return
    backend = harness.free_port()
    async with (
        controlplane.ControlPlane(clusters=controlplane.DEFAULT_CLUSTERS[:1]) as cp,
        backends.tcp_echo("A", BACKEND_A, backend),
        backends.tcp_echo("B", BACKEND_B, backend),
    ):
        mgmt_cluster = cp.clusters["management"]
        mgmt = await common.kube_client(mgmt_cluster.kubeconfig)
        # A fixed xDS port: a restarted manager must offer its Envoys the one they know.
        manager = common.ManagerProcess(
            mgmt_cluster.kubeconfig, workdir, address_pool="127.0.0.71",
            extra_args=("--listen-address", f"127.0.0.1:{harness.free_port()}",
                        "--envoy-drain-seconds", "1"),
        )  # fmt: skip
        try:
            await common.ensure_namespace(mgmt, "kubelb")
            await manager.start()
            tenant = {"apiVersion": "kubelb.k8c.io/v1alpha1", "kind": "Tenant",
                      "metadata": {"name": "chaos"}}  # fmt: skip
            await mgmt.create(resources.TENANTS, tenant)
            served = ManagedLB(manager=manager, mgmt=mgmt, apiserver=mgmt_cluster.pids[0],
                               namespace="tenant-chaos", address="", port=harness.free_port(),
                               backend=backend, state_dir=workdir / "state")  # fmt: skip
            lb = {"apiVersion": "kubelb.k8c.io/v1alpha1", "kind": "LoadBalancer",
                  "metadata": {"name": "a", "namespace": served.namespace},
                  "spec": served.spec(BACKEND_A)}  # fmt: skip
            async with asyncio.timeout(120):
                while True:
                    try:
                        await mgmt.create(resources.LOAD_BALANCERS, lb)
                        break
                    except errors.NotFoundError:
                        await asyncio.sleep(0.2)  # the Tenant's namespace is not there yet
                while True:
                    got = await mgmt.get(resources.LOAD_BALANCERS, "a", namespace=served.namespace)
                    ingress = ((got.get("status") or {}).get("loadBalancer") or {}).get(
                        "ingress"
                    ) or []
                    if ingress:
                        break
                    await asyncio.sleep(0.2)
            served.address = ingress[0]["ip"]
            # Status first, listener next: count only once the tenant's Envoy serves.
            await backends.eventually(lambda: backends.request(served.address, served.port),
                                      "LB a serves")  # fmt: skip
            yield served
        finally:
            await manager.stop()
            await mgmt.close()
            _kill_leftover_envoys(workdir)


async def api_server_stop(sizes: Sizes) -> dict[str, Any]:
    from kubelb.kube import resources

    with tempfile.TemporaryDirectory(prefix="kubelb-chaos-api-") as tmp:
        async with managed_lb(Path(tmp)) as served:
            if served is None:
                return {"skipped": "the test control plane is not built (make controlplane)"}
            async with Traffic(served.address, served.port) as traffic:
                await traffic.answered(20, by="A")
                os.kill(served.apiserver, signal.SIGSTOP)
                try:
                    await asyncio.sleep(sizes.api_stop_seconds)  # the fault's length
                finally:
                    os.kill(served.apiserver, signal.SIGCONT)
                resumed = time.monotonic()
                failed_while_stopped = traffic.failed
                body = {"spec": served.spec(BACKEND_B)}
                await served.mgmt.patch(resources.LOAD_BALANCERS, "a", body,
                                        namespace=served.namespace)  # fmt: skip
                await traffic.answered(1, by="B")
                caught_up = next(t for t, n in traffic.events if n == "B") - resumed
            return {"stopped_s": sizes.api_stop_seconds, "requests": len(traffic.events),
                    "failed_while_stopped": failed_while_stopped, "failed": traffic.failed,
                    "change_applied_after_s": caught_up}  # fmt: skip


async def manager_kill(sizes: Sizes) -> dict[str, Any]:
    """kill -9 of the manager (process mode) under traffic, and its restart: failed requests,
    and whether the restarted manager adopted the tenant's Envoy (the same pid)."""
    from kubelb.kube import resources

    adopted = 0
    with tempfile.TemporaryDirectory(prefix="kubelb-chaos-manager-") as tmp:
        async with managed_lb(Path(tmp)) as served:
            if served is None:
                return {"skipped": "the test control plane is not built (make controlplane)"}
            async with Traffic(served.address, served.port) as traffic:
                await traffic.answered(20, by="A")
                for kill in range(sizes.kubelb_kills):
                    before = served.envoy_pid()
                    process = served.manager.process
                    process.kill()
                    await process.wait()
                    await served.manager.start()
                    # The restarted manager programs the Envoy again: move the endpoint.
                    to, name = (BACKEND_B, "B") if kill % 2 == 0 else (BACKEND_A, "A")
                    await served.mgmt.patch(resources.LOAD_BALANCERS, "a",
                                            {"spec": served.spec(to)},
                                            namespace=served.namespace)  # fmt: skip
                    await traffic.answered(20, by=name)
                    adopted += before is not None and served.envoy_pid() == before
            return {"kills": sizes.kubelb_kills, "requests": len(traffic.events),
                    "failed": traffic.failed, "longest_outage_s": traffic.longest_outage(),
                    "outages_s": traffic.outages(), "adopted": adopted}  # fmt: skip


# Route churn: every Route's Ingress is served on port 80 of the namespace's pool address.
ROUTE_POOL = "127.0.0.75"
STEADY_HOST, STEADY_PATH = "steady.test", "/steady"
OTHER_ROUTES = 4  # files edited in turn


@dataclass(frozen=True)
class RouteEdit:
    """Edit `n`: the file it rewrites (or removes: no rules), and a request that tells it is
    served: (host, path, the backend that must answer)."""

    file: str
    rules: tuple[tuple[str, str, str], ...]  # (host, path prefix, Service)
    probe: tuple[str, str, str]


def route_edit(n: int) -> RouteEdit:
    """Each file goes through added, moved, backends swapped, removed, starting at a different
    step, so that any 4 edits in a row make one of each."""
    f = n % OTHER_ROUTES
    step = (n // OTHER_ROUTES + f) % 4
    file = f"other-{f}.json"
    if step == 0:  # added: a new host, and a path on the steady route's host
        rules = ((f"new-{n}.test", "/", "b"), (STEADY_HOST, f"/r{f}", "b"))
        return RouteEdit(file, rules, (f"new-{n}.test", "/", "b"))
    if step == 1:  # moved: that host and path elsewhere
        rules = ((f"moved-{f}.test", "/", "b"), (STEADY_HOST, f"/m{f}", "b"))
        return RouteEdit(file, rules, (STEADY_HOST, f"/m{f}/x", "b"))
    if step == 2:  # the same hosts and paths, the other backend
        rules = ((f"moved-{f}.test", "/", "c"), (STEADY_HOST, f"/m{f}", "c"))
        return RouteEdit(file, rules, (STEADY_HOST, f"/m{f}/x", "c"))
    # removed: its path on the steady host falls back to the steady route's `/`
    return RouteEdit(file, (), (STEADY_HOST, f"/m{f}/x", "steady"))


def route_json(name: str, node: str, rules: tuple[tuple[str, str, str], ...],
               node_ports: dict[str, int]) -> str:  # fmt: skip
    """A Route embedding Ingress `name` with `rules`, its Services' nodePorts and `node` as the
    endpoint, as kubelb's agent writes them."""
    paths = [
        {
            "host": host,
            "http": {
                "paths": [
                    {
                        "path": path,
                        "pathType": "Prefix",
                        "backend": {"service": {"name": service, "port": {"number": 80}}},
                    }
                ]
            },
        }
        for host, path, service in rules
    ]
    services = [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": service, "namespace": "default"},
            "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": node_ports[service]}]},
        }
        for service in sorted({service for _, _, service in rules})
    ]
    ingress = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"rules": paths},
    }
    return json.dumps({"apiVersion": "kubelb.k8c.io/v1alpha1", "kind": "Route",
                       "metadata": {"name": name, "namespace": "chaos"},
                       "spec": {"endpoints": [{"name": "nodes", "addresses": [{"ip": node}]}],
                                "source": {"kubernetes": {"resource": ingress,
                                                          "services": services}}}})  # fmt: skip


async def http_backend_name(host: str, port: int, *, host_header: str = STEADY_HOST,
                            path: str = STEADY_PATH) -> str:  # fmt: skip
    """The backend (`x-backend`) that answered a GET with 200 through `host:port`, or ""."""
    extra = "connection: close\r\n"
    status, headers, _ = await scenarios.http_request(
        (host, port), scenarios.get(path, host=host_header, extra=extra)
    )
    return headers.get("x-backend", "") if status == 200 else ""


async def route_serves(host_header: str, path: str, backend: str) -> None:
    async def answered() -> bool:
        with contextlib.suppress(OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
            async with asyncio.timeout(3):
                name = await http_backend_name(ROUTE_POOL, 80, host_header=host_header, path=path)
                return name == backend
        return False

    async with asyncio.timeout(60):
        while True:
            if await answered():
                return
            await asyncio.sleep(0.02)


async def route_churn(sizes: Sizes, dataplane: str) -> dict[str, Any]:
    node_a, node_b = BACKEND_A, BACKEND_B
    servers = {"steady": http_backends.HTTPBackend("steady", node_a, harness.free_port(node_a)),
               "b": http_backends.HTTPBackend("b", node_b, harness.free_port(node_b)),
               "c": http_backends.HTTPBackend("c", node_b, harness.free_port(node_b))}  # fmt: skip
    node_ports = {name: server.port for name, server in servers.items()}

    def write(config: Path, edit: RouteEdit) -> None:
        path = config / edit.file
        if edit.rules:
            path.write_text(route_json(path.stem, node_b, edit.rules, node_ports))
        else:
            path.unlink(missing_ok=True)

    with tempfile.TemporaryDirectory(prefix="kubelb-chaos-routes-") as tmp:
        root = Path(tmp)
        kubelb = _standalone(root, dataplane)
        kubelb.address_pool = ROUTE_POOL
        steady = ((STEADY_HOST, "/", "steady"),)
        (kubelb.config_dir / "steady.json").write_text(
            route_json("steady", node_a, steady, node_ports)
        )
        for n in range(OTHER_ROUTES):  # where each file starts
            write(kubelb.config_dir, route_edit(n))
        for server in servers.values():
            await server.start()
        try:
            await kubelb.start()
            await route_serves(STEADY_HOST, STEADY_PATH, "steady")
            async with Traffic(ROUTE_POOL, 80, ask=http_backend_name) as traffic:
                await traffic.answered(20, by="steady")
                for n in range(OTHER_ROUTES, OTHER_ROUTES + sizes.route_edits):
                    edit = route_edit(n)
                    write(kubelb.config_dir, edit)
                    await route_serves(*edit.probe)
                await traffic.answered(20, by="steady")
        finally:
            if kubelb.process is not None and kubelb.process.returncode is None:
                await kubelb.stop()
            _kill_leftover_envoys(root)
            for server in servers.values():
                await server.stop()
    # Any answer but the steady route's backend's is a failure (a refusal, an error status, a
    # request routed elsewhere).
    failed = sum(1 for _, name in traffic.events if name != "steady")
    return {"edits": sizes.route_edits, "requests": len(traffic.events), "failed": failed,
            "longest_outage_s": traffic.longest_outage()}  # fmt: skip


async def _guarded(name: str, run: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    started = time.monotonic()
    print(f">> {name}", flush=True)
    try:
        async with asyncio.timeout(300):
            result = await run
    except Exception as err:  # noqa: BLE001  (a broken scenario is a figure too, not the end)
        result = {"error": f"{type(err).__name__}: {err}"[:500]}
    result["seconds"] = round(time.monotonic() - started, 1)
    return result


async def run_all(sizes: Sizes) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    results["envoy_kill"] = await _guarded("Envoy kill -9", envoy_kill(sizes))
    for plane in ("envoy", "python"):
        results[f"kubelb_kill_{plane}"] = await _guarded(
            f"kubelb kill -9 ({plane})", kubelb_kill(sizes, plane)
        )
    results["manager_kill"] = await _guarded("manager kill -9", manager_kill(sizes))
    results["api_server_stop"] = await _guarded("API server stop", api_server_stop(sizes))
    for plane in ("envoy", "python"):
        results[f"endpoint_churn_{plane}"] = await _guarded(
            f"endpoint churn ({plane})", endpoint_churn(sizes, plane)
        )
    for plane in ("envoy", "python"):
        results[f"route_churn_{plane}"] = await _guarded(
            f"route churn ({plane})", route_churn(sizes, plane)
        )
    results["hostile_inputs"] = await _guarded("hostile inputs", hostile_inputs(sizes))
    return results


def _figure(row: dict[str, Any]) -> str:
    if "error" in row:
        return f"scenario failed: {row['error']}"
    if "skipped" in row:
        return str(row["skipped"])
    if "tried" in row:
        return (f"{row['tried']} tried, {row['crashes']} crashes, "
                f"{row['wrongly_stopped']} wrongly stopped LoadBalancers")  # fmt: skip
    if "stopped_s" in row:
        return (f"{row['failed_while_stopped']}/{row['requests']} failed over "
                f"{row['stopped_s']:.0f} s stopped; change applied "
                f"{row['change_applied_after_s']:.2f} s after it returned")  # fmt: skip
    if "edits" in row:
        return f"{row['failed']}/{row['requests']} requests failed over {row['edits']} route edits"
    if "moves" in row:
        return f"{row['failed']}/{row['requests']} new connections failed over {row['moves']} moves"
    figure = (f"{row['failed']}/{row['requests']} requests failed over {row['kills']} kills; "
              f"longest outage {row['longest_outage_s']:.2f} s")  # fmt: skip
    if "adopted" in row:
        figure += f"; data plane adopted after {row['adopted']}/{row['kills']} restarts"
    return figure


LABELS = {
    "envoy_kill": "Envoy kill -9 (standalone)",
    "kubelb_kill_envoy": "kubelb kill -9 + restart (standalone, Envoy)",
    "kubelb_kill_python": "kubelb kill -9 + restart (standalone, Python)",
    "manager_kill": "manager kill -9 + restart (process mode)",
    "api_server_stop": "management API server stopped (manager)",
    "endpoint_churn_envoy": "endpoint churn (Envoy)",
    "endpoint_churn_python": "endpoint churn (Python)",
    "route_churn_envoy": "route churn (standalone, Envoy)",
    "route_churn_python": "route churn (standalone, Python)",
    "hostile_inputs": "hostile inputs (standalone)",
}


def table(results: dict[str, dict[str, Any]]) -> str:
    width = max(len(label) for label in LABELS.values())
    lines = [f"{'scenario':<{width}}  figures", f"{'-' * width}  {'-' * 60}"]
    lines += [f"{LABELS[k]:<{width}}  {_figure(v)}" for k, v in results.items()]
    for note in results.get("hostile_inputs", {}).get("notes", []):
        lines.append(f"{'':<{width}}  - {note}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.chaos",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    results_file.add_arguments(parser, "one fault of each kind, a few seconds each")
    args = parser.parse_args(argv)
    sizes = Sizes.quick() if args.quick else Sizes()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    results = asyncio.run(run_all(sizes))
    print(table(results))
    results_file.write("chaos", {"sizes": sizes.__dict__, "results": results},
                       results_file.folder(args), echo=False)  # fmt: skip
    failed = [k for k, v in results.items() if "error" in v]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
