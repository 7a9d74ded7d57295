"""Run the KubeLB manager on the management cluster.

Watches tenant namespaces for LoadBalancers, Routes, Addresses and SyncSecrets, allocates Envoy
listener ports, creates the management Services (`envoy-<lb>`, and `envoy-<tenant-ns>-l7` for a
tenant's Routes), copies their external addresses into the statuses, and programs one Envoy per
tenant over xDS (node id = tenant namespace): Deployments `envoy-<tenant-ns>`
(--envoy-deployer=kubernetes) or local processes with addresses from --address-pool
(--envoy-deployer=process). With leader election (the default) only the leader writes; every
replica serves xDS.

xDS is served over mTLS (--xds-tls, the default): the manager keeps a small CA (Secret
kubelb-xds-ca in --namespace, or <state-dir>/_xds-certs/_ca with the process deployer), gives each
Envoy a certificate naming its node (Secret envoy-<tenant-ns>-xds-cert, or a file in the state
dir), rotates it, and serves a stream only the node its certificate names. Plaintext
(--xds-tls=false) is for the process deployer on a loopback --listen-address only.

Example:
  kubelb --mode=manager --kubeconfig mgmt.kubeconfig --envoy-deployer=process \\
      --address-pool 127.0.0.16/28 --listen-address 127.0.0.1:8001
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import ipaddress
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from kubelb.app import core, logs, manager_dataplane, runner

# Re-exported: the manager's callers (tests, `kubelb.cli`) name them through this module.
from kubelb.app.manager_settings import (
    Settings as Settings,
    add_arguments as add_arguments,
    resolve_namespace as resolve_namespace,
    settings_from_args as settings_from_args,
    unhonoured as unhonoured,
)
from kubelb.envoy import binary, kubernetes as envoy_k8s
from kubelb.infra import (
    hubsockets,
    kubernetes as kubernetes_infra,
    process as process_infra,
    xdscerts,
)
from kubelb.irbuild import endpointpolicy
from kubelb.kube import client, errors as kerrors, events, kubeconfig, leader
from kubelb.manager import infrastructure, syncsecrets, tenants
from kubelb.observe import manager_metrics, server
from kubelb.pki import model as pki_model, serving
from kubelb.placement import pool
from kubelb.util import backoff
from kubelb.xds import cache, server as xds_server

if TYPE_CHECKING:
    import grpc

logger = logging.getLogger(__name__)

LEASE_NAME = "19f32e7b.kubelb.k8c.io"
FIELD_MANAGER = "kubelb-manager"
# Reading the xDS CA while the API server is unreachable at start.
CA_RETRY = backoff.Backoff(initial=0.5, cap=10.0)


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    logs.setup(settings.log)
    for note in unhonoured(args):
        logger.warning("%s", note)
    if settings.debug:  # upstream's --debug also turns on its xDS cache's debug logging
        logging.getLogger(xds_server.__name__.rpartition(".")[0]).setLevel(logging.DEBUG)
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
        self.events = events.EventRecorder(kube, FIELD_MANAGER)
        self.cache = cache.SnapshotCache()
        self.xds = xds_server.XdsServer(self.cache)
        self.publisher = manager_dataplane.SnapshotPublisher(self.cache)
        # Envoys' xDS certificates (None: plaintext), made with the infra; the CA loads in `run`.
        self.xds_certs: XdsCerts | None = None
        self.server_certs: serving.ServerCertificates | None = None
        # The one place that knows how Envoy runs; every reconciler gets the object.
        self.core = core.Core(kube, namespace=settings.namespace, infra=self._make_infra,
                              publisher=self.publisher, workers=settings.workers,
                              rejections=self.publisher.rejection,
                              events=self.events)  # fmt: skip
        self.writer = self.core.writer
        self.informers = self.core.informers
        self.inputs = self.core.inputs
        self.infra = self.core.infra
        self.snapshots = self.core.snapshots
        self.lbs = self.core.lbs
        self.proxies = self.core.proxies
        self.snapshot_controller = self.core.snapshot_controller
        self.lb_controller = self.core.lb_controller
        self.proxy_controller = self.core.proxy_controller
        self.elector = None
        if settings.enable_leader_election:
            self.elector = leader.LeaderElector(kube, namespace=settings.namespace,
                                                name=LEASE_NAME)  # fmt: skip
        self.readiness = server.Readiness()
        self.readiness.add("informers-synced", self.core.synced)
        self.probes = server.HTTPServer("probes", settings.health_probe_bind_address,
                                        server.probe_routes(self.readiness))  # fmt: skip
        self.metrics = server.HTTPServer("metrics", settings.metrics_addr,
                                         server.metrics_routes())  # fmt: skip
        self.xds_port = 0
        tenant_options = tenants.TenantControllerOptions(
            namespace=settings.namespace, server_override=settings.tenant_api_server,
            token_mode=settings.tenant_token, not_applicable=self.infra.not_applicable,
        )  # fmt: skip
        self.tenant_controller = tenants.tenant_controller(
            self.informers, self.writer, self.events, tenant_options, workers=2,
            observer=_observe_tenant,
        )  # fmt: skip
        self.sync_secret_controller = syncsecrets.sync_secret_controller(
            self.informers, self.writer, workers=2)  # fmt: skip
        self.cache.watch_rejections(self.core.reconcile_namespace_lbs)
        # Writers: run only while this replica leads.
        self.leader_controllers = [*self.core.writers, self.tenant_controller,
                                   self.sync_secret_controller]  # fmt: skip

    def _make_infra(self, c: core.Core) -> infrastructure.Infra:
        s = self.settings
        if s.xds_tls:
            self.xds_certs = XDS_CERTS[s.envoy_deployer](s, self.kube, c)
        return INFRASTRUCTURES[s.envoy_deployer](s, c, self.xds_certs, self.cache)

    async def run(self) -> None:
        await self.probes.start()
        await self.metrics.start()
        self.readiness.add("xds-serving", lambda: self.xds_port > 0)
        try:
            credentials = await self._xds_credentials()
            self.xds_port = await self.xds.start(self.settings.listen_address,
                                                 credentials=credentials)  # fmt: skip
            host, _ = server.parse_address(self.settings.listen_address)
            self.infra.bind_xds(host, self.xds_port)
            await self._refuse_hub_sockets(host)
            await self._reserve_hub_sockets(host)
            async with asyncio.TaskGroup() as group:
                group.create_task(self.core.run_readers(), name="readers")
                if self.elector is not None:
                    group.create_task(self.elector.run(self._lead), name="leader-election")
                else:
                    group.create_task(self._lead(), name="leader-work")
        finally:
            await self._shutdown()

    async def _xds_credentials(self) -> grpc.ServerCredentials | None:
        """The xDS server's mTLS credentials (None: plaintext). The CA may live in the API
        server: while it cannot be read the manager keeps retrying, its probes up and not ready,
        rather than crash-looping."""
        if self.xds_certs is None:
            return None
        failures = 0
        authority: pki_model.Authority | None = None
        while authority is None:
            try:
                authority = await self.xds_certs.load_authority()
            except (kerrors.TransportError, kerrors.ServerError,
                    kerrors.TooManyRequestsError) as exc:  # fmt: skip
                delay = CA_RETRY.delay(failures)
                failures += 1
                logger.warning("loading the xDS CA failed (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
        self.server_certs = await asyncio.to_thread(  # it signs in a child process
            serving.ServerCertificates, authority, dns_names=self._server_names(),
            ips=self._server_ips(),
            validity=datetime.timedelta(seconds=self.settings.xds_cert_validity),
        )  # fmt: skip
        return self.server_certs.credentials()

    def _server_names(self) -> list[str]:
        ns, host = self.settings.namespace, self.settings.envoy_xds_host
        names = [f"envoycp.{ns}.svc", f"envoycp.{ns}.svc.cluster.local", "localhost"]
        return [host, *names] if host and not _is_ip(host) else names

    def _server_ips(self) -> list[str]:
        listen, _ = server.parse_address(self.settings.listen_address)
        wanted = ["127.0.0.1", "::1", listen.strip("[]"), self.settings.envoy_xds_host or ""]
        return [a for a in wanted if _is_ip(a) and not ipaddress.ip_address(a).is_unspecified]

    async def _refuse_hub_sockets(self, xds_host: str) -> None:
        """Tenant endpoints may never name the servers just bound, Envoy's own sockets or the
        API server (before any reconciler builds an IR)."""
        s = self.settings
        local = await asyncio.to_thread(hubsockets.local_networks)
        ours = [hubsockets.bound(xds_host, self.xds_port, local),
                hubsockets.bound(self.probes.host, self.probes.port, local),
                hubsockets.bound(self.metrics.host, self.metrics.port, local),
                *await hubsockets.api_server(self.kube, local)]  # fmt: skip
        base = self.infra.endpoint_base
        if s.envoy_deployer == "kubernetes":
            # Envoy pods reach the xDS server through a Service (its ClusterIP), and the
            # cluster's Service ranges are denied even when no flag names them.
            xds = s.envoy_xds_host or f"envoycp.{s.namespace}.svc"
            ours.append(
                await asyncio.to_thread(
                    hubsockets.bound, xds, s.envoy_xds_port or self.xds_port, local
                )
            )
            if not s.service_cidrs:
                discovered = await hubsockets.service_cidrs(self.kube)
                base = base.with_denied(endpointpolicy.parse_networks(discovered))
        self.inputs.endpoint_base = base.with_hub(ours)
        logger.info("endpoint policy: %d hub sockets refused, %d CIDRs denied by default",
                    len(self.inputs.endpoint_base.hub),
                    len(self.inputs.endpoint_base.denied))  # fmt: skip

    async def _reserve_hub_sockets(self, xds_host: str) -> None:
        """No LoadBalancer the infrastructure places may listen on a socket of ours."""
        found = [(xds_host, self.xds_port, "kubelb xDS server"),
                 (self.probes.host, self.probes.port, "kubelb health probes"),
                 (self.metrics.host, self.metrics.port, "kubelb metrics")]  # fmt: skip
        url = urlsplit((await self.kube.connection()).server)
        if url.hostname and _is_ip(url.hostname):
            api_port = url.port or (80 if url.scheme == "http" else 443)
            found.append((url.hostname, api_port, "management API server"))
        self.infra.reserve(pool.Reservation(h, p, holder) for h, p, holder in found)

    async def _lead(self) -> None:
        """Everything that writes: runs only while this replica leads."""
        await self.core.lead([self.tenant_controller, self.sync_secret_controller])

    async def _shutdown(self) -> None:
        try:
            await self.infra.close()
        except Exception:
            logger.exception("closing the Envoy infrastructure failed")
        await self.xds.stop(grace=1.0)
        await self.probes.stop()
        await self.metrics.stop()


XdsCerts = xdscerts.FileCerts | xdscerts.SecretCerts


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _process_infra(
    s: Settings, c: core.Core, certs: XdsCerts | None, snapshots: cache.SnapshotCache
) -> infrastructure.Infra:
    assert certs is None or isinstance(certs, xdscerts.FileCerts)
    # The xDS cache gives its Envoys a fallback snapshot and capacity checks.
    return process_infra.ProcessInfra(
        c.inputs, c.writer, pool=s.address_pool, state_dir=s.state_dir,
        envoy_binary=s.envoy_binary, drain_seconds=s.envoy_drain_seconds,
        xds_delta=s.xds_delta, reconcile_lb=c.reconcile_lb,
        reconcile_namespace=c.reconcile_namespace_lbs, certs=certs, snapshots=snapshots,
    )  # fmt: skip


def _kubernetes_infra(
    s: Settings, c: core.Core, certs: XdsCerts | None, snapshots: cache.SnapshotCache
) -> infrastructure.Infra:
    del snapshots  # Envoy pods restart themselves; the cache has nothing to do for them
    options = envoy_k8s.Options(
        xds_host=s.envoy_xds_host or f"envoycp.{s.namespace}.svc", image=s.envoy_image,
        shutdown_manager_image=s.envoy_shutdown_manager_image,
        admin_on_all_interfaces=s.debug, xds_delta=s.xds_delta,
    )  # fmt: skip
    assert certs is None or isinstance(certs, xdscerts.SecretCerts)
    return kubernetes_infra.KubernetesInfra(c.inputs, c.writer, c.informers, options,
                                            xds_port=s.envoy_xds_port, certs=certs,
                                            service_cidrs=s.service_cidrs,
                                            pod_cidrs=s.pod_cidrs)  # fmt: skip


def _validity(s: Settings) -> datetime.timedelta:
    return datetime.timedelta(seconds=s.xds_cert_validity)


# --envoy-deployer -> where the Envoys' xDS certificates and the CA live.
XDS_CERTS: dict[str, Callable[[Settings, client.Client, core.Core], XdsCerts]] = {
    "kubernetes": lambda s, kube, c: xdscerts.SecretCerts(
        kube, c.writer, c.informers, s.namespace, validity=_validity(s)
    ),
    "process": lambda s, kube, c: xdscerts.FileCerts(
        s.state_dir / "_xds-certs", validity=_validity(s)
    ),
}


# --envoy-deployer -> how the manager runs Envoy, given the settings, the core, the Envoys' xDS
# certificates and the xDS cache. A new way is a new `Infra` class and one entry.
INFRASTRUCTURES: dict[
    str,
    Callable[[Settings, core.Core, XdsCerts | None, cache.SnapshotCache], infrastructure.Infra],
] = {
    "kubernetes": _kubernetes_infra,
    "process": _process_infra,
}


def _observe_tenant(name: str, key: object, result: str, seconds: float) -> None:
    manager_metrics.TENANT_RECONCILES.labels(result=result).inc()
    manager_metrics.TENANT_RECONCILE_SECONDS.observe(seconds)
