"""Durations, addresses and stat prefixes."""

from __future__ import annotations

import pytest

from kubelb.xds.translate import common


@pytest.mark.parametrize(
    ("name", "prefix"),
    [
        ("tenant-a-web-ep-0-port-80-tcp", "tenant-a-web-ep-0-port-80-tcp"),
        ("ns.name/port:80", "ns_name_port_80"),
        ("Mixed_Case-ok", "Mixed_Case-ok"),
        ("", "_"),
    ],
)
def test_stat_prefix(name: str, prefix: str) -> None:
    assert common.stat_prefix(name) == prefix


@pytest.mark.parametrize(
    ("seconds", "text"), [(5, "5s"), (0.25, "0.250s"), (0, "0s"), (3600, "3600s")]
)
def test_duration(seconds: float, text: str) -> None:
    assert common.duration(seconds).ToJsonString() == text


@pytest.mark.parametrize(
    ("host", "normal"),
    [
        ("0:0:0:0:0:0:0:1", "::1"),
        ("::", "::"),
        ("FD00::A", "fd00::a"),
        ("10.0.0.1", "10.0.0.1"),
        ("Backend.Example.com.", "backend.example.com"),
    ],
)
def test_normalize_host(host: str, normal: str) -> None:
    assert common.normalize_host(host) == normal


def test_socket_address_marks_udp() -> None:
    assert common.socket_address("::", 53, udp=True).socket_address.protocol == 1
    assert common.socket_address("::", 53).socket_address.protocol == 0
