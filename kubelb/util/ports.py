"""Ports for servers that start after their port is chosen (Envoy's admin port, a test's backend).

A port found by binding port 0 comes from the kernel's ephemeral range and is free only until
someone else binds it. A test run with several worker processes gives each worker a range of its
own outside the ephemeral range (`confine`): no other worker, and no process binding port 0,
takes the port a worker has just chosen for a server it is about to start. Without `confine` a
port comes from the kernel, as any process binding port 0 gets one.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import threading
from collections.abc import Sequence
from pathlib import Path

LOOPBACK = "127.0.0.1"
TCP = (socket.SOCK_STREAM,)
_KERNEL_ATTEMPTS = 64
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")

_lock = threading.Lock()
_confined: range | None = None
_cursor = 0


def confine(low: int, high: int) -> None:
    """From now on this process hands out ports in [low, high) only, in turn."""
    global _confined, _cursor
    if not 0 < low < high <= 65536:
        raise ValueError(f"not a port range: [{low}, {high})")
    with _lock:
        _confined, _cursor = range(low, high), 0


def confined() -> range | None:
    """The range `confine` set, if any."""
    return _confined


def ephemeral_range() -> tuple[int, int]:
    """The kernel's ephemeral port range, both ends included (Linux's default if unreadable)."""
    try:
        low, high = EPHEMERAL_RANGE.read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def share(index: int, count: int, low: int, high: int) -> tuple[int, int]:
    """Worker `index` of `count`'s equal share [start, end) of the ports in [low, high)."""
    if not 0 <= index < count or high - low < count:
        raise ValueError(f"no share {index} of {count} in [{low}, {high})")
    size = (high - low) // count
    return low + index * size, low + (index + 1) * size


def free_port(*hosts: str, kinds: Sequence[int] = TCP) -> int:
    """A port that was free a moment ago on every one of `hosts` (default 127.0.0.1) for every
    socket kind in `kinds`; callers retry if it is taken since."""
    return free_ports(1, *hosts, kinds=kinds)[0]


def free_ports(count: int, *hosts: str, kinds: Sequence[int] = TCP) -> list[int]:
    """`count` different ports as `free_port` finds them: each is held until all are drawn."""
    with contextlib.ExitStack() as held:
        found: list[int] = []
        while len(found) < count:
            port, sockets = _take(hosts or (LOOPBACK,), kinds)
            for s in sockets:
                held.enter_context(s)
            found.append(port)
        return found


def _take(hosts: Sequence[str], kinds: Sequence[int]) -> tuple[int, list[socket.socket]]:
    """A port and the sockets bound to it, one per host and kind."""
    global _cursor
    with _lock:
        span = _confined
        for _ in range(len(span) if span is not None else _KERNEL_ATTEMPTS):
            port = 0
            if span is not None:
                port, _cursor = span[_cursor % len(span)], _cursor + 1
            sockets: list[socket.socket] = []
            try:
                for host in hosts:
                    for kind in kinds:
                        s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, kind)
                        sockets.append(s)
                        s.bind((host, port))
                        port = port or int(s.getsockname()[1])
            except OSError:
                for s in sockets:
                    s.close()
                continue
            return port, sockets
    where = f" in [{span.start}, {span.stop})" if span is not None else ""
    raise OSError(errno.EADDRINUSE, f"no free port{where} on {', '.join(hosts)}")
