"""Envoys as local processes (`--envoy-deployer=process`): the manager's host runs every tenant's
Envoy, and the manager gives each management Service an address from its pool.

One supervised Envoy process per tenant namespace (node id = namespace; replicas and resources
do not apply), connected to the manager's own xDS server. A LoadBalancer binds the address the
pool wrote into its Service's status, on the LoadBalancer's own ports; the Service needs neither
NodePorts nor a pod selector. The pool (`addresspool.AddressPool`) runs while this replica
leads, and the Envoys stop when it stops leading: a replica that does not lead runs no Envoy.
The Envoys outlive a crash of the manager and are adopted from `--state-dir` when it restarts; an
Envoy that dies of a new snapshot gets the last one it ACKed (`use_snapshots`: the xDS cache's
rollback), and a snapshot with more listeners than its file descriptors allow is refused.

With `certs` (--xds-tls) each Envoy dials xDS over mTLS with a certificate naming its node,
written before it starts (`xdscerts.FileCerts`) and rotated by a runner while this replica leads.

Settings for pods (Config `envoyProxy.useDaemonset`, `podMonitor.enabled`) do not apply to a
process: a tenant asking for them gets a warning that says so (`not_applicable`), once per
change, and its Tenant's SettingsApplied condition says it too.

Endpoints: each Envoy's admin interface is a Unix socket in its state directory, which no
endpoint can name; probe listeners are off. Local development runs tenants' "nodes" on 127.x
addresses, so loopback stays allowed by default; link-local and unspecified addresses are
denied, and the manager's own sockets are added by the composition root.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubelb.api import config as api_config, loadbalancer as api_lb, ports as api_ports
from kubelb.envoy import deployer, procs, supervisor
from kubelb.infra import addresspool, routeentry, xdscerts
from kubelb.irbuild import endpointpolicy, loadbalancers as irbuild
from kubelb.kube import objects, watches, writer as kwriter
from kubelb.manager import common, effective as tenant_effective, endpoints, infrastructure
from kubelb.placement import pool

if TYPE_CHECKING:  # at run time the cache is handed in: the Python data plane loads no protos
    from kubelb.xds import cache, snapshot

logger = logging.getLogger(__name__)

# How long a new LoadBalancer waits for the pool's address before it is reported NoAddress (the
# pool's write usually reconciles it sooner).
ADDRESS_WAIT = 5.0
# No event reports that a local Envoy became ready: look again this often until it is.
NOT_READY_REQUEUE = 1.0
WILDCARDS = ("", "0.0.0.0", "::")


def placement(service: Mapping[str, Any] | None) -> irbuild.Placement | None:
    """The address the pool wrote into the management Service, on the LB's own ports."""
    status = (service or {}).get("status") or {}
    for entry in (status.get("loadBalancer") or {}).get("ingress") or ():
        if isinstance(entry, dict) and entry.get("ip"):
            return irbuild.Placement(str(entry["ip"]))
    return None


def not_applicable(proxy: api_config.EnvoyProxy) -> tuple[str, ...]:
    """The Config `envoyProxy` settings asked for that a local Envoy process cannot honour, each
    with why (pods, not processes, are what they configure)."""
    ignored = []
    if proxy.use_daemonset:
        ignored.append("envoyProxy.useDaemonset does not apply to the process Envoy deployer: "
                       "each tenant has one Envoy process on the manager's host")  # fmt: skip
    if proxy.pod_monitor.enabled:
        ignored.append("envoyProxy.podMonitor.enabled does not apply to the process Envoy "
                       "deployer: there are no Envoy pods to monitor")  # fmt: skip
    return tuple(ignored)


class ProcessInfra:
    service_shape = infrastructure.ServiceShape(node_ports=False, selector=False)
    requeue = infrastructure.Requeue(not_ready=NOT_READY_REQUEUE, address_wait=ADDRESS_WAIT)
    lb_watches: Sequence[watches.Watch] = ()
    proxy_watches: Sequence[watches.Watch] = ()
    endpoint_base = endpoints.Base(denied=(*endpointpolicy.LINK_LOCAL, *endpointpolicy.UNSPECIFIED))

    def __init__(
        self,
        inputs: common.Inputs,
        writer: kwriter.Writer,
        *,
        pool: Sequence[str],
        state_dir: Path,
        envoy_binary: str | None,
        drain_seconds: float,
        xds_delta: bool,
        reconcile_lb: Callable[[objects.ObjectKey], None],
        reconcile_namespace: Callable[[str], None],
        certs: xdscerts.FileCerts | None = None,
        snapshots: cache.SnapshotCache | None = None,
    ) -> None:
        """`reconcile_lb(key)`: the pool's answer for that LoadBalancer's Service changed.
        `reconcile_namespace(ns)`: the tenant's Envoy exited, so its LoadBalancers are not served.
        `certs`: xDS over mTLS with these certificates (None: plaintext). `snapshots`: the xDS
        cache serving these Envoys (see `use_snapshots`)."""
        self.certs = certs
        self.snapshots: cache.SnapshotCache | None = None
        self.envoys = supervisor.EnvoySupervisor(
            state_dir, envoy_binary=envoy_binary, detach=True, on_exit=self._on_exit
        )
        # The supervisor checks readiness through the admin interface; fixed probe ports would
        # keep two tenants' Envoys from sharing the host. Admin on a Unix socket: no tenant
        # endpoint can name it.
        self.spec = deployer.EnvoySpec(readiness_port=None, health_port=None,
                                       drain_seconds=drain_seconds, xds_delta=xds_delta,
                                       admin_pipe=True)  # fmt: skip
        self._told: dict[str, tuple[str, ...]] = {}  # tenant -> settings said not to apply
        self._reconcile_namespace = reconcile_namespace
        self.addresses = addresspool.AddressPool(inputs, writer, pool, on_unplaced=reconcile_lb)
        if snapshots is not None:
            self.use_snapshots(snapshots)

    def placement(
        self,
        lb: api_lb.LoadBalancer,
        service: Mapping[str, Any] | None,
        allocated: Mapping[api_ports.PortKey, int] | None = None,
    ) -> irbuild.Placement | None:
        return placement(service)

    def route_listen_ports(
        self, namespace: str, requested: Collection[int], service: Mapping[str, Any] | None
    ) -> Mapping[int, int]:
        return routeentry.same_ports(requested)

    def route_entry(
        self, namespace: str, service: Mapping[str, Any] | None
    ) -> infrastructure.RouteEntry | None:
        return routeentry.pool_entry(service)

    def address_problem(self, namespace: str, service: str) -> tuple[str, str] | None:
        return self.addresses.problem(namespace, service)

    def ready(self, namespace: str) -> bool:
        return self.envoys.ready(namespace)

    def use_snapshots(self, snapshots: cache.SnapshotCache) -> None:
        """The xDS cache serving these Envoys: rolled back when one dies of a new snapshot, and
        asked to refuse snapshots with more listeners than Envoy can open sockets for."""
        self.snapshots = snapshots
        snapshots.admit = self._admit

    def not_ready_message(self, namespace: str) -> str | None:
        """Why the tenant's Envoy is not ready, when the supervisor knows: "Envoy restarting
        after exit code 1 (Too many open files)"."""
        return self.envoys.restart_cause(namespace)

    def _on_exit(self, exit_: procs.Exit) -> bool:
        # Nothing else would tell the tenant's LoadBalancers, which said Ready while it ran; once
        # not ready they look again until it is back (`requeue.not_ready`).
        self._reconcile_namespace(exit_.node_id)
        # A kill from outside says nothing about the configuration: keep serving it.
        if exit_.killed or self.snapshots is None:
            return False
        return self.snapshots.rollback(exit_.node_id)

    def _admit(self, namespace: str, snap: snapshot.Snapshot) -> str | None:
        return self.envoys.capacity_problem(namespace, snap.counts()["listeners"])

    def not_applicable(self, envoy: api_config.EnvoyProxy) -> Sequence[str]:
        return not_applicable(envoy)

    async def ensure(self, namespace: str, tenant: tenant_effective.Effective) -> None:
        ignored = not_applicable(tenant.envoy)
        if ignored and self._told.get(namespace) != ignored:
            for setting in ignored:
                logger.warning("tenant %s: %s", namespace, setting, extra={"tenant": namespace})
        self._told[namespace] = ignored
        spec = deployer.with_overload(self.spec, tenant.envoy.overload_manager)
        if self.certs is not None:
            directory = await self.certs.ensure(namespace)
            spec = dataclasses.replace(spec, xds_tls_dir=str(directory))
        await self.envoys.ensure(namespace, spec)

    async def remove(self, namespace: str) -> None:
        await self.envoys.remove(namespace)
        if self.certs is not None:
            await self.certs.forget(namespace)

    def runners(self) -> Sequence[infrastructure.Runner]:
        if self.certs is None:
            return (self.addresses,)
        return (self.addresses, xdscerts.Rotation(self.certs))

    def bind_xds(self, host: str, port: int) -> None:
        local = host if host not in WILDCARDS else "127.0.0.1"
        self.spec = dataclasses.replace(self.spec, xds_host=local, xds_port=port)

    def reserve(self, reservations: Iterable[pool.Reservation]) -> None:
        # Envoy binds with SO_REUSEPORT: on one of our sockets it would take a share of, say,
        # the xDS connections.
        self.addresses.reserve(reservations)

    async def close(self) -> None:
        await self.envoys.close()
