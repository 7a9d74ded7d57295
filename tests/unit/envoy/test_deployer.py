"""The Config's overload manager applied to an Envoy spec (both deployers use it)."""

from __future__ import annotations

from kubelb.api import config as api_config
from kubelb.envoy import deployer


def overload(**fields: object) -> api_config.OverloadManager:
    return api_config.OverloadManager.model_validate(fields)


def test_disabled_leaves_the_spec_alone():
    spec = deployer.EnvoySpec()
    assert deployer.with_overload(spec, overload(maxHeapSizeBytes=5)) == spec


def test_enabled_sets_the_heap_limit_and_keeps_the_spec_cap_when_unset():
    spec = deployer.with_overload(deployer.EnvoySpec(), overload(enabled=True, maxHeapSizeBytes=7))
    assert spec.max_heap_size_bytes == 7
    assert spec.max_downstream_connections == deployer.EnvoySpec().max_downstream_connections


def test_enabled_connection_cap_replaces_the_spec_cap():
    chosen = overload(enabled=True, maxActiveDownstreamConnections=10)
    spec = deployer.with_overload(deployer.EnvoySpec(), chosen)
    assert (spec.max_downstream_connections, spec.max_heap_size_bytes) == (10, None)
