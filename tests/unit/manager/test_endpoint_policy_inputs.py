"""The endpoint policy a tenant's LoadBalancers are built with: the Tenant's lists over the
Config's, on top of the manager's base (its sockets and built-in denies)."""

from __future__ import annotations

from kubelb.api import config as api_config, tenant as api_tenant
from kubelb.irbuild import endpointpolicy
from kubelb.manager import effective, endpoints

BASE = endpoints.Base(
    hub=(endpointpolicy.hub_socket("127.0.0.1", 9443),),
    denied=endpointpolicy.parse_networks(["169.254.0.0/16"]),
)


def resolve(config_lb=None, tenant_lb=None) -> endpointpolicy.EndpointPolicy:
    cfg = api_config.Config.model_validate({"metadata": {"name": "default"},
                                            "spec": {"loadBalancer": config_lb or {}}})  # fmt: skip
    ten = api_tenant.Tenant.model_validate({"metadata": {"name": "a"},
                                            "spec": {"loadBalancer": tenant_lb or {}}})  # fmt: skip
    return endpoints.policy(BASE, effective.resolve(cfg, ten).endpoint_cidrs)


def test_config_lists_apply_to_every_tenant():
    policy = resolve({"deniedEndpointCIDRs": ["10.0.0.0/8"]})
    assert policy.refusal("10.1.1.1", 30080) is not None
    assert policy.refusal("192.0.2.1", 30080) is None
    assert policy.refusal("127.0.0.1", 9443) is not None  # the base stays


def test_a_tenant_list_replaces_the_configs():
    config = {"deniedEndpointCIDRs": ["10.0.0.0/8"], "allowedEndpointCIDRs": ["10.0.0.0/8"]}
    policy = resolve(config, {"allowedEndpointCIDRs": ["192.0.2.0/24"]})
    assert policy.refusal("192.0.2.1", 30080) is None
    assert policy.refusal("10.1.1.1", 30080) is not None  # the Config's deny still applies
    assert policy.refusal("198.51.100.1", 30080) is not None  # not in the Tenant's allow
    open_tenant = resolve(config, {"deniedEndpointCIDRs": []})
    assert open_tenant.refusal("10.1.1.1", 30080) is None
    assert open_tenant.refusal("169.254.169.254", 80) is not None  # built-in deny stays
