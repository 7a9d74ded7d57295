"""Which LoadBalancer port is which, and which endpoint port it forwards to. Pure.

A LoadBalancer port is known by its name (its number when unnamed) and its protocol: `port_key`.
The port allocator keys listener ports on it, the IR builder places listeners by it and the
LoadBalancer status records it, so reordering `spec.ports` never moves a port.

Pairing (upstream KubeLB): within each endpoints entry, a named LoadBalancer port forwards to the
endpoint port of the same name and protocol, an unnamed one to the endpoint port at its own
position in `spec.ports` (KubeLB #91). Every entry is paired on its own: an entry that lacks the
port is skipped, the others still serve it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from kubelb.api import common, loadbalancer as api_lb

# (port name, or the port number when unnamed; protocol)
PortKey = tuple[str, str]

MIN_PORT = 1
MAX_PORT = 65535


def port_key(port: api_lb.LoadBalancerPort) -> PortKey:
    return (port.name or str(port.port), str(port.protocol))


def valid_port(port: int) -> bool:
    return MIN_PORT <= port <= MAX_PORT


class Unpaired(StrEnum):
    """Why a LoadBalancer port has no endpoint port in one endpoints entry."""

    MISSING = "Missing"  # no port of that name, or none at that position
    OUT_OF_RANGE = "OutOfRange"  # the endpoint port is outside 1-65535
    PROTOCOL_MISMATCH = "ProtocolMismatch"  # the endpoint port speaks the other protocol


@dataclass(frozen=True, slots=True)
class Pairing:
    """The endpoint port a LoadBalancer port found in one entry; `problem` None means usable."""

    candidate: common.EndpointPort | None
    problem: Unpaired | None

    @property
    def target(self) -> int | None:
        """The endpoint port number to forward to, None when unpaired."""
        if self.problem is not None or self.candidate is None:
            return None
        return self.candidate.port


def pair(
    port: api_lb.LoadBalancerPort, position: int, entry: common.LoadBalancerEndpoints
) -> Pairing:
    """The endpoint port of `entry` that `port` (at `position` in `spec.ports`) forwards to."""
    candidate = _candidate(port, position, entry.ports)
    if candidate is None:
        return Pairing(None, Unpaired.MISSING)
    if not valid_port(candidate.port):
        return Pairing(candidate, Unpaired.OUT_OF_RANGE)
    if candidate.protocol != port.protocol:
        return Pairing(candidate, Unpaired.PROTOCOL_MISMATCH)
    return Pairing(candidate, None)


def upstream_port(
    port: api_lb.LoadBalancerPort,
    position: int,
    endpoints: Sequence[common.LoadBalancerEndpoints],
) -> int | None:
    """The endpoint port of the first entry that pairs `port`: the one the LoadBalancer status
    reports as `upstreamTargetPort`. None when no entry pairs it."""
    for entry in endpoints:
        target = pair(port, position, entry).target
        if target is not None:
            return target
    return None


def _candidate(
    port: api_lb.LoadBalancerPort, position: int, ports: Sequence[common.EndpointPort]
) -> common.EndpointPort | None:
    if not port.name:
        return ports[position] if position < len(ports) else None
    named = [p for p in ports if p.name == port.name]
    # Same name and protocol first: "dns" over TCP and over UDP are two different ports.
    same = next((p for p in named if p.protocol == port.protocol), None)
    return same if same is not None else next(iter(named), None)
