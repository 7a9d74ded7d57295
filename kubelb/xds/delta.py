"""Delta (incremental) ADS for one stream, on the same ordering as state of the world.

Pure: no I/O, no clock. `DeltaStreamState` wraps a `sotw.StreamState`: that machine decides what
Envoy should hold next and when (make-before-break order, clusters kept while listeners or route
tables may use them, NACKs); this module turns each of its pushes into the difference from what
Envoy holds: the resources whose content changed, and the names to remove. A push whose
difference is empty is recorded without a response, except the first of its type on the stream:
Envoy's initial fetch (and so its start-up) waits for that one, 15 s by default.

What Envoy holds is tracked per resource by content digest (the resource version on the wire).
It starts from the `initial_resource_versions` Envoy reports when it reconnects, so a restarted
control plane re-sends nothing unchanged. After a NACK nothing is certain about that type, so
every resource of it is sent again with the next push.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from kubelb.xds import snapshot, sotw

logger = logging.getLogger(__name__)

# The digest of a resource whose content Envoy may or may not hold.
UNKNOWN = ""
WILDCARD = "*"


@dataclass(frozen=True, slots=True)
class DeltaPush:
    """One DeltaDiscoveryResponse: `resources` to add or replace, `removed` names to drop."""

    push: sotw.Push  # the full set it brings Envoy to (versions, logs, ACK bookkeeping)
    resources: tuple[snapshot.Resource, ...]
    removed: tuple[str, ...]

    @property
    def type_url(self) -> str:
        return self.push.type_url


class DeltaStreamState:
    """Per-stream bookkeeping of delta ADS. `sotw` is the underlying ordering machine (its
    `types` and ACK state serve status reports exactly as for a state-of-the-world stream)."""

    def __init__(self) -> None:
        self.sotw = sotw.StreamState()
        self.holds: dict[str, dict[str, str]] = {t: {} for t in snapshot.PUSH_ORDER}

    def receive(self, request: Any) -> sotw.Outcome:
        """Record a DeltaDiscoveryRequest and say what it was."""
        state = self.sotw.types.get(request.type_url)
        if state is None:
            return sotw.Outcome.UNKNOWN_TYPE
        holds = self.holds[request.type_url]
        if not state.requested:
            holds.update(request.initial_resource_versions)
        # Subscription changes count even on a request that answers a superseded response.
        if request.type_url in snapshot.WILDCARD_TYPES:
            named = [n for n in request.resource_names_subscribe if n != WILDCARD]
            if named:
                logger.debug("serving %s as wildcard; ignoring names %s", request.type_url, named)
        else:
            names = set(state.names).union(request.resource_names_subscribe)
            names.difference_update(request.resource_names_unsubscribe)
            for name in request.resource_names_unsubscribe:
                holds.pop(name, None)  # Envoy drops what it no longer wants
            state.names = frozenset(names)
        nonce = request.response_nonce
        if nonce and nonce != state.sent_nonce:
            return sotw.Outcome.STALE
        state.requested = True
        error = request.error_detail.message if request.HasField("error_detail") else None
        outcome = self.sotw.answer(request.type_url, nonce, error)
        if outcome is sotw.Outcome.NACK:
            for name in holds:
                holds[name] = UNKNOWN
        return outcome

    def plan(self, snap: snapshot.Snapshot) -> list[DeltaPush | sotw.Push]:
        """The pushes to make now, in push order: a `DeltaPush` to send, or a bare `sotw.Push`
        that changes nothing Envoy holds (hand it to `held`, no response needed)."""
        out: list[DeltaPush | sotw.Push] = []
        for push in self.sotw.plan(snap):
            holds = self.holds[push.type_url]
            # `push.resend`: assignments that warming clusters wait for, even if Envoy has them.
            changed = tuple(
                r for r in push.resources if holds.get(r.name) != r.digest or r.name in push.resend
            )
            wanted = {r.name for r in push.resources}
            removed = tuple(sorted(n for n in holds if n not in wanted))
            # Envoy's initial fetch of a type waits for a first response, even an empty one.
            first = not self.sotw.types[push.type_url].sent_nonce
            out.append(DeltaPush(push, changed, removed) if changed or removed or first else push)
        return out

    def sent(self, delta: DeltaPush, nonce: str) -> None:
        """`delta` went out with `nonce`: Envoy applies it on receipt."""
        self.sotw.sent(delta.push, nonce)
        self.holds[delta.type_url] = {r.name: r.digest for r in delta.push.resources}

    def held(self, push: sotw.Push) -> None:
        self.sotw.held(push)
