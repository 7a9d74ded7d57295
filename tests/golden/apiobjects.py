"""KubeLB API objects -> IR the way each mode builds it, for the golden suites `ir` and `chain`.

A case is a mapping:

    mode: manager        # or standalone; manager when omitted
    namespace: tenant-a  # manager: the tenant namespace, which is also the node id
    addressPool: ...     # standalone: like --address-pool (else the Config's annotation)
    objects: [...]       # LoadBalancer, Route, Addresses, Config, Tenant (apiVersion optional),
                         # and (manager) the tenant's synced Secrets (`v1` Secret)
    l7Address: ...       # manager: the address Route statuses report (bind: 0.0.0.0, own ports)
    now: ...             # manager: the time certificates are judged at (ISO 8601, UTC)

Manager mode follows the manager's data path with its own functions: the effective Config and
Tenant settings (`effective.resolve`; load balancing disabled -> an empty IR), the namespace's
port allocation (`ports.allocate`, recorded ports from any status in the case), the status the
LoadBalancer controller writes (`lbservice.desired_status_service_ports`), the placement the
Envoy control reads back from it (`infra.kubernetes.placement`) and the IR builder. Only the
namespace's own LoadBalancers and Addresses take part, as in the manager. The namespace's Routes
are built by `irbuild.routes` beside them (Ingress and Gateway API gates from Config and Tenant;
the LoadBalancers' ports as the ports L4 holds) and assembled into the same IR.

Standalone mode runs standalone mode's pipeline in memory (`standalone.translate`, as `kubelb
translate` does): the manager's reconcilers over the loaded objects, addresses from the pool,
each listener on its LoadBalancer's own port.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubelb.api import (
    addresses as api_addresses,
    conditions,
    config as api_config,
    loadbalancer as api_lb,
    meta,
    ports as api_ports,
    registry,
    route as api_route,
    tenant as api_tenant,
)
from kubelb.app import logs, standalone
from kubelb.infra import kubernetes as kubernetes_infra
from kubelb.ir import proxy
from kubelb.irbuild import loadbalancers as irbuild, routes as irroutes, routetls
from kubelb.manager import effective, lbservice, ports
from kubelb.placement import pool as address_pool

DEFAULT_NAMESPACE = "tenant-a"
DEFAULT_L7_ADDRESS = "198.51.100.7"
DEFAULT_NOW = "2026-01-01T00:00:00+00:00"


@dataclass(frozen=True)
class Built:
    config: proxy.ProxyConfig
    # "namespace/name" -> why part of it is not served (only LoadBalancers with problems)
    problems: Mapping[str, Sequence[str]] = field(default_factory=dict)
    # manager mode: "namespace/name" -> status.service.ports as the LoadBalancer controller writes
    status_ports: Mapping[str, Sequence[Mapping[str, Any]]] = field(default_factory=dict)
    # manager mode: Route name -> its outcome (served object's status, problems, refused)
    routes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


def build(case: Mapping[str, Any], scratch: Path) -> Built:
    objects = [_with_api_version(o) for o in case.get("objects") or ()]
    mode = case.get("mode", "manager")
    if mode == "manager":
        namespace = str(case.get("namespace", DEFAULT_NAMESPACE))
        now = datetime.datetime.fromisoformat(str(case.get("now", DEFAULT_NOW))).timestamp()
        secrets = [o for o in objects if o.get("kind") == "Secret"]
        return _manager(
            namespace,
            [o for o in objects if o.get("kind") != "Secret"],
            str(case.get("l7Address", DEFAULT_L7_ADDRESS)),
            dict(case.get("caBundles") or {}),
            routetls.index(namespace, secrets, now),
        )
    if mode == "standalone":
        return _standalone(objects, case.get("addressPool"), scratch)
    pytest.fail(f"unknown mode {mode!r} (manager or standalone)")


def _manager(
    namespace: str,
    raw: list[dict[str, Any]],
    l7_address: str,
    ca_bundles: dict[str, str],
    certificates: routetls.Certificates = routetls.NONE,
) -> Built:
    """`ca_bundles`: the `ca.crt` of synced tenant Secrets by "namespace/name" (what the
    manager finds by origin labels)."""
    parsed = [registry.parse(o) for o in raw]
    config = next(
        (
            o
            for o in parsed
            if isinstance(o, api_config.Config) and o.metadata.name == api_config.CONFIG_NAME
        ),
        None,
    )
    tenant = next(
        (
            o
            for o in parsed
            if isinstance(o, api_tenant.Tenant)
            and o.metadata.name == api_tenant.tenant_name_for(namespace)
        ),
        None,
    )
    lb_disabled = effective.resolve(config, tenant).load_balancer_disabled
    lbs = sorted(
        (
            o
            for o in parsed
            if isinstance(o, api_lb.LoadBalancer) and _in(o, namespace) and not lb_disabled
        ),
        key=lambda lb: lb.name,
    )
    addresses = {
        f"{namespace}/{o.metadata.name}": o
        for o in parsed
        if isinstance(o, api_addresses.Addresses) and _in(o, namespace)
    }
    allocation = ports.allocate(
        {lb.name: [api_ports.port_key(p) for p in lb.spec.ports] for lb in lbs},
        {lb.name: lbservice.recorded_ports(lb) for lb in lbs},
    )
    placed: list[tuple[api_lb.LoadBalancer, irbuild.Placement]] = []
    status_ports: dict[str, list[dict[str, Any]]] = {}
    for lb in lbs:
        written = lbservice.desired_status_service_ports(lb, allocation.ports[lb.name])
        status_ports[irbuild.lb_key(lb)] = written
        with_status = lb.model_copy(
            update={
                "status": api_lb.LoadBalancerStatus.model_validate({"service": {"ports": written}})
            }
        )
        placement = kubernetes_infra.placement(with_status)
        if placement is not None:
            placed.append((lb, placement))
    pieces = [irbuild.build_load_balancer(lb, p, addresses) for lb, p in placed]
    routes = sorted(
        (o for o in parsed if isinstance(o, api_route.Route) and _in(o, namespace)),
        key=lambda r: r.name,
    )
    outcomes: dict[str, dict[str, Any]] = {}
    if routes:
        built_routes = irroutes.build_tenant_routes(
            namespace,
            routes,
            addresses,
            address="0.0.0.0",
            status_address=l7_address,
            taken_ports={p.port for lb in lbs for p in lb.spec.ports},
            settings=_route_settings(config, tenant),
            ca_bundles=ca_bundles,
            certificates=certificates,
        )
        pieces.append(built_routes.piece)
        outcomes = {
            name: {
                "status": dict(o.served_status),
                **({"problems": list(o.problems)} if o.problems else {}),
                **({"refused": list(o.refused)} if o.refused else {}),
            }
            for name, o in built_routes.outcomes.items()
        }
    built = irbuild.assemble(namespace, pieces)
    problems = {key: found for key, found in built.problems.items() if found}
    return Built(built.config, problems, status_ports, outcomes)


def _route_settings(
    config: api_config.Config | None, tenant: api_tenant.Tenant | None
) -> irroutes.RouteSettings:
    specs = [o.spec for o in (config, tenant) if o is not None]
    return irroutes.RouteSettings(
        ingress_enabled=not any(s.ingress.disable for s in specs),
        gateway_api_enabled=not any(s.gateway_api.disable for s in specs),
        http=irroutes.http_options(effective.resolve(config, tenant).envoy),
    )


def _standalone(raw: list[dict[str, Any]], pool: str | None, scratch: Path) -> Built:
    case = scratch / "case.yaml"
    case.write_text(yaml.safe_dump_all(raw, sort_keys=False))
    pool_spec = address_pool.parse_pool(pool) if pool else None
    config, status = logs.run_loop(standalone.translate(case, pool_spec))

    def here(message: str) -> str:  # origins relative to the scratch folder
        return message.replace(f"{scratch}/", "")

    problems: dict[str, list[str]] = {}
    if status["errors"]:
        problems["(files)"] = [here(e) for e in status["errors"]]
    for lb in status["loadBalancers"]:
        (ready,) = lb["conditions"]
        if ready["reason"] != conditions.RECONCILED:
            problems[f"{lb['namespace']}/{lb['name']}"] = [
                here(f"Ready={ready['status']} {ready['reason']}: {ready['message']}")
            ]
    return Built(config, problems)


def _in(obj: meta.KubeObject, namespace: str) -> bool:
    return (obj.metadata.namespace or "default") == namespace


def _with_api_version(obj: Any) -> dict[str, Any]:
    if not isinstance(obj, dict):
        pytest.fail(f"objects must be mappings, got {obj!r}")
    return {"apiVersion": meta.API_VERSION, **obj}
