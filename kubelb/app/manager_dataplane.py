"""The manager's xDS side, which its reconcilers may not import.

`SnapshotPublisher` implements `kubelb.manager.envoycp.Publisher`: a tenant's IR -> Envoy
resources (`kubelb.xds.translate`) -> snapshot in the xDS cache (node id = tenant namespace). A
translation that fails keeps the last good snapshot serving.
"""

from __future__ import annotations

import logging
import time

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
