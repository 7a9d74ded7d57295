"""Envoy control, snapshot half (every replica, not leader-elected): one xDS node per tenant.

Reads, per tenant namespace (the work-queue key; node id = namespace): its LoadBalancers, its
Addresses, the Tenant and Config (load balancing disabled?) and each management Service, from
which the manager's `infrastructure.Infra` tells where each LoadBalancer binds (e.g. every
interface on the ports recorded in its status, or the address in its Service's status on its
own ports). Writes nothing to the API server: it builds the tenant's IR with `kubelb.irbuild` and
hands it to a `Publisher` (the composition root translates it to xDS and sets the snapshot). A
tenant with no LoadBalancers left is cleared.

Only the tenant whose objects changed is rebuilt, and an IR equal to the one published last is not
published again, so our own status writes cost no translation. A rebuild takes each LoadBalancer's
IR piece from `Inputs.pieces`, which builds it only when the LoadBalancer's spec, its placement, the
tenant's Addresses or its endpoint policy changed (the LoadBalancer controller has usually built it
already, for the problems in its status), so a change costs at most one LoadBalancer's build plus
assembly; the composition root also delays each tenant's rebuild briefly so a burst of changes
becomes one rebuild. LoadBalancers that are not placed yet (no recorded ports or no address) are
left out until they are. Endpoints the tenant's endpoint policy refuses are left out of the IR (the
LoadBalancer controller reports them).

Routes (`manager.routes`): the tenant's L7 piece, built once per change of its Routes, its
Addresses, its L7 entry and its settings (`RouteReads.tenant`, shared with the Route
controller), goes into the same snapshot as its LoadBalancers. Disabling load balancing (L4)
leaves the Routes served; `ingress.disable` and `gatewayAPI.disable` gate them instead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Protocol

from kubelb.ir import proxy
from kubelb.irbuild import loadbalancers as irbuild
from kubelb.kube import controller, objects, resources, watches
from kubelb.manager import common, infrastructure, lbservice, routereads
from kubelb.observe import manager_metrics
from kubelb.util import logsafe

logger = logging.getLogger(__name__)


class Publisher(Protocol):
    """Receives each tenant's IR; the xDS side of the composition root implements it."""

    def publish(self, config: proxy.ProxyConfig) -> bool:
        """Serve `config` to node `config.node_id`; False when nothing changed or it failed."""

    def clear(self, node_id: str) -> None:
        """Forget the node's configuration."""


class SnapshotReconciler:
    name = "envoycp"

    def __init__(
        self,
        inputs: common.Inputs,
        publisher: Publisher,
        infra: infrastructure.Infra,
        routes: routereads.RouteReads | None = None,
    ) -> None:
        """`routes`: the tenants' Routes (None: L4 only)."""
        self.inputs = inputs
        self.publisher = publisher
        self.infra = infra
        self.routes = routes
        self.primary = inputs.watch_namespaces(common.tenant_of)
        lb_fields = watches.any_of(watches.spec_changed,
                                   watches.fields_changed("status.service.ports",
                                                          "status.hostname"))  # fmt: skip
        self.watches: Sequence[watches.Watch] = (
            watches.Watch(resource=resources.LOAD_BALANCERS, mapper=common.tenant_of,
                          predicate=lb_fields),
            watches.Watch(resource=resources.ADDRESSES, mapper=common.tenant_of,
                          predicate=watches.generation_changed),
            inputs.watch_services(common.tenant_of,
                                  watches.fields_changed("status.loadBalancer", "spec.ports")),
            inputs.watch_config(common.every_tenant(inputs)),
            inputs.watch_tenants(common.tenant_of_tenant),
        )  # fmt: skip
        if routes is not None:
            route_changes = watches.Watch(resource=resources.ROUTES, mapper=common.tenant_of,
                                          predicate=watches.spec_changed)  # fmt: skip
            self.watches = (*self.watches, route_changes, inputs.watch_secrets(common.tenant_of))
        self.published: dict[str, proxy.ProxyConfig] = {}
        # Tenant namespace -> seconds until a certificate's validity changes (see `desired`).
        self._stale: dict[str, float] = {}
        self.builds = 0  # IRs assembled (tests, bench)

    async def reconcile(self, key: objects.ObjectKey) -> controller.Result:
        started = time.perf_counter()
        namespace = key.name
        try:
            config = self.desired(namespace)
            if config is None:
                self._clear(namespace)
            else:
                self._publish(config)
        except Exception:
            manager_metrics.ENVOYCP_RECONCILES.labels(result="error").inc()
            raise
        manager_metrics.ENVOYCP_RECONCILES.labels(result="success").inc()
        manager_metrics.ENVOYCP_RECONCILE_SECONDS.observe(time.perf_counter() - started)
        # A certificate expiring (or becoming valid) changes what is served, with no event.
        stale = self._stale.pop(namespace, None)
        return controller.DONE if stale is None else controller.Result(requeue_after=stale)

    def desired(self, namespace: str) -> proxy.ProxyConfig | None:
        """The tenant's IR, or None when it has nothing to serve."""
        if not self.inputs.managed(namespace):
            return None
        pieces = []
        served = False
        if self.routes is not None:
            state = self.routes.tenant(namespace)
            if state.built is not None:
                pieces.append(state.built.piece)
            if (stale := state.stale_in()) is not None:
                self._stale[namespace] = stale
            served = self.routes.has_routes(namespace)
        lbs = [] if self.inputs.disabled_reason(namespace) else (
            self.inputs.live_load_balancers_in(namespace))  # fmt: skip
        if not lbs and not served:
            return None
        addresses = self.inputs.addresses_in(namespace)
        policy = self.inputs.endpoint_policy(namespace)
        for lb in lbs:
            service = self.inputs.service(namespace, lbservice.service_name(lb.name))
            placement = self.infra.placement(lb, service)
            if placement is not None:
                pieces.append(self.inputs.pieces.get(lb, placement, addresses, policy))
        self.builds += 1
        return irbuild.assemble(namespace, pieces).config

    def _publish(self, config: proxy.ProxyConfig) -> None:
        node = config.node_id
        if self.published.get(node) == config:
            return
        if config.dropped_listeners:
            manager_metrics.DUPLICATE_LISTENERS_DROPPED.labels(snapshot_name=node).inc(
                len(config.dropped_listeners)
            )
        if self.publisher.publish(config):
            manager_metrics.ENVOYCP_SNAPSHOT_UPDATES.labels(snapshot_name=node).inc()
        self.published[node] = config
        manager_metrics.ENVOYCP_LISTENERS.labels(snapshot_name=node).set(len(config.listeners))
        manager_metrics.ENVOYCP_CLUSTERS.labels(snapshot_name=node).set(len(config.clusters))
        manager_metrics.ENVOYCP_ENDPOINTS.labels(snapshot_name=node).set(
            sum(len(c.endpoints) for c in config.clusters)
        )
        logger.debug("tenant %s: %d listeners, %d clusters published", node,
                     len(config.listeners), len(config.clusters))  # fmt: skip

    def _clear(self, namespace: str) -> None:
        if self.published.pop(namespace, None) is None:
            return
        self.publisher.clear(namespace)
        manager_metrics.forget_snapshot(namespace)
        logger.info("tenant %s: no LoadBalancers or Routes left, snapshot cleared",
                    logsafe.shown(namespace))  # fmt: skip
