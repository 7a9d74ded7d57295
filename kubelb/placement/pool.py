"""Address pool and sticky address assignment for LoadBalancers served from one host.

Input: the pool (IPs and CIDRs), each LoadBalancer's key and the (port, transport) pairs it needs,
and the previous assignments. Output: an address per LoadBalancer, or the reason it has none.

Assignment is deterministic and sticky: an existing assignment is kept as long as its address is
still in the pool and its ports are still free there, so a restart or an unrelated change never
moves a LoadBalancer (MetalLB #2443). New LoadBalancers take the first address, in pool order,
where every port they need is free.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

# (port, transport); TCP and UDP on the same port do not conflict.
PortNeed = tuple[int, str]

# Expanding a pool beyond this many addresses is almost certainly a typo (e.g. a /8).
MAX_POOL_ADDRESSES = 65536


class PoolError(ValueError):
    """The pool specification is invalid; the message says which entry and why."""


def parse_pool(spec: str | Iterable[str]) -> tuple[str, ...]:
    """Parse a comma-separated list (or an iterable) of IPs and CIDRs into ordered unique IPs.

    A CIDR contributes its usable hosts (all addresses for /31, /32, /127 and /128).
    """
    entries = [e.strip() for e in spec.split(",")] if isinstance(spec, str) else list(spec)
    entries = [e for e in entries if e]
    if not entries:
        raise PoolError("the address pool is empty")
    out: list[str] = []
    seen: set[str] = set()
    for entry in entries:
        for address in _expand(entry):
            if address not in seen:
                seen.add(address)
                out.append(address)
                if len(out) > MAX_POOL_ADDRESSES:
                    raise PoolError(
                        f"the address pool has more than {MAX_POOL_ADDRESSES} addresses"
                    )
    return tuple(out)


def _expand(entry: str) -> list[str]:
    if "/" not in entry:
        try:
            return [str(ipaddress.ip_address(entry))]
        except ValueError:
            raise PoolError(f"{entry!r} is not an IP address or CIDR") from None
    try:
        network = ipaddress.ip_network(entry, strict=False)
    except ValueError:
        raise PoolError(f"{entry!r} is not a valid CIDR") from None
    if network.num_addresses > MAX_POOL_ADDRESSES:
        raise PoolError(f"{entry!r} has more than {MAX_POOL_ADDRESSES} addresses")
    hosts = list(network.hosts()) if network.num_addresses > 2 else list(network)
    return [str(h) for h in hosts]


@dataclass(frozen=True, slots=True)
class Unplaced:
    """Why a LoadBalancer got no address. `reason` is a condition reason (CamelCase)."""

    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class Assignment:
    addresses: Mapping[str, str]  # LoadBalancer key -> address
    unplaced: Mapping[str, Unplaced]  # LoadBalancer key -> why it has none


def assign(
    pool: Sequence[str],
    needs: Mapping[str, Sequence[PortNeed]],
    previous: Mapping[str, str],
) -> Assignment:
    """Give each LoadBalancer (key -> ports it needs) an address from `pool`.

    Previously assigned LoadBalancers are placed first, in key order, so they keep their address;
    a later newcomer can never displace them.
    """
    taken: dict[tuple[str, int, str], str] = {}  # (address, port, transport) -> owner key
    addresses: dict[str, str] = {}
    unplaced: dict[str, Unplaced] = {}
    pool_set = set(pool)

    sticky = sorted(k for k in needs if previous.get(k) in pool_set)
    fresh = sorted(k for k in needs if previous.get(k) not in pool_set)
    for key in sticky:
        address = previous[key]
        if _free(taken, address, needs[key]):
            _take(taken, address, needs[key], key)
            addresses[key] = address
        else:
            fresh.append(key)  # its old address is now contested: place it like a newcomer

    for key in fresh:
        found = next((a for a in pool if _free(taken, a, needs[key])), None)
        if found is None:
            unplaced[key] = _why_unplaced(pool, taken, needs[key])
            continue
        _take(taken, found, needs[key], key)
        addresses[key] = found
    return Assignment(addresses=addresses, unplaced=unplaced)


def _free(
    taken: Mapping[tuple[str, int, str], str], address: str, ports: Sequence[PortNeed]
) -> bool:
    return all((address, port, transport) not in taken for port, transport in ports)


def _take(
    taken: dict[tuple[str, int, str], str], address: str, ports: Sequence[PortNeed], key: str
) -> None:
    for port, transport in ports:
        taken[(address, port, transport)] = key


def _why_unplaced(
    pool: Sequence[str], taken: Mapping[tuple[str, int, str], str], ports: Sequence[PortNeed]
) -> Unplaced:
    holders = sorted(
        {f"{taken[(a, p, t)]} ({a}:{p}/{t})" for a in pool for p, t in ports if (a, p, t) in taken}
    )
    if len(pool) == 1:
        return Unplaced(
            reason="PortConflict",
            message=f"port already in use on {pool[0]} by " + ", ".join(holders),
        )
    shown = ", ".join(holders[:5]) + (f" and {len(holders) - 5} more" if len(holders) > 5 else "")
    return Unplaced(
        reason="AddressPoolExhausted",
        message=f"no address in the pool of {len(pool)} has all ports free; taken by {shown}",
    )
