"""The manager's reconcile path over one API server, shared by manager and standalone mode.

`Core` holds the informers, the writer, the `common.Inputs` views, and the LoadBalancer, Route,
snapshot (envoycp) and Envoy-proxy reconcilers with their controllers, over any
`kube.interface.KubeApi`: kube-apiserver in manager mode, the in-memory server the file loader
feeds in standalone mode.
What differs between the modes is handed in: the `infrastructure.Infra` (how Envoy runs and where
LoadBalancers bind) and the `envoycp.Publisher` (where each tenant's IR goes). One set of
conditions and reasons, and one place where a LoadBalancer or a tenant's Routes become IR,
whatever the mode.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from kubelb.kube import (
    controller,
    events as kevents,
    informer,
    interface,
    objects,
    writer as kwriter,
)
from kubelb.manager import (
    common,
    envoycp,
    infrastructure,
    loadbalancers,
    proxies,
    routereads,
    routes,
)

logger = logging.getLogger(__name__)

# A tenant's snapshot is rebuilt this long after the first change of a burst: 1,000 LoadBalancers
# created at once cost a few rebuilds per tenant instead of one per write, and a lone change
# waits no more than this.
SNAPSHOT_COALESCE = 0.1
# Reconciles mostly wait for the API server: 16 in flight keep up with a burst of creates
# (1,000 LoadBalancers) where 4 left the manager waiting on round trips.
LB_WORKERS = 16
# Route reconciles are per tenant, each writing its Routes' statuses concurrently.
ROUTE_WORKERS = 4


class Core:
    """`run_readers()` always; `lead(...)` only while this process may write."""

    def __init__(
        self,
        kube: interface.KubeApi,
        *,
        namespace: str,
        infra: Callable[[Core], infrastructure.Infra],
        publisher: envoycp.Publisher,
        workers: int = LB_WORKERS,
        snapshot_coalesce: float = SNAPSHOT_COALESCE,
        rejections: loadbalancers.Rejections | None = None,
        events: kevents.EventRecorder | None = None,
    ) -> None:
        """`infra(core)` builds the infrastructure from the read side (`inputs`, `writer`,
        `informers`, `reconcile_lb`), which exists by then; the reconcilers are built after.
        `rejections`: what the data plane refused, for the LoadBalancers' Ready and the
        Routes' status (call `reconcile_namespace_lbs` when that changes); `events`: where the
        LoadBalancer controller also reports refused endpoints."""
        self.kube = kube
        self.writer = kwriter.Writer(kube)
        self.informers = informer.Informers(kube)
        self.inputs = common.Inputs(self.informers, namespace=namespace)
        self.infra = infra(self)
        self.route_reads = routereads.RouteReads(self.inputs, self.informers, self.infra)
        self.snapshots = envoycp.SnapshotReconciler(self.inputs, publisher, self.infra,
                                                    self.route_reads)  # fmt: skip
        self.lbs = loadbalancers.LoadBalancerReconciler(self.inputs, self.writer, self.infra,
                                                        rejections, events)  # fmt: skip
        self.proxies = proxies.ProxyReconciler(self.inputs, self.infra,
                                               self.route_reads.has_routes)  # fmt: skip
        realisation = routes.EnvoyRealisation(self.inputs, self.route_reads, self.writer,
                                              self.infra, self._listeners_gone,
                                              rejections)  # fmt: skip
        self.routes = routes.RouteReconciler(self.inputs, self.route_reads, self.writer,
                                             self.infra, realisation, events)  # fmt: skip
        # Each key is a tenant namespace or an object in one: that names the tenant in logs.
        tenant = _tenant_namespace
        self.snapshot_controller = controller.Controller(self.snapshots, self.informers,
                                                         coalesce=snapshot_coalesce,
                                                         tenant_of=tenant)  # fmt: skip
        self.lb_controller = controller.Controller(
            self.lbs, self.informers, workers=workers, observer=loadbalancers.observe,
            tenant_of=tenant,
        )  # fmt: skip
        self.proxy_controller = controller.Controller(self.proxies, self.informers, workers=2,
                                                      tenant_of=tenant)  # fmt: skip
        # Per tenant, coalesced as the snapshots: a burst of Route writes costs one build.
        self.route_controller = controller.Controller(self.routes, self.informers,
                                                      workers=ROUTE_WORKERS,
                                                      coalesce=snapshot_coalesce,
                                                      tenant_of=tenant)  # fmt: skip
        # The controllers that write; a mode adds its own to `lead`.
        self.writers: list[controller.Controller] = [self.lb_controller, self.proxy_controller,
                                                     self.route_controller]  # fmt: skip

    def _listeners_gone(self, namespace: str) -> bool:
        """The tenant's published snapshot is what its objects ask for now: whatever a deleted
        Route served has left it."""
        return self.snapshots.published.get(namespace) == self.snapshots.desired(namespace)

    def reconcile_lb(self, key: objects.ObjectKey) -> None:
        self.lb_controller.enqueue(key)

    def reconcile_namespace_lbs(self, namespace: str) -> None:
        """Every LoadBalancer and Route of the namespace (its data plane NACKed, or ACKs
        again)."""
        for lb in self.inputs.load_balancers.store.list(namespace):
            self.lb_controller.enqueue(objects.key_of(lb))
        self.route_controller.enqueue(common.tenant_key(namespace))

    def synced(self) -> bool:
        return all(i.synced.is_set() for i in self.informers)

    async def run_readers(self) -> None:
        """The informers and the snapshot controller: safe on every replica."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self.informers.run(), name="informers")
            group.create_task(self.snapshot_controller.run(), name="envoycp")

    async def lead(self, extra: Sequence[controller.Controller] = ()) -> None:
        """Everything that writes, until cancelled; the infrastructure closes afterwards (a
        replica that does not lead runs no Envoy itself)."""
        logger.info("leading: starting the writers")
        self.proxies.running.clear()
        try:
            async with asyncio.TaskGroup() as group:
                for c in (*self.writers, *extra):
                    group.create_task(c.run(), name=f"controller-{c.name}")
                for r in self.infra.runners():
                    group.create_task(r.run(), name=r.name)
        finally:
            await self.infra.close()


def _tenant_namespace(key: objects.ObjectKey) -> str:
    return key.namespace or key.name  # common.tenant_key is ("", namespace)
