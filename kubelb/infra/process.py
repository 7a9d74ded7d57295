"""Envoys as local processes (`--envoy-deployer=process`): the manager's host runs every tenant's
Envoy, and the manager gives each management Service an address from its pool.

One supervised Envoy process per tenant namespace (node id = namespace; replicas and resources
do not apply), connected to the manager's own xDS server. A LoadBalancer binds the address the
pool wrote into its Service's status, on the LoadBalancer's own ports; the Service needs neither
NodePorts nor a pod selector. The pool (`addresspool.AddressPool`) runs while this replica
leads, and the Envoys stop when it stops leading: a replica that does not lead runs no Envoy.
The Envoys outlive a crash of the manager and are adopted from `--state-dir` when it restarts; an
Envoy that dies of a new snapshot gets the last one it ACKed (`snapshots.rollback`), and a
snapshot with more listeners than its file descriptors allow is refused.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from kubelb.api import loadbalancer as api_lb, ports as api_ports
from kubelb.envoy import deployer, supervisor
from kubelb.infra import addresspool
from kubelb.irbuild import loadbalancers as irbuild
from kubelb.kube import objects, watches, writer as kwriter
from kubelb.manager import common, effective as tenant_effective, infrastructure
from kubelb.xds import cache, snapshot

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


class ProcessInfra:
    service_shape = infrastructure.ServiceShape(node_ports=False, selector=False)
    requeue = infrastructure.Requeue(not_ready=NOT_READY_REQUEUE, address_wait=ADDRESS_WAIT)
    lb_watches: Sequence[watches.Watch] = ()
    proxy_watches: Sequence[watches.Watch] = ()

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
        snapshots: cache.SnapshotCache | None = None,
    ) -> None:
        """`reconcile_lb(key)`: the pool's answer for that LoadBalancer's Service changed.
        `snapshots`: the xDS cache serving these Envoys (fallback and capacity checks)."""
        self.snapshots = snapshots
        self.envoys = supervisor.EnvoySupervisor(
            state_dir, envoy_binary=envoy_binary, detach=True, on_exit=self._on_exit
        )
        if snapshots is not None:
            snapshots.admit = self._admit
        # The supervisor checks readiness through the admin interface; fixed probe ports would
        # keep two tenants' Envoys from sharing the host.
        self.spec = deployer.EnvoySpec(readiness_port=None, health_port=None,
                                       drain_seconds=drain_seconds,
                                       xds_delta=xds_delta)  # fmt: skip
        self.addresses = addresspool.AddressPool(inputs, writer, pool, on_unplaced=reconcile_lb)

    def placement(
        self,
        lb: api_lb.LoadBalancer,
        service: Mapping[str, Any] | None,
        allocated: Mapping[api_ports.PortKey, int] | None = None,
    ) -> irbuild.Placement | None:
        return placement(service)

    def address_problem(self, namespace: str, service: str) -> tuple[str, str] | None:
        return self.addresses.problem(namespace, service)

    def ready(self, namespace: str) -> bool:
        return self.envoys.ready(namespace)

    def not_ready_message(self, namespace: str) -> str | None:
        """Why the tenant's Envoy is not ready, when the supervisor knows: "Envoy restarting
        after exit code 1 (Too many open files)"."""
        return self.envoys.restart_cause(namespace)

    def _on_exit(self, exit_: supervisor.Exit) -> bool:
        return self.snapshots is not None and self.snapshots.rollback(exit_.node_id)

    def _admit(self, namespace: str, snap: snapshot.Snapshot) -> str | None:
        return self.envoys.capacity_problem(namespace, snap.counts()["listeners"])

    async def ensure(self, namespace: str, tenant: tenant_effective.Effective) -> None:
        await self.envoys.ensure(namespace, self.spec)

    async def remove(self, namespace: str) -> None:
        await self.envoys.remove(namespace)

    def runners(self) -> Sequence[infrastructure.Runner]:
        return (self.addresses,)

    def bind_xds(self, host: str, port: int) -> None:
        local = host if host not in WILDCARDS else "127.0.0.1"
        self.spec = dataclasses.replace(self.spec, xds_host=local, xds_port=port)

    async def close(self) -> None:
        await self.envoys.close()
