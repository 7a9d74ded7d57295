"""A tenant's effective settings: what its Tenant sets overrides what the Config sets.

Pure. Input: the Config `default` (or None: built-in defaults, as upstream's manager runs without
one) and the tenant's Tenant object (or None). Output: one flat frozen `Effective` the reconcilers
read, so precedence is decided in exactly one place. Envoy replicas and resources, the
LoadBalancer class, the annotation settings and each endpoint CIDR list
(`spec.loadBalancer.allowedEndpointCIDRs`, `deniedEndpointCIDRs`) come from the Tenant when it
sets them; load balancing is disabled when either disables it; the rest of `spec.envoyProxy` is
the Config's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubelb.api import config as api_config, tenant as api_tenant

DEFAULT_REPLICAS = 3


@dataclass(frozen=True, slots=True)
class AnnotationPolicy:
    propagate_all: bool = False
    propagated: Mapping[str, str] = field(default_factory=dict)  # glob key -> "v1,v2" ("" = any)
    denied: tuple[str, ...] = ()
    defaults: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # kind -> annotations


@dataclass(frozen=True, slots=True)
class EndpointCIDRs:
    """The operator's endpoint CIDR lists for a tenant (the manager adds its built-in denies and
    the hub's own sockets, `kubelb.manager.endpoints`)."""

    allowed: tuple[str, ...] = ()  # empty: any address no deny names
    denied: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Effective:
    load_balancer_disabled: bool
    load_balancer_class: str | None
    envoy_replicas: int
    envoy_resources: Mapping[str, Any] | None
    envoy: api_config.EnvoyProxy
    annotations: AnnotationPolicy
    endpoint_cidrs: EndpointCIDRs = EndpointCIDRs()


def resolve(config: api_config.Config | None, tenant: api_tenant.Tenant | None) -> Effective:
    cfg = config.spec if config is not None else api_config.ConfigSpec()
    ten = tenant.spec if tenant is not None else None
    replicas = cfg.envoy_proxy.replicas
    resources = cfg.envoy_proxy.resources
    lb_class = cfg.load_balancer.class_name
    disabled = cfg.load_balancer.disable
    allowed = cfg.load_balancer.allowed_endpoint_cidrs
    denied = cfg.load_balancer.denied_endpoint_cidrs
    if ten is not None:
        if ten.load_balancer.allowed_endpoint_cidrs is not None:
            allowed = ten.load_balancer.allowed_endpoint_cidrs
        if ten.load_balancer.denied_endpoint_cidrs is not None:
            denied = ten.load_balancer.denied_endpoint_cidrs
        replicas = ten.envoy_proxy.replicas or replicas
        resources = ten.envoy_proxy.resources or resources
        lb_class = ten.load_balancer.class_name or lb_class
        disabled = disabled or ten.load_balancer.disable
    return Effective(
        load_balancer_disabled=disabled,
        load_balancer_class=lb_class,
        envoy_replicas=replicas,
        envoy_resources=resources,
        envoy=cfg.envoy_proxy,
        annotations=_annotation_policy(cfg, ten),
        endpoint_cidrs=EndpointCIDRs(tuple(allowed or ()), tuple(denied or ())),
    )


def _annotation_policy(
    cfg: api_config.AnnotationSettings, ten: api_config.AnnotationSettings | None
) -> AnnotationPolicy:
    # The propagation policy is taken as a unit from the Tenant when it sets either field;
    # denied and default annotations are each resolved on their own (upstream semantics).
    source = cfg
    if ten is not None and (
        ten.propagate_all_annotations is not None or ten.propagated_annotations is not None
    ):
        source = ten
    denied = ten.denied_annotations if ten and ten.denied_annotations is not None else None
    defaults = ten.default_annotations if ten and ten.default_annotations is not None else None
    return AnnotationPolicy(
        propagate_all=bool(source.propagate_all_annotations),
        propagated=dict(source.propagated_annotations or {}),
        denied=tuple(denied if denied is not None else cfg.denied_annotations or ()),
        defaults=dict(defaults if defaults is not None else cfg.default_annotations or {}),
    )
