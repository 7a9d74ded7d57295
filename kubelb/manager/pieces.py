"""Each LoadBalancer's IR piece, built once and shared by the LoadBalancer controller (the piece's
problems go into its status) and envoycp (its listeners and clusters go into the tenant's
snapshot).

A piece depends only on the LoadBalancer's name, spec and annotations, on its placement, on the
Addresses of its namespace and on the tenant's endpoint policy. One piece per LoadBalancer is kept
and handed out again while all of these are unchanged: the same parsed object, or another version of
it with the same uid, generation and annotations (our own status writes change none of them), an
equal placement and equal Addresses and an equal policy. A LoadBalancer that is deleted is
forgotten. An entry keeps only what identifies those inputs, not the parsed LoadBalancer: holding
the model a piece was built from would keep a second model of every LoadBalancer alive once its
status write is parsed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubelb.api import addresses as api_addresses, loadbalancer as api_lb
from kubelb.irbuild import endpointpolicy, loadbalancers as irbuild
from kubelb.kube import objects

Addresses = Mapping[str, api_addresses.Addresses]


@dataclass(frozen=True, slots=True)
class _Entry:
    built_from: tuple[Any, ...] | api_lb.LoadBalancer  # `_build_inputs` of the LoadBalancer
    placement: irbuild.Placement
    addresses: Addresses
    policy: endpointpolicy.EndpointPolicy | None
    piece: irbuild.Piece


class Pieces:
    def __init__(self) -> None:
        self._by_lb: dict[objects.ObjectKey, _Entry] = {}

    def get(
        self,
        lb: api_lb.LoadBalancer,
        placement: irbuild.Placement,
        addresses: Addresses,
        policy: endpointpolicy.EndpointPolicy | None = None,
    ) -> irbuild.Piece:
        """The LoadBalancer's piece at `placement`, with `addresses` (its namespace's Addresses
        keyed "namespace/name") and the tenant's endpoint `policy`."""
        key = objects.ObjectKey(lb.namespace, lb.name)
        known = self._by_lb.get(key)
        built_from = _build_inputs(lb)
        if (
            known is not None
            and _same(known.built_from, lb, built_from)
            and known.placement == placement
            and known.addresses == addresses
            and known.policy == policy
        ):
            return known.piece
        piece = irbuild.build_load_balancer(lb, placement, addresses, policy)
        self._by_lb[key] = _Entry(built_from, placement, addresses, policy, piece)
        return piece

    def forget(self, key: objects.ObjectKey) -> None:
        self._by_lb.pop(key, None)

    def __len__(self) -> int:
        return len(self._by_lb)


def _same(known: tuple[Any, ...] | api_lb.LoadBalancer, lb: api_lb.LoadBalancer,
          built_from: tuple[Any, ...] | api_lb.LoadBalancer) -> bool:  # fmt: skip
    return known is lb or (isinstance(built_from, tuple) and known == built_from)


def _build_inputs(lb: api_lb.LoadBalancer) -> tuple[Any, ...] | api_lb.LoadBalancer:
    """What makes a piece built from `lb` the piece of another version of it: uid, generation (the
    API server bumps it on every spec change; status and labels do not count), name and
    annotations. Without a uid or a generation, only the very same object is known to be."""
    meta = lb.metadata
    if meta.uid is None or meta.generation is None:
        return lb
    return (meta.uid, meta.generation, meta.name, meta.annotations)
