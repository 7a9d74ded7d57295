"""Envoy control, workload half (leader only): one Envoy workload per tenant with LoadBalancers
or Routes.

Reads, per tenant namespace (the work-queue key): whether it has LoadBalancers that are not
being deleted, whether load balancing is disabled for it, and the effective Envoy settings
(replicas and resources: Tenant over Config; the rest of `spec.envoyProxy` from Config). Runs or
removes the tenant's Envoy through the manager's `infrastructure.Infra` (a Deployment, or a local
process). Every tenant gets one Envoy workload, whatever topology its Config names (the
deprecated topologies behave as shared). A tenant with nothing to serve has its Envoy removed
once it has had nothing to serve for `REMOVE_GRACE` seconds (decided on the state then).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from kubelb.api import config as api_config
from kubelb.kube import controller, objects, resources, watches
from kubelb.manager import common, infrastructure
from kubelb.observe import manager_metrics
from kubelb.util import logsafe

logger = logging.getLogger(__name__)

# How long a tenant with nothing left to serve keeps its Envoy.
REMOVE_GRACE = 2.0


class ProxyReconciler:
    name = "envoy-proxies"

    def __init__(
        self,
        inputs: common.Inputs,
        infra: infrastructure.Infra,
        has_routes: Callable[[str], bool] | None = None,
    ) -> None:
        """`has_routes(namespace)`: the tenant has Routes to serve (None: L4 only)."""
        self.inputs = inputs
        self.infra = infra
        self.has_routes = has_routes
        self.primary = inputs.watch_namespaces(common.tenant_of)
        self.watches: Sequence[watches.Watch] = (
            watches.Watch(resource=resources.LOAD_BALANCERS, mapper=common.tenant_of,
                          predicate=watches.spec_changed),
            inputs.watch_config(common.every_tenant(inputs)),
            inputs.watch_tenants(common.tenant_of_tenant),
            *infra.proxy_watches,
        )  # fmt: skip
        if has_routes is not None:
            route_changes = watches.Watch(resource=resources.ROUTES, mapper=common.tenant_of,
                                          predicate=watches.spec_changed)  # fmt: skip
            self.watches = (*self.watches, route_changes)
        self.running: set[str] = set()
        self.remove_grace = REMOVE_GRACE
        self._idle_since: dict[str, float] = {}  # tenant -> since when it has nothing to serve

    async def reconcile(self, key: objects.ObjectKey) -> controller.Result:
        namespace = key.name
        wanted = self.inputs.managed(namespace) and (
            (self.inputs.disabled_reason(namespace) is None
             and bool(self.inputs.live_load_balancers_in(namespace)))
            or (self.has_routes is not None and self.has_routes(namespace))
        )  # fmt: skip
        gauge = manager_metrics.ENVOY_PROXIES.labels(namespace=namespace,
                                                     topology=api_config.TOPOLOGY)  # fmt: skip
        if not wanted and namespace in self.running:
            # A tenant whose last object just went often gets a new one at once (a Route
            # replaced, a test after a test): its Envoy stays for `remove_grace`, and goes only
            # if it still has nothing to serve then, so a removal never races a new object.
            now = time.monotonic()
            idle = self._idle_since.setdefault(namespace, now)
            if now - idle < self.remove_grace:
                return controller.Result(requeue_after=idle + self.remove_grace - now)
        self._idle_since.pop(namespace, None)
        if not wanted:
            await self.infra.remove(namespace)
            if namespace in self.running:
                logger.info(
                    "tenant %s: no LoadBalancers to serve, Envoy removed", logsafe.shown(namespace)
                )
            self.running.discard(namespace)
            gauge.set(0)
            return controller.DONE
        await self.infra.ensure(namespace, self.inputs.effective(namespace))
        self.running.add(namespace)
        gauge.set(1)
        return controller.DONE
