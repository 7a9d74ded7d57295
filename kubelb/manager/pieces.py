"""Each LoadBalancer's IR piece, built once and shared by the LoadBalancer controller (the piece's
problems go into its status) and envoycp (its listeners and clusters go into the tenant's
snapshot).

A piece depends only on the LoadBalancer's name, spec and annotations, on its placement, on the
Addresses of its namespace and on the tenant's endpoint policy. One piece per LoadBalancer is kept
and handed out again while all of these are unchanged: the same parsed object, or another version of
it with the same uid, generation and annotations (our own status writes change none of them), an
equal placement and equal Addresses and an equal policy. A LoadBalancer that is deleted is
forgotten.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from kubelb.api import addresses as api_addresses, loadbalancer as api_lb
from kubelb.irbuild import endpointpolicy, loadbalancers as irbuild
from kubelb.kube import objects

Addresses = Mapping[str, api_addresses.Addresses]


@dataclass(frozen=True, slots=True)
class _Entry:
    lb: api_lb.LoadBalancer
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
        if (
            known is not None
            and _same_build_inputs(known.lb, lb)
            and known.placement == placement
            and known.addresses == addresses
            and known.policy == policy
        ):
            return known.piece
        piece = irbuild.build_load_balancer(lb, placement, addresses, policy)
        self._by_lb[key] = _Entry(lb, placement, addresses, policy, piece)
        return piece

    def forget(self, key: objects.ObjectKey) -> None:
        self._by_lb.pop(key, None)

    def __len__(self) -> int:
        return len(self._by_lb)


def _same_build_inputs(a: api_lb.LoadBalancer, b: api_lb.LoadBalancer) -> bool:
    """Whether a piece built from `a` is the piece of `b`. The API server bumps the generation on
    every spec change; status and labels do not count."""
    if a is b:
        return True
    ma, mb = a.metadata, b.metadata
    return (
        ma.uid is not None
        and ma.generation is not None
        and (ma.uid, ma.generation, ma.name) == (mb.uid, mb.generation, mb.name)
        and ma.annotations == mb.annotations
    )
