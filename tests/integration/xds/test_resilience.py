"""Envoy never freezes or crash-loops: long log lines, configurations that kill it."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from kubelb.envoy import binary, logpipe, supervisor
from kubelb.util import backoff
from kubelb.xds import snapshot
from tests.integration.xds import backends
from tests.integration.xds.conftest import NODE, Xds, config, tcp_lb

pytestmark = pytest.mark.integration


def acked(xds: Xds, snap: snapshot.Snapshot) -> bool:
    status = xds.cache.status(NODE)
    return status.versions == snap.versions and status.in_sync()


async def test_a_log_line_over_64k_is_cut_and_envoy_keeps_logging(
    xds: Xds, envoys: supervisor.EnvoySupervisor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="kubelb.envoy.process")
    backend_port, port = backends.free_port(), backends.free_port()
    await envoys.ensure(NODE, xds.spec())
    xds.publish(config(tcp_lb("small", port, backend_port)))
    async with asyncio.timeout(30):
        await envoys.wait_ready(NODE)
    # Envoy logs every listener it adds by name: a 70 KiB name is a 70 KiB line, over the
    # 64 KiB that StreamReader.readline() allows. Then a burst of more such lines.
    for i in range(4):
        long = f"l{i}-" + "x" * (70 * 1024)
        snap = xds.publish(config(tcp_lb(long, port, backend_port)))
        await _acked_soon(xds, snap)
    last = xds.publish(config(tcp_lb("after", port, backend_port)))
    await backends.eventually(lambda: _true(acked(xds, last)), what="ACK after long lines")
    status, _ = await envoys.admin(NODE, "GET", "/ready")
    assert status == 200
    cut = [r.getMessage() for r in caplog.records if "bytes cut]" in r.getMessage()]
    assert cut
    assert all(len(m) < logpipe.MAX_LOG_LINE + 200 for m in cut)
    await backends.eventually(
        lambda: _true(any("'after'" in r.getMessage() for r in caplog.records)),
        what="Envoy's lines after the long ones to be logged",
    )


async def test_envoy_dying_of_a_new_config_falls_back_to_the_last_acked_one(
    xds: Xds, tmp_path: Path
) -> None:
    # Envoy under a file descriptor limit that a few hundred listeners exhaust: a wrapper
    # lowers it after the supervisor raised it (lowering our own hard limit is for good).
    wrapper = tmp_path / "envoy-300-files"
    wrapper.write_text(f'#!/bin/sh\nulimit -n 300\nexec {binary.find_envoy()} "$@"\n')
    wrapper.chmod(0o755)
    envoys = supervisor.EnvoySupervisor(
        tmp_path / "envoy",
        envoy_binary=wrapper,
        restart_backoff=backoff.Backoff(initial=0.2, cap=2.0),
        on_exit=lambda exit_: xds.cache.rollback(exit_.node_id),
    )
    try:
        async with backends.TCPEcho("good") as backend:
            port = backends.free_port()
            good = xds.publish(config(tcp_lb("good", port, backend.port)))
            await envoys.ensure(NODE, xds.spec(concurrency=2))
            async with asyncio.timeout(30):
                await envoys.wait_ready(NODE)
            await backends.eventually(lambda: _true(acked(xds, good)), what="good config ACK")
            first_pid = envoys.pid(NODE)
            many = [tcp_lb(f"many-{i}", backends.free_port(), backend.port) for i in range(400)]
            fatal = xds.publish(config(tcp_lb("good", port, backend.port), *many))
            await backends.eventually(
                lambda: _true(envoys.restarts(NODE) > 0), what="Envoy to die of the config"
            )
            exit_ = envoys.last_exit(NODE)
            assert exit_ is not None
            assert "Too many open files" in exit_.describe(), exit_
            assert xds.cache.get_snapshot(NODE) is good
            await backends.eventually(
                lambda: _true(envoys.ready(NODE) and acked(xds, good)),
                what="the restarted Envoy to run the last good config",
            )
            assert envoys.pid(NODE) != first_pid
            assert envoys.restart_cause(NODE) is None
            assert (await backends.tcp_roundtrip(port)).startswith("good")
            # The fatal config, published again, stays out; a changed one goes in.
            assert not xds.cache.set_snapshot(NODE, fatal)
            assert xds.cache.status(NODE).refused
            fixed = xds.publish(config(tcp_lb("good", port, backend.port), *many[:5]))
            await backends.eventually(lambda: _true(acked(xds, fixed)), what="fixed config ACK")
            assert xds.cache.status(NODE).refused is None
            assert envoys.restarts(NODE) == 1
    finally:
        await envoys.close()


async def _acked_soon(xds: Xds, snap: snapshot.Snapshot) -> None:
    await backends.eventually(lambda: _true(acked(xds, snap)), what="the snapshot's ACK")


async def _true(value: bool) -> bool:
    return value
