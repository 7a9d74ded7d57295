"""Envoy killed with SIGKILL under traffic (the short version of `make chaos`'s scenario): the
supervisor starts a new Envoy, traffic through the LoadBalancer flows again, the failures stay
within the outage, and kubelb itself keeps running."""

from __future__ import annotations

import os
import signal

import pytest

from bench import chaos

pytestmark = pytest.mark.integration


async def test_envoy_kill_is_one_bounded_outage():
    async with chaos.serving("envoy") as (kubelb, port, _backend, root):
        async with chaos.Traffic(chaos.HOST, port) as traffic:
            await traffic.answered(10)
            (victim,) = chaos.envoy_pids(root)
            before = len(traffic.events)
            os.kill(victim, signal.SIGKILL)
            await chaos.until(lambda: bool(set(chaos.envoy_pids(root)) - {victim}))
            await traffic.answered(10)
            recovered = len(traffic.events)
            await traffic.answered(50)
        assert kubelb.process is not None
        assert kubelb.process.returncode is None
    # No failure before the kill, and none once traffic flowed through the new Envoy.
    assert all(name for _, name in traffic.events[:before])
    assert all(name for _, name in traffic.events[recovered:])
