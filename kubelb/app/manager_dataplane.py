"""Adapters between the manager's reconcilers and the data-plane packages they may not import.

`SnapshotPublisher` implements `kubelb.manager.envoycp.Publisher`: a tenant's IR -> Envoy
resources (`kubelb.xds.translate`) -> snapshot in the xDS cache (node id = tenant namespace). A
translation that fails keeps the last good snapshot serving. `ProcessWorkloads` implements
`kubelb.manager.proxies.Workloads` with the Envoy supervisor (one local Envoy per tenant).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping
from typing import Any

from kubelb.api import config as api_config
from kubelb.envoy import deployer, supervisor
from kubelb.ir import proxy
from kubelb.observe import metrics
from kubelb.xds import cache, snapshot, translate

logger = logging.getLogger(__name__)


class SnapshotPublisher:
    def __init__(self, snapshots: cache.SnapshotCache) -> None:
        self.cache = snapshots
        self.pushes = 0  # snapshots that changed something (bench)

    def publish(self, config: proxy.ProxyConfig) -> bool:
        node = config.node_id
        started = time.perf_counter()
        try:
            snap = snapshot.Snapshot.from_resources(
                translate.translate(config), previous=self.cache.get_snapshot(node)
            )
            changed = self.cache.set_snapshot(node, snap)
        except ValueError as exc:
            logger.error("tenant %s: cannot translate the configuration, keeping the last good "
                         "snapshot: %s", node, exc)  # fmt: skip
            return False
        metrics.XDS_SNAPSHOT_GENERATION_SECONDS.labels(snapshot_name=node).observe(
            time.perf_counter() - started
        )
        self.pushes += changed
        return changed

    def clear(self, node_id: str) -> None:
        self.cache.clear_snapshot(node_id)


class ProcessWorkloads:
    """One supervised Envoy process per tenant namespace; replicas and resources do not apply."""

    def __init__(self, envoys: supervisor.EnvoySupervisor, spec: deployer.EnvoySpec) -> None:
        self.supervisor = envoys
        self.spec = spec

    def bind_xds(self, host: str, port: int) -> None:
        self.spec = dataclasses.replace(self.spec, xds_host=host, xds_port=port)

    async def ensure(
        self,
        namespace: str,
        proxy: api_config.EnvoyProxy,
        replicas: int,
        resources: Mapping[str, Any] | None,
    ) -> None:
        await self.supervisor.ensure(namespace, self.spec)

    async def remove(self, namespace: str) -> None:
        await self.supervisor.remove(namespace)

    def ready(self, namespace: str) -> bool:
        return self.supervisor.ready(namespace)

    async def close(self) -> None:
        await self.supervisor.close()
