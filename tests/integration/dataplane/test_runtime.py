"""DataPlane lifecycle: config validation, bind errors, listener replacement and workers."""

from __future__ import annotations

import dataclasses
import logging
import socket

import pytest

from kubelb.ir import proxy
from tests.integration.dataplane import backends, irs, scenarios
from tests.integration.dataplane.conftest import eventually

pytestmark = pytest.mark.integration

TCP = proxy.Protocol.TCP


@pytest.fixture
async def pair():
    tcp_server = await backends.TCPBackend("t0").start()
    web = await backends.HTTPBackend("h0").start()
    yield tcp_server, web
    await tcp_server.stop()
    await web.stop()


async def test_invalid_config_keeps_the_last_good_one(start_dataplane, pair, caplog):
    config = irs.l4(TCP, pair[:1])
    dp = await start_dataplane(config)
    broken = dataclasses.replace(
        config, listeners=(dataclasses.replace(config.listeners[0], clusters=("missing",)),)
    )
    with caplog.at_level(logging.ERROR, logger="kubelb.dataplane.runtime"):
        await dp.apply(broken)
    assert "refers to unknown cluster 'missing'" in caplog.text
    assert dp.status()["config_errors"]
    assert await scenarios.tcp_greeting(irs.address(config)) == "t0"


async def test_a_port_in_use_fails_one_listener_only(start_dataplane, pair, caplog):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        busy = irs.l4(TCP, pair[:1], port=taken.getsockname()[1], name="busy")
        free = irs.l4(TCP, pair[:1], name="free")
        config = dataclasses.replace(
            busy, listeners=busy.listeners + free.listeners, clusters=busy.clusters + free.clusters
        )
        with caplog.at_level(logging.ERROR, logger="kubelb.dataplane.listeners"):
            dp = await start_dataplane(config)
        assert "listener busy" in caplog.text
        bound = {li["name"]: li["bound"] for li in dp.status()["listeners"]}
        assert bound == {"busy": False, "free": True}
        assert await scenarios.tcp_greeting(irs.address(free)) == "t0"
    finally:
        taken.close()


async def test_listener_can_change_protocol_on_the_same_port(start_dataplane, pair):
    tcp_config = irs.l4(TCP, pair[:1])
    dp = await start_dataplane(tcp_config)
    port = tcp_config.listeners[0].port
    assert await scenarios.tcp_greeting(irs.address(tcp_config)) == "t0"
    http_config = irs.http([("web", pair[1:], (), "/")], port=port)
    await dp.apply(http_config)
    status, headers, _ = await scenarios.http_request(irs.address(http_config), scenarios.get("/"))
    assert (status, headers["x-backend"]) == (200, "h0")


async def test_apply_is_idempotent(start_dataplane, pair):
    config = irs.l4(TCP, pair[:1])
    dp = await start_dataplane(config)
    before = dp.status()
    await dp.apply(config)
    assert dp.status() == before


async def test_workers_share_the_listeners(start_dataplane, pair):
    config = irs.http([("web", pair[1:], (), "/")])
    dp = await start_dataplane(config, workers=2)
    addr = irs.address(config)
    for _ in range(10):
        status, _, _ = await scenarios.http_request(addr, scenarios.get("/"))
        assert status == 200
    status = dp.status()
    assert status["workers"] == 2
    assert len(status["per_worker"]) == 2
    assert [li["bound"] for li in status["listeners"]] == [True]
    await eventually(lambda: dp.status()["connections"] == 0, what="connections closed")
