import pytest

from kubelb.api import config as api_config, tenant as api_tenant
from kubelb.manager import effective


def make_config(spec):
    return api_config.Config.model_validate(
        {"metadata": {"name": "default", "namespace": "kubelb"}, "spec": spec}
    )


def make_tenant(spec):
    return api_tenant.Tenant.model_validate({"metadata": {"name": "a"}, "spec": spec})


def test_builtin_defaults_without_config():
    eff = effective.resolve(None, None)
    assert eff.envoy_replicas == effective.DEFAULT_REPLICAS
    assert not eff.load_balancer_disabled
    assert eff.annotations == effective.AnnotationPolicy()


def test_tenant_overrides_config():
    cfg = make_config(
        {
            "envoyProxy": {"replicas": 2},
            "loadBalancer": {"class": "cfg"},
            "propagateAllAnnotations": True,
            "deniedAnnotations": ["x/*"],
        }
    )
    ten = make_tenant(
        {
            "envoyProxy": {"replicas": 5},
            "loadBalancer": {"class": "ten"},
            "propagatedAnnotations": {"a": ""},
        }
    )
    eff = effective.resolve(cfg, ten)
    assert eff.envoy_replicas == 5
    assert eff.load_balancer_class == "ten"
    # The policy comes from the Tenant as a unit; denied falls back to the Config's.
    assert not eff.annotations.propagate_all
    assert dict(eff.annotations.propagated) == {"a": ""}
    assert eff.annotations.denied == ("x/*",)


def test_either_level_can_disable_layer4():
    assert effective.resolve(
        make_config({"loadBalancer": {"disable": True}}), None
    ).load_balancer_disabled
    assert effective.resolve(
        None, make_tenant({"loadBalancer": {"disable": True}})
    ).load_balancer_disabled


def test_endpoint_cidrs_unset_everywhere_are_empty():
    assert effective.resolve(None, None).endpoint_cidrs == effective.EndpointCIDRs()


def test_tenant_endpoint_cidrs_replace_the_configs_list_by_list():
    cfg = make_config({"loadBalancer": {"allowedEndpointCIDRs": ["10.0.0.0/8"],
                                        "deniedEndpointCIDRs": ["10.9.0.0/16"]}})  # fmt: skip
    only_allowed = make_tenant({"loadBalancer": {"allowedEndpointCIDRs": ["192.168.0.0/16"]}})
    assert effective.resolve(cfg, only_allowed).endpoint_cidrs == effective.EndpointCIDRs(
        allowed=("192.168.0.0/16",), denied=("10.9.0.0/16",)
    )
    # An explicit empty list is set: it replaces the Config's.
    cleared = make_tenant({"loadBalancer": {"deniedEndpointCIDRs": []}})
    assert effective.resolve(cfg, cleared).endpoint_cidrs == effective.EndpointCIDRs(
        allowed=("10.0.0.0/8",), denied=()
    )
    assert effective.resolve(cfg, make_tenant({})).endpoint_cidrs == effective.EndpointCIDRs(
        allowed=("10.0.0.0/8",), denied=("10.9.0.0/16",)
    )


def test_a_config_with_a_malformed_cidr_does_not_validate():
    with pytest.raises(ValueError, match="not a CIDR"):
        make_config({"loadBalancer": {"deniedEndpointCIDRs": ["10.0.0.1/8"]}})
