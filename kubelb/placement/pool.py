"""Address pool and sticky address assignment for LoadBalancers served from one host.

Input: the pool (IPs and CIDRs), each LoadBalancer's key and the (port, transport) pairs it needs,
and the previous assignments. Output: an address per LoadBalancer, or the reason it has none.

Assignment is deterministic and sticky: an existing assignment is kept as long as its address is
still in the pool and its ports are still free there, so a restart or an unrelated change never
moves a LoadBalancer (MetalLB #2443). New LoadBalancers take the first address, in pool order,
where every port they need is free.

Reserved sockets (`Reservation`: kubelb's own xDS, probe, metrics and admin servers, each
Envoy's admin port) are taken before any LoadBalancer is placed, so no LoadBalancer ever shares a
socket with the hub: Envoy binds listeners with SO_REUSEPORT, and a listener on the xDS port would
take a share of Envoy's control connections. A wildcard reservation holds its port on every
address. A LoadBalancer kept off every address by a reservation is unplaced with `PortReserved`.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from kubelb.api import common as api_common, conditions as api_conditions

# (port, transport); TCP and UDP on the same port do not conflict.
PortNeed = tuple[int, str]

WILDCARDS = frozenset({"", "0.0.0.0", "::"})

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
class Reservation:
    """A socket the hub itself listens on; `address` "" (or 0.0.0.0, ::) means every address."""

    address: str
    port: int
    holder: str  # what listens there, for the message: "kubelb xDS server"
    transport: str = api_common.Protocol.TCP

    def covers(self, address: str) -> bool:
        return self.address in WILDCARDS or self.address == address


@dataclass(frozen=True, slots=True)
class Unplaced:
    """Why a LoadBalancer got no address. `reason` is a condition reason (CamelCase)."""

    reason: str
    message: str


# Prefixes a reservation's holder in the `taken` map: no LoadBalancer key starts with it.
_RESERVED = "\x00"
# Holds a socket a probe found shared with another process (SO_REUSEPORT).
_IN_USE = "\x01another process on this host, sharing the socket"

# (address, port, transport) -> False when a listener there would share another's socket.
Probe = Callable[[str, int, str], bool]


def unshared(address: str, port: int, transport: str) -> bool:
    """False when a listener on (address, port) would share its socket with another process:
    a holder bound with SO_REUSEPORT under our user (another kubelb's Envoy) refuses a plain
    bind but admits one with SO_REUSEPORT, and the kernel would split connections between the
    two. A holder that refuses both makes the data plane's own bind fail, which it reports."""
    if _binds(address, port, transport, reuse_port=False):
        return True
    return not _binds(address, port, transport, reuse_port=True)


def _binds(address: str, port: int, transport: str, *, reuse_port: bool) -> bool:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    kind = socket.SOCK_DGRAM if transport == api_common.Protocol.UDP else socket.SOCK_STREAM
    try:
        with socket.socket(family, kind) as probe:
            if kind == socket.SOCK_STREAM:  # a closing connection (TIME_WAIT) does not count
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            probe.bind((address, port))
    except OSError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class Assignment:
    addresses: Mapping[str, str]  # LoadBalancer key -> address
    unplaced: Mapping[str, Unplaced]  # LoadBalancer key -> why it has none


def assign(
    pool: Sequence[str],
    needs: Mapping[str, Sequence[PortNeed]],
    previous: Mapping[str, str],
    reserved: Iterable[Reservation] = (),
    probe: Probe | None = None,
) -> Assignment:
    """Give each LoadBalancer (key -> ports it needs) an address from `pool`.

    Previously assigned LoadBalancers are placed first, in key order, so they keep their address;
    a later newcomer can never displace them. Nothing is placed on a `reserved` socket, nor, for
    a new placement, on one `probe(address, port, transport)` finds held by another process.
    """
    taken: dict[tuple[str, int, str], str] = {}  # (address, port, transport) -> owner key
    reservations = tuple(reserved)
    for r in reservations:
        for address in pool:
            if r.covers(address):
                taken[(address, r.port, r.transport)] = _RESERVED + r.holder
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

    def placeable(address: str, ports: Sequence[PortNeed]) -> bool:
        if not _free(taken, address, ports):
            return False
        busy = [(p, t) for p, t in ports if probe is not None and not probe(address, p, t)]
        for port, transport in busy:
            taken[(address, port, transport)] = _IN_USE
        return not busy

    for key in fresh:
        found = next((a for a in pool if placeable(a, needs[key])), None)
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
    blocked = {(a, p, t): taken[(a, p, t)] for a in pool for p, t in ports if (a, p, t) in taken}
    reserved = {k: _holder(v) for k, v in blocked.items() if v.startswith(_RESERVED)}
    if reserved and all(any(k[0] == a for k in reserved) for a in pool):
        # Every address is refused for a hub socket: no other LoadBalancer leaving will help.
        sockets = sorted({f"{a}:{p}/{t} ({holder})" for (a, p, t), holder in reserved.items()})
        return Unplaced(
            reason=api_conditions.PORT_RESERVED,
            message="port reserved for kubelb itself on " + _first_five(sockets),
        )
    holders = sorted({f"{_holder(v)} ({a}:{p}/{t})" for (a, p, t), v in blocked.items()})
    if len(pool) == 1:
        return Unplaced(
            reason=api_conditions.PORT_CONFLICT,
            message=f"port already in use on {pool[0]} by " + ", ".join(holders),
        )
    return Unplaced(
        reason=api_conditions.ADDRESS_POOL_EXHAUSTED,
        message=f"no address in the pool of {len(pool)} has all ports free; taken by "
        + _first_five(holders),
    )


def _first_five(items: Sequence[str]) -> str:
    return ", ".join(items[:5]) + (f" and {len(items) - 5} more" if len(items) > 5 else "")


def _holder(owner: str) -> str:
    return owner.lstrip(_RESERVED + _IN_USE[0])
