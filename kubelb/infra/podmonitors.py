"""The tenant Envoy's PodMonitor (Config `envoyProxy.podMonitor.enabled`, Kubernetes deployer).

prometheus-operator's CRDs are optional on a management cluster, so there is no informer: the
PodMonitor is read from the API server when the tenant's Envoy is reconciled, written when
enabled and deleted when disabled or when the Envoy goes. Without the CRD the setting cannot
work: that is said once per tenant (a warning), not retried as an error.
"""

from __future__ import annotations

import logging

from kubelb.envoy import kubernetes as envoy_k8s
from kubelb.kube import errors, objects, resources, writer as kwriter

logger = logging.getLogger(__name__)

NO_CRD = (
    "envoyProxy.podMonitor.enabled is set but the PodMonitor CRD (monitoring.coreos.com/v1) is "
    "not installed on the management cluster: no PodMonitor, and the Envoy pods carry no "
    "prometheus.io scrape annotations"
)


class PodMonitors:
    def __init__(self, writer: kwriter.Writer) -> None:
        self.writer = writer
        self._warned: set[str] = set()  # tenants told the CRD is missing

    async def ensure(self, namespace: str, enabled: bool) -> None:
        if not enabled:
            await self.remove(namespace)
            return
        desired = envoy_k8s.desired_pod_monitor(namespace)
        try:
            written = await self.writer.ensure(resources.POD_MONITORS, desired)
        except errors.NotFoundError:
            if namespace not in self._warned:
                logger.warning("tenant %s: %s", namespace, NO_CRD, extra={"tenant": namespace})
                self._warned.add(namespace)
            return
        self._warned.discard(namespace)
        if written.changed:
            logger.info("tenant %s: PodMonitor %s applied", namespace, desired["metadata"]["name"])

    async def remove(self, namespace: str) -> None:
        key = objects.ObjectKey(namespace, envoy_k8s.workload_name(namespace))
        try:
            await self.writer.client.get(resources.POD_MONITORS, key.name, namespace=namespace)
        except errors.NotFoundError:
            return  # none, or no CRD
        if await self.writer.delete(resources.POD_MONITORS, key):
            logger.info("tenant %s: PodMonitor %s deleted", namespace, key.name)
