"""UDP proxying through the built-in data plane against real UDP backends on 127.0.0.1."""

from __future__ import annotations

import pytest

from kubelb.ir import proxy
from tests.integration.dataplane import backends, irs, scenarios
from tests.integration.dataplane.conftest import eventually

pytestmark = pytest.mark.integration

UDP = proxy.Protocol.UDP


@pytest.fixture
async def udp_backends():
    servers = [await backends.UDPBackend(f"u{i}").start() for i in range(2)]
    yield servers
    for s in servers:
        await s.stop()


def sessions(dp) -> int:
    return int(dp.status()["listeners"][0]["sessions"])


async def test_sessions_per_client_spread_over_endpoints(start_dataplane, udp_backends):
    config = irs.l4(UDP, udp_backends)
    await start_dataplane(config)
    await scenarios.udp_sessions(irs.address(config), udp_backends)
    # Each client's datagrams used one upstream socket: one peer per client per backend.
    assert sum(len(s.peers) for s in udp_backends) == 4


async def test_idle_sessions_expire(start_dataplane, udp_backends):
    config = irs.l4(UDP, udp_backends[:1])
    dp = await start_dataplane(config, udp_session_timeout_seconds=0.2)
    client = scenarios.udp_client()
    try:
        assert await scenarios.udp_exchange(irs.address(config), b"hi", sock=client) == b"u0:hi"
        assert sessions(dp) == 1
        await eventually(lambda: sessions(dp) == 0, what="idle session swept")
    finally:
        client.close()


async def test_session_table_is_bounded(start_dataplane, udp_backends):
    config = irs.l4(UDP, udp_backends[:1])
    dp = await start_dataplane(config, udp_max_sessions=2)
    clients = [scenarios.udp_client() for _ in range(4)]
    try:
        for c in clients:
            assert await scenarios.udp_exchange(irs.address(config), b"x", sock=c) == b"u0:x"
            assert sessions(dp) <= 2
        # The newest client still has its session.
        assert await scenarios.udp_exchange(irs.address(config), b"y", sock=clients[-1]) == b"u0:y"
    finally:
        for c in clients:
            c.close()


async def test_persistence_keeps_a_client_ip_on_one_endpoint(start_dataplane, udp_backends):
    config = irs.l4(UDP, udp_backends, source_ip_persistence=True)
    await start_dataplane(config)
    names = set()
    clients = [scenarios.udp_client() for _ in range(4)]
    try:
        for c in clients:
            answer = await scenarios.udp_exchange(irs.address(config), b"p", sock=c)
            names.add(answer.split(b":")[0])
    finally:
        for c in clients:
            c.close()
    # Every client has the same source IP (127.0.0.1), so all land on one backend.
    assert len(names) == 1
