"""Our ADS server programming a real Envoy, with traffic to real backends on 127.0.0.1."""

from __future__ import annotations

import asyncio

import pytest

from kubelb.envoy import supervisor
from tests.integration.xds import backends
from tests.integration.xds.conftest import NODE, Xds, answers, config, envoy_spec, tcp_lb, udp_lb

pytestmark = pytest.mark.integration


async def test_tcp_and_udp_traffic(xds: Xds, envoys: supervisor.EnvoySupervisor) -> None:
    tcp_port, udp_port = backends.free_port(), backends.free_port()
    async with backends.TCPEcho("a") as tcp, backends.UDPEcho("u") as udp:
        xds.publish(config(tcp_lb("tcp", tcp_port, tcp.port), udp_lb("udp", udp_port, udp.port)))
        await envoys.ensure(NODE, envoy_spec(xds.port))
        async with asyncio.timeout(30):
            await envoys.wait_ready(NODE)
        await backends.eventually(lambda: answers(tcp_port, "a:"), what="TCP through Envoy")

        async def udp_ok() -> bool:
            return await backends.udp_roundtrip(udp_port, "hi") == "u:hi"

        await backends.eventually(udp_ok, what="UDP through Envoy")
        assert xds.cache.status(NODE).in_sync()
