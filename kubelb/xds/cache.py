"""The snapshot cache: the latest `Snapshot` per node id, and the ADS streams that serve it.

Input: `set_snapshot(node_id, snapshot)` from whoever translates the IR (the manager per tenant
namespace; standalone mode with one fixed node id). Output: the ADS server registers each stream
under its Envoy's node id and is notified whenever that node's snapshot changes; `status(node_id)`
reports what the node's Envoys have ACKed or NACKed. A NACK stands (`rejection(node_id)`) until
an Envoy of the node ACKs a later response of the same type; a refused snapshot
(`refusal(node_id)`, see below) stands until another one is served. `watch_rejections` callbacks
hear of every change of what stands, so status can say what is really served. Several Envoys
may share a node id (replicas); each has its own stream, and a reconnecting Envoy simply
registers again.

Fallback: the cache remembers the last snapshot an Envoy of the node ACKed in full
(`note_stream_ack`). When that node's Envoy dies soon after a new snapshot, `rollback(node_id)`
serves the last ACKed one again and refuses the fatal snapshot until a different one is set, so
Envoy is never restarted into the configuration that killed it. An optional `admit(node_id, snap)`
refuses a snapshot the node's Envoys cannot run (`RefusedSnapshotError`, with the reason).

Not thread-safe: use it from the event loop that runs the server.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from kubelb.observe import metrics
from kubelb.xds import callbacks, snapshot, sotw

logger = logging.getLogger(__name__)

Notify = Callable[[], None]
# Why a node's Envoys cannot run a snapshot, or None: see `SnapshotCache.admit`.
Admit = Callable[[str, snapshot.Snapshot], str | None]
# An Envoy that exits this soon after ACKing a snapshot is taken to have died of it.
ROLLBACK_WINDOW_SECONDS = 30.0
# Called with a node id whose standing NACK appeared, changed or cleared.
RejectionWatcher = Callable[[str], None]

_COUNT_GAUGES = {
    "clusters": metrics.XDS_CLUSTERS,
    "endpoints": metrics.XDS_ENDPOINTS,
    "listeners": metrics.XDS_LISTENERS,
    "routes": metrics.XDS_ROUTES,
    "secrets": metrics.XDS_SECRETS,
}


@dataclass(frozen=True, slots=True)
class StreamStatus:
    stream_id: int
    peer: str
    acked: dict[str, str]  # type URL -> last version this Envoy ACKed
    last_nack: sotw.Nack | None
    routes_acked: bool = True  # every route table of the snapshot ACKed as it is now


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """What the Envoys of one node id run, as far as the ADS streams tell."""

    node_id: str
    versions: dict[str, str] | None  # the snapshot's versions per type URL; None if no snapshot
    streams: tuple[StreamStatus, ...]
    # The most recent NACK from any Envoy of the node, until one ACKs that type again.
    last_nack: sotw.Nack | None
    # Why the snapshot last set was refused (`admit`) or rolled back; None once one is served.
    refused: str | None = None

    @property
    def connected(self) -> int:
        return len(self.streams)

    def in_sync(self) -> bool:
        """At least one Envoy is connected and every one has ACKed the snapshot: the versions
        of the wildcard types CDS and LDS, and the content of every route table (EDS and RDS
        versions depend on the subscription)."""
        if self.versions is None or not self.streams:
            return False
        return all(
            s.routes_acked
            and all(s.acked.get(t) == self.versions[t] for t in snapshot.WILDCARD_TYPES)
            for s in self.streams
        )


class RefusedSnapshotError(ValueError):
    """The node's Envoys cannot run this snapshot: `SnapshotCache.admit` said why."""


@dataclass(frozen=True, slots=True)
class _Acked:
    snap: snapshot.Snapshot
    at: float  # time.monotonic() of the ACK


class SnapshotCache:
    def __init__(self, *, admit: Admit | None = None) -> None:
        self.admit = admit
        self._snapshots: dict[str, snapshot.Snapshot] = {}
        self._streams: dict[str, dict[int, tuple[callbacks.StreamInfo, Notify]]] = {}
        self._last_nack: dict[str, sotw.Nack] = {}
        # The last snapshot fully ACKed per node, and the one ACKed before it.
        self._acked: dict[str, _Acked] = {}
        self._acked_before: dict[str, snapshot.Snapshot] = {}
        self._pinned: dict[str, dict[str, str]] = {}  # node -> versions of a fatal snapshot
        self._refused: dict[str, str] = {}
        # The snapshot each standing refusal is about (what the node's Envoys do not run).
        self._refused_snaps: dict[str, snapshot.Snapshot] = {}
        self._rejection_watchers: list[RejectionWatcher] = []

    def set_snapshot(self, node_id: str, snap: snapshot.Snapshot) -> bool:
        """Serve `snap` to `node_id`'s Envoys; False when nothing changed.

        Raises `snapshot.InconsistentSnapshotError` (and keeps the previous snapshot) when `snap`
        is inconsistent.
        """
        snap.consistent()
        previous = self._snapshots.get(node_id)
        if previous is not None and previous.versions == snap.versions:
            # What is wanted is what is served again: a refusal of something else is over.
            self._end_refusal(node_id)
            return False
        if self._pinned.get(node_id) == snap.versions:
            return False  # the snapshot rolled back: kept out until the config changes
        if self.admit is not None and (reason := self.admit(node_id, snap)) is not None:
            self._refuse(node_id, reason, snap)
            raise RefusedSnapshotError(reason)
        self._pinned.pop(node_id, None)
        self._end_refusal(node_id)
        self._snapshots[node_id] = snap
        for name, count in snap.counts().items():
            _COUNT_GAUGES[name].labels(snapshot_name=node_id).set(count)
        metrics.XDS_SNAPSHOT_UPDATES.labels(snapshot_name=node_id).inc()
        metrics.XDS_SNAPSHOTS.set(len(self._snapshots))
        logger.info(
            "xDS snapshot updated",
            extra={
                "tenant": node_id,
                **snap.counts(),
                "streams": len(self._streams.get(node_id, {})),
            },
        )
        self._notify(node_id)
        return True

    def get_snapshot(self, node_id: str) -> snapshot.Snapshot | None:
        return self._snapshots.get(node_id)

    def clear_snapshot(self, node_id: str) -> None:
        """Forget the node's snapshot. Connected Envoys keep the config they have."""
        if self._snapshots.pop(node_id, None) is None:
            return
        for forget in (self._last_nack, self._acked, self._acked_before, self._pinned,
                       self._refused, self._refused_snaps):  # fmt: skip
            forget.pop(node_id, None)
        for gauge in _COUNT_GAUGES.values():
            gauge.remove(node_id)
        metrics.XDS_CACHE_CLEARS.labels(snapshot_name=node_id).inc()
        metrics.XDS_SNAPSHOTS.set(len(self._snapshots))

    def keys(self) -> list[str]:
        """Node ids with a snapshot or a connected Envoy, sorted."""
        return sorted(self._snapshots.keys() | {n for n, s in self._streams.items() if s})

    def status(self, node_id: str) -> NodeStatus:
        snap = self._snapshots.get(node_id)
        streams = tuple(
            StreamStatus(
                stream_id=info.stream_id,
                peer=info.peer,
                acked=info.state.acked_versions(),
                last_nack=info.state.last_nack,
                routes_acked=snap is None or info.state.routes_acked(snap),
            )
            for info, _ in sorted(self._streams.get(node_id, {}).values(), key=_stream_id)
        )
        return NodeStatus(
            node_id=node_id,
            versions=None if snap is None else snap.versions,
            streams=streams,
            last_nack=self._last_nack.get(node_id),
            refused=self._refused.get(node_id),
        )

    def rollback(self, node_id: str, *, window: float = ROLLBACK_WINDOW_SECONDS) -> bool:
        """The node's Envoy died: if that may be the fault of the snapshot served (not ACKed
        yet, or ACKed less than `window` seconds ago), serve the last snapshot ACKed before it
        and refuse this one until another is set. False when there is nothing to go back to."""
        current = self._snapshots.get(node_id)
        acked = self._acked.get(node_id)
        if current is None or acked is None:
            return False
        if acked.snap.versions != current.versions:
            target = acked.snap
        elif time.monotonic() - acked.at < window and node_id in self._acked_before:
            target = self._acked_before.pop(node_id)
            self._acked[node_id] = _Acked(target, acked.at)
        else:
            return False
        self._pinned[node_id] = current.versions
        self._snapshots[node_id] = target
        reason = (
            "Envoy exited soon after this configuration was served: rolled back to the "
            "last one it accepted"
        )
        self._refuse(node_id, reason, current)
        logger.warning("node %r: %s", node_id, reason, extra={"tenant": node_id})
        self._notify(node_id)
        return True

    # --- for the ADS server ---

    def register(self, stream: callbacks.StreamInfo, notify: Notify) -> snapshot.Snapshot | None:
        """Attach a stream to its node id; `notify()` is called on every snapshot change."""
        self._streams.setdefault(stream.node_id, {})[stream.stream_id] = (stream, notify)
        snap = self._snapshots.get(stream.node_id)
        counter = metrics.XDS_CACHE_MISSES if snap is None else metrics.XDS_CACHE_HITS
        counter.labels(snapshot_name=stream.node_id).inc()
        return snap

    def unregister(self, stream: callbacks.StreamInfo) -> None:
        streams = self._streams.get(stream.node_id, {})
        streams.pop(stream.stream_id, None)
        if not streams:
            self._streams.pop(stream.node_id, None)

    def note_nack(self, node_id: str, nack: sotw.Nack) -> None:
        previous = self._last_nack.get(node_id)
        self._last_nack[node_id] = nack
        if previous is None or previous.error_detail != nack.error_detail:
            self._rejection_changed(node_id)

    def note_ack(self, node_id: str, type_url: str) -> None:
        """An Envoy of the node ACKed a response of `type_url`: a NACK of that type no longer
        stands (the input it rejected is gone)."""
        nack = self._last_nack.get(node_id)
        if nack is not None and nack.type_url == type_url:
            del self._last_nack[node_id]
            logger.info("Envoy (node %r) accepts its configuration again", node_id,
                        extra={"tenant": node_id})  # fmt: skip
            self._rejection_changed(node_id)

    def rejection(self, node_id: str) -> sotw.Nack | None:
        """The NACK that still stands for the node, if any."""
        return self._last_nack.get(node_id)

    def refusal(self, node_id: str) -> tuple[str, snapshot.Snapshot] | None:
        """The refusal that stands for the node (`admit` or a rollback): why, and the snapshot
        refused, which its Envoys do not run."""
        reason, snap = self._refused.get(node_id), self._refused_snaps.get(node_id)
        return None if reason is None or snap is None else (reason, snap)

    def _refuse(self, node_id: str, reason: str, snap: snapshot.Snapshot) -> None:
        before = self._refused_snaps.get(node_id)
        changed = self._refused.get(node_id) != reason or (
            before is None or before.versions != snap.versions
        )
        self._refused[node_id] = reason
        self._refused_snaps[node_id] = snap
        if changed:
            self._rejection_changed(node_id)

    def _end_refusal(self, node_id: str) -> None:
        self._refused_snaps.pop(node_id, None)
        if self._refused.pop(node_id, None) is not None:
            self._rejection_changed(node_id)

    def watch_rejections(self, watcher: RejectionWatcher) -> None:
        self._rejection_watchers.append(watcher)

    def _rejection_changed(self, node_id: str) -> None:
        for watcher in self._rejection_watchers:
            try:
                watcher(node_id)
            except Exception:
                logger.exception("NACK watcher failed for node %r", node_id)

    def note_stream_ack(self, stream: callbacks.StreamInfo) -> None:
        """An Envoy ACKed something: remember the node's snapshot once it runs all of it."""
        node_id = stream.node_id
        snap = self._snapshots.get(node_id)
        acked = self._acked.get(node_id)
        if snap is None or (acked is not None and acked.snap.versions == snap.versions):
            return
        versions = stream.state.acked_versions()
        if all(versions.get(t) == snap.versions[t] for t in snapshot.WILDCARD_TYPES) and (
            stream.state.routes_acked(snap)
        ):
            if acked is not None:
                self._acked_before[node_id] = acked.snap
            self._acked[node_id] = _Acked(snap, time.monotonic())

    def _notify(self, node_id: str) -> None:
        for _, notify in self._streams.get(node_id, {}).values():
            notify()


def _stream_id(entry: tuple[callbacks.StreamInfo, Notify]) -> int:
    return entry[0].stream_id
