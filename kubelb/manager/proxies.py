"""Envoy control, workload half (leader only): one Envoy workload per tenant with LoadBalancers.

Reads, per tenant namespace (the work-queue key): whether it has LoadBalancers that are not
being deleted, whether load balancing is disabled for it, and the effective Envoy settings
(replicas and resources: Tenant over Config; the rest of `spec.envoyProxy` from Config). Writes
through a `Workloads` implementation: the Kubernetes Deployment `envoy-<tenant-ns>`
(`kubelb.envoy.kubernetes`) or a supervised local Envoy process (process deployer). A tenant
with nothing to serve has its workload removed (inventory §3.6).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from kubelb.api import config as api_config
from kubelb.kube import controller, objects, resources, watches
from kubelb.manager import common
from kubelb.observe import manager_metrics

logger = logging.getLogger(__name__)


class Workloads(Protocol):
    """Runs the tenants' Envoys. `ensure` with unchanged arguments must be cheap and idempotent."""

    async def ensure(
        self,
        namespace: str,
        proxy: api_config.EnvoyProxy,
        replicas: int,
        resources: Mapping[str, Any] | None,
    ) -> None: ...

    async def remove(self, namespace: str) -> None: ...


class ProxyReconciler:
    name = "envoy-proxies"

    def __init__(
        self,
        inputs: common.Inputs,
        workloads: Workloads,
        *,
        extra_watches: Sequence[watches.Watch] = (),
    ) -> None:
        self.inputs = inputs
        self.workloads = workloads
        self.primary = inputs.watch_namespaces(common.tenant_of)
        self.watches: Sequence[watches.Watch] = (
            watches.Watch(resource=resources.LOAD_BALANCERS, mapper=common.tenant_of,
                          predicate=watches.spec_changed),
            inputs.watch_config(common.every_tenant(inputs)),
            inputs.watch_tenants(common.tenant_of_tenant),
            *extra_watches,
        )  # fmt: skip
        self.running: set[str] = set()

    async def reconcile(self, key: objects.ObjectKey) -> controller.Result:
        namespace = key.name
        wanted = (
            self.inputs.managed(namespace)
            and self.inputs.disabled_reason(namespace) is None
            and bool(self.inputs.live_load_balancers_in(namespace))
        )
        gauge = manager_metrics.ENVOY_PROXIES.labels(namespace=namespace,
                                                     topology=common.TOPOLOGY)  # fmt: skip
        if not wanted:
            await self.workloads.remove(namespace)
            if namespace in self.running:
                logger.info("tenant %s: no LoadBalancers to serve, Envoy removed", namespace)
            self.running.discard(namespace)
            gauge.set(0)
            return controller.DONE
        effective = self.inputs.effective(namespace)
        await self.workloads.ensure(namespace, effective.envoy, effective.envoy_replicas,
                                    effective.envoy_resources)  # fmt: skip
        self.running.add(namespace)
        gauge.set(1)
        return controller.DONE
