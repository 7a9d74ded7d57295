"""Envoy listener port allocation for one tenant. Pure: no I/O, no clock, no randomness.

Input: the ports each LoadBalancer needs (keyed by port name and protocol, never by list index)
and the ports already recorded in LoadBalancer statuses (`status.service.ports[].targetPort`).
Output: a port per (LoadBalancer, port key), stable across restarts.

Why this shape (KubeLB #409, #91): upstream kept allocations in memory, picked random ports and
rebuilt the table from statuses, so a restart while statuses were stale could hand out a port
twice or scramble a multi-port mapping. Here a recorded port always wins, duplicates are healed
deterministically (the first owner in key order keeps the port), and a new port is found by
probing from a hash of its identity, so even an allocation that never reached a status comes
out the same on the next run.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from kubelb.api import ports as api_ports

RANGE_START = 10000
RANGE_END = 65535  # exclusive, as upstream
# Envoy's own ports in our bootstrap (admin, stats, readiness, health, shutdown manager).
RESERVED = frozenset({9001, 19001, 19002, 19003, 19004})


class PortsExhaustedError(RuntimeError):
    """Every port in the range is taken for this tenant."""


@dataclass(frozen=True, slots=True)
class Allocation:
    ports: Mapping[str, Mapping[api_ports.PortKey, int]]  # LB name -> port key -> listener port
    healed: int  # recorded ports that had to move because another owner had them


def allocate(
    wanted: Mapping[str, Iterable[api_ports.PortKey]],
    recorded: Mapping[str, Mapping[api_ports.PortKey, int]],
    *,
    start: int = RANGE_START,
    end: int = RANGE_END,
    reserved: frozenset[int] = RESERVED,
) -> Allocation:
    """Give every wanted (LB, port key) a listener port unique within the tenant."""
    used: dict[int, tuple[str, api_ports.PortKey]] = {}
    result: dict[str, dict[api_ports.PortKey, int]] = {lb: {} for lb in wanted}
    pending: list[tuple[str, api_ports.PortKey]] = []
    healed = 0

    for lb in sorted(wanted):
        for key in sorted(set(wanted[lb])):
            port = recorded.get(lb, {}).get(key)
            if port is None:
                pending.append((lb, key))
            elif start <= port < end and port not in reserved and port not in used:
                used[port] = (lb, key)
                result[lb][key] = port
            else:
                healed += port in used
                pending.append((lb, key))

    span = end - start
    for lb, key in pending:
        first = start + _offset(lb, key, span)
        for step in range(span):
            port = start + (first - start + step) % span
            if port not in used and port not in reserved:
                break
        else:
            raise PortsExhaustedError(f"no free listener port in {start}-{end - 1}")
        used[port] = (lb, key)
        result[lb][key] = port
    return Allocation(ports=result, healed=healed)


@functools.lru_cache(maxsize=16384)
def _offset(lb: str, key: api_ports.PortKey, span: int) -> int:
    digest = hashlib.sha256(f"{lb}\x00{key[0]}\x00{key[1]}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % span
