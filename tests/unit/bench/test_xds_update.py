"""The wire-cost bench drives both ADS flavours to the same end state; delta sends less."""

from __future__ import annotations

import pytest

from bench import xds_snapshot, xds_update


@pytest.mark.parametrize("change", ["add one LoadBalancer", "move one endpoint"])
def test_both_flavours_converge_and_delta_sends_only_the_change(change: str) -> None:
    config = xds_snapshot.lb_config(40, 2)
    before = xds_snapshot.build(config)
    after = xds_snapshot.build(xds_update.changes(config)[change])
    envoys = {}
    for flavour in xds_update.FLAVOURS:
        envoy = xds_update.SimulatedEnvoy(flavour)
        envoy.converge(before)
        envoy.bytes = 0
        envoy.converge(after)
        sotw_state = envoy.state.sotw if envoy.delta else envoy.state
        assert sotw_state.routing_settled(after)
        assert sotw_state.clusters_ready(after)
        envoys[flavour] = envoy
    assert 0 < envoys["delta"].bytes * 20 < envoys["sotw"].bytes
