"""State-of-the-world ADS for one stream: what Envoy holds, and what to send next, in safe order.

Pure: no I/O, no clock. `kubelb.xds.server` feeds a `StreamState` every request (`receive`), asks it
what to push for the current snapshot (`plan`), sends those pushes and reports each back (`sent`).

Ordering (xDS protocol, "eventual consistency considerations"), per stream:
1. CDS: the snapshot's clusters, plus every cluster Envoy still holds that the snapshot dropped,
   for as long as Envoy may still run listeners that use them.
2. EDS: the requested ClusterLoadAssignments (after CDS, Envoy asks for the new clusters' names).
3. LDS (and RDS): only once Envoy has ACKed a CDS response holding every cluster of the snapshot
   and an EDS response holding every EDS name, so no listener ever points at a missing or still
   warming cluster.
4. Removals: once Envoy ACKs the snapshot's listeners and the snapshot's route tables, CDS is
   sent again without the clusters the snapshot dropped. (A route change leaves the listener
   alone, so the listener ACK alone says nothing about which clusters the routes still use.)
A changed EDS cluster is warmed by Envoy as a new instance that waits for its assignment, and
Envoy holds back its CDS ACK until warming ends: the assignments of changed clusters are sent
again right after the CDS response, even when unchanged (xDS protocol, "resource warming"),
or the cluster would wait out its 15 s initial fetch timeout.
A NACK leaves everything as it was: the rejected version is not re-sent, Envoy keeps its last good
config, and the next snapshot is tried afresh.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from kubelb.xds import snapshot

logger = logging.getLogger(__name__)


class Outcome(StrEnum):
    """How a request was understood."""

    REQUEST = "request"  # first request for a type on this stream, or a new subscription
    ACK = "ack"
    NACK = "nack"
    STALE = "stale"  # answers a response that has since been superseded: ignored
    UNKNOWN_TYPE = "unknown_type"  # a type this server does not serve: ignored


@dataclass(frozen=True, slots=True)
class Nack:
    """Envoy rejected `version` of `type_url` with `error_detail`."""

    type_url: str
    version: str
    nonce: str
    error_detail: str


@dataclass(frozen=True, slots=True)
class Push:
    """One DiscoveryResponse to send: every resource of the type that Envoy should hold."""

    type_url: str
    version: str
    resources: tuple[snapshot.Resource, ...]
    # Clusters kept only because listeners Envoy still runs may use them (for logs and tests).
    retained: tuple[str, ...] = ()
    # Resources to send even if Envoy holds them (assignments of warming clusters).
    resend: frozenset[str] = frozenset()


@dataclass(slots=True)
class TypeState:
    """One type URL on one stream."""

    requested: bool = False
    names: frozenset[str] = frozenset()  # subscription of a named type (EDS, RDS)
    sent_version: str | None = None
    sent_nonce: str = ""
    sent: dict[str, snapshot.Resource] = field(default_factory=dict)
    # What Envoy runs, as far as this stream knows: None until it ACKs a response of ours.
    acked_version: str | None = None
    acked: dict[str, snapshot.Resource] | None = None
    last_nack: Nack | None = None


class StreamState:
    """Per-stream bookkeeping of state-of-the-world ADS."""

    def __init__(self) -> None:
        self.types: dict[str, TypeState] = {t: TypeState() for t in snapshot.PUSH_ORDER}
        self.last_nack: Nack | None = None

    def receive(self, request: Any) -> Outcome:
        """Record a DiscoveryRequest and say what it was."""
        state = self.types.get(request.type_url)
        if state is None:
            return Outcome.UNKNOWN_TYPE
        if request.response_nonce and request.response_nonce != state.sent_nonce:
            return Outcome.STALE
        state.requested = True
        if request.type_url not in snapshot.WILDCARD_TYPES:
            state.names = frozenset(request.resource_names)
        error = request.error_detail.message if request.HasField("error_detail") else None
        return self.answer(request.type_url, request.response_nonce, error)

    def answer(self, type_url: str, nonce: str, error: str | None) -> Outcome:
        """Record what a current request of `type_url` says about our responses: nothing (no
        nonce: a first request or a new subscription), an ACK, or a NACK with `error`."""
        state = self.types[type_url]
        if not nonce:
            return Outcome.REQUEST
        if error is not None:
            state.last_nack = self.last_nack = Nack(
                type_url=type_url, version=state.sent_version or "", nonce=nonce, error_detail=error
            )
            return Outcome.NACK
        state.acked_version = state.sent_version
        state.acked = dict(state.sent)
        return Outcome.ACK

    def sent(self, push: Push, nonce: str) -> None:
        self._record(push)
        self.types[push.type_url].sent_nonce = nonce

    def held(self, push: Push) -> None:
        """`push` needs no response: Envoy already holds exactly that (delta xDS, where the
        difference can be empty). Recorded as sent and ACKed."""
        self._record(push)
        state = self.types[push.type_url]
        state.acked_version = push.version
        state.acked = dict(state.sent)

    def _record(self, push: Push) -> None:
        state = self.types[push.type_url]
        state.sent_version = push.version
        state.sent = {r.name: r for r in push.resources}

    def plan(self, snap: snapshot.Snapshot) -> list[Push]:
        """The responses to send now, in push order; empty when Envoy is up to date."""
        pushes: list[Push] = []
        settled = self.routing_settled(snap)
        ready = self.clusters_ready(snap)
        # Assignments of the clusters this plan changes; they go out in the same plan.
        rewarm: frozenset[str] = frozenset()
        for type_url in snapshot.PUSH_ORDER:
            state = self.types[type_url]
            if not state.requested:
                continue
            items = dict(snap[type_url].items)
            retained: tuple[str, ...] = ()
            if type_url == snapshot.CLUSTER and not settled and state.acked:
                retained = tuple(sorted(n for n in state.acked if n not in items))
                items.update((n, state.acked[n]) for n in retained)
            elif type_url not in snapshot.WILDCARD_TYPES:
                # A subscribed name the snapshot dropped keeps its last content until Envoy
                # unsubscribes (its cluster is being removed): no pointless re-send meanwhile.
                items = {
                    n: r
                    for n in state.names
                    if (r := items.get(n) or state.sent.get(n)) is not None
                }
                if not items and state.sent_version is None:
                    continue  # nothing Envoy asked for exists (yet)
            if type_url in (snapshot.LISTENER, snapshot.ROUTE) and not ready:
                continue
            push = _push_if_changed(type_url, items, state, retained)
            if type_url == snapshot.CLUSTER and push is not None:
                rewarm = _changed_eds_names(push, state)
            elif type_url == snapshot.ENDPOINT and (again := rewarm & items.keys()):
                push = _push(type_url, items, retained, resend=frozenset(again))
            if push is not None:
                pushes.append(push)
        return pushes

    def routing_settled(self, snap: snapshot.Snapshot) -> bool:
        """Envoy has ACKed the snapshot's listeners, and each of its route tables as it is now:
        nothing Envoy runs can still send traffic to a cluster the snapshot dropped."""
        listeners = self.types[snapshot.LISTENER].acked_version == snap.version(snapshot.LISTENER)
        return listeners and self.routes_acked(snap)

    def routes_acked(self, snap: snapshot.Snapshot) -> bool:
        """Envoy has ACKed every route table of the snapshot with its current content. (Route
        versions depend on the subscription, so contents are compared, not versions.)"""
        acked = self.types[snapshot.ROUTE].acked or {}
        return all(
            (have := acked.get(name)) is not None and have.digest == route.digest
            for name, route in snap[snapshot.ROUTE].items.items()
        )

    def clusters_ready(self, snap: snapshot.Snapshot) -> bool:
        """Envoy has ACKed every cluster of `snap`, and an assignment for each EDS name."""
        clusters = self.types[snapshot.CLUSTER].acked
        if clusters is None or not snap[snapshot.CLUSTER].items.keys() <= clusters.keys():
            return False
        eds = snap.eds_names()
        if not eds:
            return True
        endpoints = self.types[snapshot.ENDPOINT].acked
        return endpoints is not None and eds <= endpoints.keys()

    def acked_versions(self) -> dict[str, str]:
        return {t: s.acked_version for t, s in self.types.items() if s.acked_version is not None}


def _push_if_changed(
    type_url: str,
    items: Mapping[str, snapshot.Resource],
    state: TypeState,
    retained: tuple[str, ...],
) -> Push | None:
    if snapshot.content_version(items.values()) == state.sent_version:
        return None
    return _push(type_url, items, retained)


def _push(
    type_url: str,
    items: Mapping[str, snapshot.Resource],
    retained: tuple[str, ...],
    resend: frozenset[str] = frozenset(),
) -> Push:
    version = snapshot.content_version(items.values())
    resources = tuple(items[n] for n in sorted(items))
    return Push(type_url, version, resources, retained=retained, resend=resend)


def _changed_eds_names(push: Push, state: TypeState) -> frozenset[str]:
    """Assignment names of the EDS clusters in CDS `push` that replace a different version
    Envoy was sent before (new clusters subscribe, so their assignments go out anyway)."""
    names = (
        r.eds_name
        for r in push.resources
        if (before := state.sent.get(r.name)) is not None and before.digest != r.digest
    )
    return frozenset(n for n in names if n is not None)
