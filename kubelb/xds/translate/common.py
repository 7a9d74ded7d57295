"""Small protobuf builders shared by the translator modules: durations, Any packing, socket
addresses and stat prefixes. Inputs are plain Python values; outputs are xds-protos messages."""

from __future__ import annotations

import functools
import ipaddress
import re
from typing import Any

from envoy.config.core.v3 import address_pb2
from google.protobuf import any_pb2, duration_pb2

# Envoy splits stat names on `.`; other punctuation would need escaping in Prometheus names.
_STAT_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


class TranslateError(ValueError):
    """The IR cannot be expressed as Envoy config; the message names the object and field."""


def duration(seconds: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromNanoseconds(round(seconds * 1_000_000_000))
    return d


def pack(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def socket_address(host: str, port: int, *, udp: bool = False) -> address_pb2.Address:
    """An Envoy address. IP literals are normalised (`::0` -> `::`) so equal addresses render
    equally; hostnames pass through for STRICT_DNS resolution."""
    protocol = address_pb2.SocketAddress.UDP if udp else address_pb2.SocketAddress.TCP
    return address_pb2.Address(
        socket_address=address_pb2.SocketAddress(
            protocol=protocol, address=normalize_host(host), port_value=port
        )
    )


@functools.lru_cache(maxsize=65536)
def normalize_host(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host.lower().rstrip(".")


def stat_prefix(name: str) -> str:
    """A stat prefix derived from a resource name: `.` would split the stat tree, and other
    punctuation is not portable to Prometheus, so both become `_`."""
    return _STAT_UNSAFE.sub("_", name) or "_"
