"""Envoy's restart backoff is bounded per cause, on a real Envoy: a tenant that keeps killing its
Envoy gets it back within 2 s every time, while failures of Envoy's own grow towards the long
backoff (`supervisor.RESTART_BACKOFF`) on a count of their own. Delays are read from what the
supervisor plans (its log line), never timed."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import re
import signal
from pathlib import Path

import pytest

from kubelb.envoy import supervisor
from tests.integration.xds import backends
from tests.integration.xds.conftest import NODE, Xds, config, tcp_lb
from tests.support.processes import held_envoy

pytestmark = pytest.mark.integration

KILLS = 6  # unbounded, the 6th kill in a row would wait 0.5 s * 2**5 = 16 s
# The longest wait after a kill from outside (it grew to 30 s when a tenant kept killing Envoy).
KILL_BOUND = 2.0
PLANNED = re.compile(r": (.+); restarting in ([0-9.]+) s")


async def test_kills_restart_quickly_every_time_and_failures_back_off_on_their_own(
    xds: Xds, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="kubelb.envoy.supervisor")
    wrapper, marker = held_envoy(tmp_path)
    envoys = supervisor.EnvoySupervisor(tmp_path / "envoy", envoy_binary=wrapper, detach=True)
    try:
        async with backends.TCPEcho("up") as backend:
            port = backends.free_port()
            xds.publish(config(tcp_lb("up", port, backend.port)))
            await envoys.ensure(NODE, xds.spec())
            async with asyncio.timeout(30):
                await envoys.wait_ready(NODE)
            for kill in range(KILLS):
                victim = _envoy(envoys)
                os.kill(victim, signal.SIGKILL)
                await backends.eventually(
                    functools.partial(_back, envoys, kill + 1),
                    what=f"Envoy back after kill {kill + 1}",
                )
                assert _envoy(envoys) != victim
                assert (await backends.tcp_roundtrip(port)).startswith("up")
            exit_ = envoys.last_exit(NODE)
            assert exit_ is not None
            assert exit_.killed, exit_.describe()
            kills = _planned(caplog)
            assert [cause for cause, _ in kills] == ["signal SIGKILL"] * KILLS, kills
            assert max(delay for _, delay in kills) <= KILL_BOUND, kills

            # Envoy failing on its own (exit 1 at every start) backs off further, from its own
            # first step: the kills before do not count.
            caplog.clear()
            marker.touch()
            os.kill(_envoy(envoys), signal.SIGKILL)
            await backends.eventually(
                lambda: _true(len(_planned(caplog)) >= 5), what="four failed starts"
            )
            failed = [delay for cause, delay in _planned(caplog) if cause == "exit code 1"]
            assert failed[0] == supervisor.RESTART_BACKOFF.delay(0), _planned(caplog)
            assert max(failed) > KILL_BOUND, failed
            assert not envoys.ready(NODE)
            marker.unlink()
            await backends.eventually(lambda: _true(envoys.ready(NODE)), what="Envoy back")
    finally:
        await envoys.close()


def _planned(caplog: pytest.LogCaptureFixture) -> list[tuple[str, float]]:
    """(cause, planned delay) of every restart the supervisor logged."""
    found = [PLANNED.search(r.getMessage()) for r in caplog.records]
    return [(m.group(1), float(m.group(2))) for m in found if m]


def _envoy(envoys: supervisor.EnvoySupervisor) -> int:
    """Envoy itself: the child of its shim."""
    shim = envoys.pid(NODE)
    assert shim is not None
    (child,) = Path(f"/proc/{shim}/task/{shim}/children").read_text().split()
    return int(child)


async def _back(envoys: supervisor.EnvoySupervisor, restarts: int) -> bool:
    return envoys.restarts(NODE) == restarts and envoys.ready(NODE)


async def _true(value: bool) -> bool:
    return value
