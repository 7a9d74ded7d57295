"""Config and Tenant: defaults, bounds, enums, the topology transition rule, naming helpers."""

from __future__ import annotations

from typing import Any

import pytest

from kubelb.api import config, errors, registry, tenant


def config_doc(**envoy: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kubelb.k8c.io/v1alpha1",
        "kind": "Config",
        "metadata": {"name": config.CONFIG_NAME, "namespace": "kubelb"},
        "spec": {"envoyProxy": envoy},
    }


def causes(doc: dict[str, Any]) -> list[str]:
    with pytest.raises(errors.APIValidationError) as info:
        registry.parse(doc)
    return [str(c) for c in info.value.causes]


def test_absent_config_has_upstream_defaults() -> None:
    c = config.Config()
    proxy = c.spec.envoy_proxy
    assert proxy.topology is config.Topology.SHARED
    assert proxy.replicas == 3
    assert not proxy.use_daemonset
    assert proxy.graceful_shutdown.drain_timeout == "60s"
    assert proxy.graceful_shutdown.min_drain_duration == "5s"
    assert proxy.graceful_shutdown.termination_grace_period_seconds == 300
    assert proxy.header_limits.max_request_headers_kb is None
    assert config.DEFAULT_MAX_REQUEST_HEADERS_KB == 8192
    assert config.DEFAULT_MAX_REQUEST_HEADERS_COUNT == 4096
    assert not c.spec.load_balancer.disable
    assert c.spec.dns.use_dns_annotations is False


@pytest.mark.parametrize("topology", ["shared", "dedicated", "global"])
def test_deprecated_topologies_behave_as_shared(topology: str) -> None:
    c = registry.parse_as(config.Config, config_doc(topology=topology))
    assert c.spec.envoy_proxy.topology == topology
    assert c.spec.envoy_proxy.effective_topology is config.Topology.SHARED


@pytest.mark.parametrize(
    ("envoy", "expected"),
    [
        pytest.param(
            {"replicas": 0},
            "spec.envoyProxy.replicas: Invalid value: 0: should be >= 1",
            id="replicas-min",
        ),
        pytest.param(
            {"topology": "perLB"},
            'spec.envoyProxy.topology: Unsupported value: "perLB": '
            'supported values: "shared", "dedicated", "global"',
            id="topology-enum",
        ),
        pytest.param(
            {"gracefulShutdown": {"terminationGracePeriodSeconds": 29}},
            "spec.envoyProxy.gracefulShutdown.terminationGracePeriodSeconds: "
            "Invalid value: 29: should be >= 30",
            id="grace-min",
        ),
        pytest.param(
            {"gracefulShutdown": {"drainTimeout": "soon"}},
            "spec.envoyProxy.gracefulShutdown.drainTimeout: "
            "Invalid value: invalid duration 'soon': want e.g. 60s, 1m30s, 500ms",
            id="duration-format",
        ),
        pytest.param(
            {"headerLimits": {"maxRequestHeadersKb": 8193}},
            "spec.envoyProxy.headerLimits.maxRequestHeadersKb: "
            "Invalid value: 8193: should be <= 8192",
            id="request-headers-kb-max",
        ),
        pytest.param(
            {"headerLimits": {"maxResponseHeadersKb": 0}},
            "spec.envoyProxy.headerLimits.maxResponseHeadersKb: Invalid value: 0: should be >= 1",
            id="response-headers-kb-min",
        ),
        pytest.param(
            {"headerLimits": {"maxRequestHeadersCount": 0}},
            "spec.envoyProxy.headerLimits.maxRequestHeadersCount: Invalid value: 0: should be >= 1",
            id="request-headers-count-min",
        ),
        pytest.param(
            {"overloadManager": {"maxHeapSizeBytes": -1}},
            "spec.envoyProxy.overloadManager.maxHeapSizeBytes: Invalid value: -1: should be >= 0",
            id="heap-non-negative",
        ),
    ],
)
def test_config_validation(envoy: dict[str, Any], expected: str) -> None:
    assert causes(config_doc(**envoy)) == [expected]


@pytest.mark.parametrize(
    ("before", "after", "allowed"),
    [
        ("shared", "shared", True),
        ("dedicated", "shared", True),
        ("global", "shared", True),
        ("shared", "dedicated", False),
        ("shared", "global", False),
        ("dedicated", "global", False),
        ("global", "dedicated", False),
    ],
)
def test_topology_transition_rule(before: str, after: str, allowed: bool) -> None:
    old = registry.parse_as(config.Config, config_doc(topology=before))
    new = registry.parse_as(config.Config, config_doc(topology=after))
    if allowed:
        config.check_update(old, new)
        return
    with pytest.raises(errors.APIValidationError) as info:
        config.check_update(old, new)
    assert str(info.value) == (
        f'Config default is invalid: spec.envoyProxy.topology: Invalid value: "{after}": '
        "topology is immutable; the only allowed change is from dedicated or global "
        "(deprecated) to shared"
    )


def test_config_name_is_not_a_schema_rule() -> None:
    doc = config_doc()
    doc["metadata"]["name"] = "other"
    assert registry.parse_as(config.Config, doc).name == "other"


def test_tenant_namespace_naming() -> None:
    assert tenant.namespace_for("acme") == "tenant-acme"
    assert tenant.tenant_name_for("tenant-acme") == "acme"
    t = tenant.Tenant(metadata={"name": "acme"})
    assert t.namespace_name == "tenant-acme"
    assert t.namespace == ""  # cluster-scoped


def test_tenant_validation() -> None:
    doc = {
        "apiVersion": "kubelb.k8c.io/v1alpha1",
        "kind": "Tenant",
        "metadata": {"name": "acme"},
        "spec": {"envoyProxy": {"replicas": 0}, "dns": {"allowExplicitHostnames": "maybe"}},
        "status": {"phase": "Gone"},
    }
    assert causes(doc) == [
        "spec.envoyProxy.replicas: Invalid value: 0: should be >= 1",
        'spec.dns.allowExplicitHostnames: Invalid value: "maybe": must be of type boolean',
        'status.phase: Unsupported value: "Gone": '
        'supported values: "Pending", "Ready", "Failed", "Terminating"',
    ]
