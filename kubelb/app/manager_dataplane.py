"""The manager's xDS side, which its reconcilers may not import.

`SnapshotPublisher` implements `kubelb.manager.envoycp.Publisher`: a tenant's IR -> Envoy
resources (`kubelb.xds.translate`) -> snapshot in the xDS cache (node id = tenant namespace). A
translation that fails keeps the last good snapshot serving. `rejection` tells the LoadBalancer
controller what a tenant's Envoy NACKed, and which of the snapshot's resources the error names.
"""

from __future__ import annotations

import logging
import re
import time

from kubelb.ir import proxy
from kubelb.manager import loadbalancers
from kubelb.observe import metrics
from kubelb.xds import cache, snapshot, translate
from kubelb.xds.translate import balance

# What separates resource names in Envoy's error details ("listener(s) a, b: ...", 'name').
_NAME_SEPARATORS = re.compile(r"[\s,:;'\"()\[\]{}]+")

logger = logging.getLogger(__name__)


class SnapshotPublisher:
    def __init__(self, snapshots: cache.SnapshotCache) -> None:
        self.cache = snapshots
        self.pushes = 0  # snapshots that changed something (bench)

    def publish(self, config: proxy.ProxyConfig) -> bool:
        node = config.node_id
        started = time.perf_counter()
        try:
            snap = snapshot.Snapshot.from_resources(translate.sealed(config))
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

    def rejection(self, node_id: str) -> loadbalancers.Rejection | None:
        """`loadbalancers.Rejections` for the manager's tenants (node id = namespace)."""
        return rejection(self.cache, node_id)


def rejection(snapshots: cache.SnapshotCache, node_id: str) -> loadbalancers.Rejection | None:
    """The node's standing NACK and the listener and cluster names of its snapshot that the
    error detail mentions (a merged cluster stands for its listener); else its standing
    refusal, naming the listeners and clusters of the refused snapshot that its Envoys do not
    run as they are there (new or changed)."""
    nack = snapshots.rejection(node_id)
    if nack is None:
        return _refusal(snapshots, node_id)
    snap = snapshots.get_snapshot(node_id)
    known: set[str] = set()
    if snap is not None:
        for type_url in (snapshot.LISTENER, snapshot.CLUSTER, snapshot.ENDPOINT):
            known.update(snap[type_url].items)
    mentioned = set(_NAME_SEPARATORS.split(nack.error_detail)) & known
    names = frozenset(n.removesuffix(balance.MERGED_SUFFIX) for n in mentioned)
    return loadbalancers.Rejection(detail=nack.error_detail, names=names)


def _refusal(snapshots: cache.SnapshotCache, node_id: str) -> loadbalancers.Rejection | None:
    refusal = snapshots.refusal(node_id)
    if refusal is None:
        return None
    reason, refused = refusal
    served = snapshots.get_snapshot(node_id)
    names: set[str] = set()
    for type_url in (snapshot.LISTENER, snapshot.CLUSTER, snapshot.ENDPOINT, snapshot.ROUTE):
        running = served[type_url].items if served is not None else {}
        names.update(name for name, resource in refused[type_url].items.items()
                     if name not in running or running[name].digest != resource.digest)  # fmt: skip
    if not names:  # it only drops resources: nothing it names goes unserved
        return None
    return loadbalancers.Rejection(
        detail=reason, names=frozenset(n.removesuffix(balance.MERGED_SUFFIX) for n in names)
    )
