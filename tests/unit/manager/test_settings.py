from kubelb.api import config as api_config, tenant as api_tenant
from kubelb.manager import settings


def make_config(spec):
    return api_config.Config.model_validate(
        {"metadata": {"name": "default", "namespace": "kubelb"}, "spec": spec}
    )


def make_tenant(spec):
    return api_tenant.Tenant.model_validate({"metadata": {"name": "a"}, "spec": spec})


def test_builtin_defaults_without_config():
    eff = settings.effective(None, None)
    assert eff.envoy_replicas == settings.DEFAULT_REPLICAS
    assert not eff.load_balancer_disabled
    assert eff.annotations == settings.AnnotationPolicy()


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
    eff = settings.effective(cfg, ten)
    assert eff.envoy_replicas == 5
    assert eff.load_balancer_class == "ten"
    # The policy comes from the Tenant as a unit; denied falls back to the Config's.
    assert not eff.annotations.propagate_all
    assert dict(eff.annotations.propagated) == {"a": ""}
    assert eff.annotations.denied == ("x/*",)


def test_either_level_can_disable_layer4():
    assert settings.effective(
        make_config({"loadBalancer": {"disable": True}}), None
    ).load_balancer_disabled
    assert settings.effective(
        None, make_tenant({"loadBalancer": {"disable": True}})
    ).load_balancer_disabled
