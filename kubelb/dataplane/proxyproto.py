"""PROXY protocol version 2 headers (haproxy.org/download/2.9/doc/proxy-protocol.txt, section 2.2).

Input: the client (source) and the address it connected to (destination). Output: the binary
header written to the upstream before any client byte, so the backend sees the client's address.
"""

from __future__ import annotations

import ipaddress
import struct

SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
_VERSION_PROXY = 0x21  # version 2, command PROXY
_VERSION_LOCAL = 0x20  # version 2, command LOCAL (no address block)
_TCP4 = 0x11
_TCP6 = 0x21
_UDP4 = 0x12
_UDP6 = 0x22


def v2_header(
    source: tuple[str, int] | None, destination: tuple[str, int] | None, *, stream: bool = True
) -> bytes:
    """The header for a connection from `source` to `destination` (LOCAL when unknown)."""
    if source is None or destination is None:
        return SIGNATURE + struct.pack("!BBH", _VERSION_LOCAL, 0, 0)
    src = ipaddress.ip_address(source[0])
    dst = ipaddress.ip_address(destination[0])
    if src.version != dst.version:
        # A v4 client on a dual-stack socket: the mapped form keeps both in one family.
        src, dst = _as_v6(src), _as_v6(dst)
    if src.version == 4:
        family = _TCP4 if stream else _UDP4
        body = src.packed + dst.packed + struct.pack("!HH", source[1], destination[1])
    else:
        family = _TCP6 if stream else _UDP6
        body = src.packed + dst.packed + struct.pack("!HH", source[1], destination[1])
    return SIGNATURE + struct.pack("!BBH", _VERSION_PROXY, family, len(body)) + body


def _as_v6(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> ipaddress.IPv6Address:
    if isinstance(ip, ipaddress.IPv6Address):
        return ip
    return ipaddress.IPv6Address(f"::ffff:{ip}")
