"""The Route controller's pure parts: which ports a tenant's entry requests, which settings gate
which kinds, the ports other Services hold at the entry's address, the entry Service, and the
Route status (lastTransitionTime kept while the condition holds, so rewriting an unchanged
status is no change)."""

from __future__ import annotations

from typing import Any

import pytest

from kubelb.api import config as api_config, route as api_route, tenant as api_tenant
from kubelb.infra import routeentry
from kubelb.irbuild import routes as irroutes
from kubelb.manager import effective, infrastructure, l7entry, propagation, routes, routestatus

NS = "tenant-a"
PROPAGATED = propagation.RECORD
JANUARY, FEBRUARY = "2026-01-01T00:00:00Z", "2026-02-02T00:00:00Z"


def route(kind: str, name: str = "r", **spec: Any) -> api_route.Route:
    resource = {"apiVersion": "x/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}
    return api_route.Route.model_validate({
        "metadata": {"name": f"uid-{name}", "namespace": "tenant-a"},
        "spec": {"endpoints": [{"addresses": [{"ip": "10.0.0.1"}]}],
                 "source": {"kubernetes": {"resource": resource}}},
    })  # fmt: skip


def gateway(*ports: int, name: str = "kubelb") -> api_route.Route:
    listeners = [{"name": f"l{p}", "port": p, "protocol": "HTTP"} for p in ports]
    return route("Gateway", name, listeners=listeners)


def test_requested_ports_follow_kinds_and_settings() -> None:
    every = [route("Ingress"), gateway(8080, 8443), route("HTTPRoute", "h")]
    assert l7entry.requested_ports(NS, every, irroutes.RouteSettings()) == (80, 8080, 8443)
    no_ingress = irroutes.RouteSettings(ingress_enabled=False)
    assert l7entry.requested_ports(NS, every, no_ingress) == (8080, 8443)
    no_gateway = irroutes.RouteSettings(gateway_api_enabled=False)
    assert l7entry.requested_ports(NS, every, no_gateway) == (80,)
    # Only the Gateway named kubelb is served (upstream CE), and an HTTPRoute alone asks nothing.
    others = [gateway(9000, name="other"), route("HTTPRoute")]
    assert l7entry.requested_ports(NS, others, irroutes.RouteSettings()) == ()


def test_either_config_or_tenant_disables_and_says_which() -> None:
    config = api_config.Config.model_validate(
        {"metadata": {"name": "default"}, "spec": {"gatewayAPI": {"disable": True}}}
    )
    tenant = api_tenant.Tenant.model_validate(
        {"metadata": {"name": "a"}, "spec": {"ingress": {"disable": True}}}
    )
    assert l7entry.disabled_by("Ingress", config, tenant) == "the Tenant (spec.ingress.disable)"
    assert l7entry.disabled_by("HTTPRoute", config, None) == "the Config (spec.gatewayAPI.disable)"
    assert l7entry.disabled_by("Ingress", config, None) is None
    assert l7entry.route_settings(None, tenant) == irroutes.RouteSettings(ingress_enabled=False)


def test_taken_ports_are_other_services_at_the_address() -> None:
    def svc(name: str, ip: str, *ports: int, namespace: str = "tenant-a") -> dict[str, Any]:
        return {"metadata": {"name": name, "namespace": namespace},
                "spec": {"ports": [{"port": p} for p in ports]},
                "status": {"loadBalancer": {"ingress": [{"ip": ip}]}}}  # fmt: skip

    entry = l7entry.entry_service_name("tenant-a")
    services = [svc("envoy-web", "10.1.0.1", 8080), svc("envoy-db", "10.1.0.2", 5432),
                svc("envoy-x", "10.1.0.1", 9000, namespace="tenant-b"),
                svc(entry, "10.1.0.1", 80)]  # fmt: skip
    assert l7entry.taken_ports(services, "10.1.0.1", entry, "tenant-a") == {8080, 9000}


def test_entry_service_shape() -> None:
    pods = infrastructure.ServiceShape(node_ports=True, selector=True)
    svc = l7entry.desired_entry_service("tenant-a", {80: 1500}, pods, "metallb")
    assert svc["metadata"]["name"] == "envoy-tenant-a-l7"
    assert svc["spec"] == {
        "type": "LoadBalancer", "selector": {"app.kubernetes.io/name": "tenant-a"},
        "ports": [{"name": "http-80", "port": 80, "protocol": "TCP", "targetPort": 1500}],
        "loadBalancerClass": "metallb"}  # fmt: skip
    local = infrastructure.ServiceShape(node_ports=False, selector=False)
    svc = l7entry.desired_entry_service("tenant-a", {80: 80}, local, None)
    assert svc["spec"]["selector"] is None
    assert svc["spec"]["allocateLoadBalancerNodePorts"] is False


def test_kubernetes_entry_ports_are_kept_and_below_the_load_balancers() -> None:
    first = routeentry.allocated_ports([80, 8080], None)
    assert set(first) == {80, 8080}
    assert all(routeentry.L7_RANGE[0] <= p < routeentry.L7_RANGE[1] for p in first.values())
    assert routeentry.allocated_ports([80, 8080], None) == first  # chosen from the port alone
    recorded = {"spec": {"ports": [{"port": 80, "targetPort": 2000}]}}
    assert routeentry.allocated_ports([80], recorded) == {80: 2000}


def test_status_keeps_transition_time_while_the_condition_holds() -> None:
    resource = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": {"name": "shop", "namespace": "default"}}  # fmt: skip
    services = [{"metadata": {"name": "web", "namespace": "default"},
                 "spec": {"ports": [{"name": "http", "port": 80, "nodePort": 30080},
                                    {"port": 81}]}}]  # fmt: skip
    served = routestatus.RouteVerdict({"loadBalancer": {"ingress": [{"ip": "10.1.0.1"}]}}, ())
    first = routestatus.desired_status(
        {}, resource, services, served, 1, now="2026-01-01T00:00:00Z"
    )
    state = first["resources"]["route"]
    assert state["generatedName"] == "default-shop"
    assert state["conditions"] == [{
        "type": "ResourceAppliedSuccessfully", "status": "True", "observedGeneration": 1,
        "lastTransitionTime": "2026-01-01T00:00:00Z", "reason": "InstallationSuccessful",
        "message": "Success"}]  # fmt: skip
    assert list(first["resources"]["services"]) == ["default/web"]
    assert first["resources"]["services"]["default/web"]["ports"] == [
        {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 30080}
    ]
    again = routestatus.desired_status(
        first, resource, services, served, 1, now="2026-02-02T00:00:00Z"
    )
    assert again == first
    failed = routestatus.RouteVerdict({}, ("port 80 is used by a LoadBalancer of this tenant",))
    flipped = routestatus.desired_status(first, resource, services, failed, 1,
                                    now="2026-02-02T00:00:00Z")  # fmt: skip
    (condition,) = flipped["resources"]["route"]["conditions"]
    assert (condition["status"], condition["reason"]) == ("False", "InstallationFailed")
    assert condition["lastTransitionTime"] == "2026-02-02T00:00:00Z"
    assert condition["message"] == "port 80 is used by a LoadBalancer of this tenant"


def test_a_gateway_status_changing_only_its_counts_is_told_apart() -> None:
    gateway_resource = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
                        "metadata": {"name": "kubelb", "namespace": "default"}}  # fmt: skip

    def status(attached: int, *, address: str = "10.1.0.1", listener: str = "http") -> Any:
        programmed = [{"type": "Programmed", "status": "True"}]
        served = {"addresses": [{"type": "IPAddress", "value": address}],
                  "listeners": [{"name": listener, "attachedRoutes": attached,
                                 "conditions": programmed}]}  # fmt: skip
        verdict = routestatus.RouteVerdict(served, ())
        return routestatus.desired_status({}, gateway_resource, [], verdict, 1, now=JANUARY)

    assert routestatus.only_counts_differ(status(3), status(7))
    assert not routestatus.only_counts_differ(status(3), status(3))  # no change at all
    assert not routestatus.only_counts_differ(status(3), status(7, address="10.1.0.2"))
    assert not routestatus.only_counts_differ(status(3), status(7, listener="other"))
    assert not routestatus.only_counts_differ({}, status(7))  # the first status
    failed = routestatus.desired_status(status(3), gateway_resource, [],
                                        routestatus.RouteVerdict({}, ("refused",)), 1)  # fmt: skip
    assert not routestatus.only_counts_differ(status(3), failed)


def test_routes_changed_when_the_informer_holds_other_routes() -> None:
    def raw(uid: str, generation: int = 1, *, deleting: bool = False) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": uid, "uid": uid, "generation": generation,
                                "resourceVersion": "9"}  # fmt: skip
        if deleting:
            meta["deletionTimestamp"] = JANUARY
        return {"metadata": meta, "status": {"written": "by us"}}

    seen = [raw("a"), raw("b")]
    # Our own status writes change the resourceVersion, not what the build was made from.
    restated = [{**r, "metadata": {**r["metadata"], "resourceVersion": "10"}} for r in seen]
    assert not routes.routes_changed(restated, seen)
    assert routes.routes_changed([*seen, raw("c")], seen)  # added
    assert routes.routes_changed([raw("a"), raw("b", 2)], seen)  # its spec changed
    assert routes.routes_changed([raw("a"), raw("b", deleting=True)], seen)  # being deleted
    assert routes.routes_changed([raw("a")], seen)  # gone


def test_a_gateways_counts_wait_for_its_routes_to_be_still_at_most_the_cap() -> None:
    def raw(uid: str) -> dict[str, Any]:
        return {"metadata": {"name": uid, "uid": uid, "generation": 1}}

    counts = routes.CountWrites(quiet=1.0, cap=10.0)
    counts.saw("t", [raw("a")], now=100.0)
    assert counts.wait("t", now=100.2) == pytest.approx(0.8)  # changed 0.2 s ago
    counts.saw("t", [raw("a")], now=100.5)  # the same Routes: still since 100.0
    assert counts.wait("t", now=101.0) is None  # still for 1 s: written
    counts.saw("t", [raw("a"), raw("b")], now=102.0)
    assert counts.wait("t", now=102.0) == pytest.approx(1.0)
    # Changed again during the reconcile: the reconcile it queued judges it, a second later.
    assert counts.wait("t", now=102.5, queued=True) == pytest.approx(1.0)
    for step in range(1, 10):  # a new Route every second: waits, but not beyond the cap
        counts.saw("t", [raw(str(n)) for n in range(step)], now=102.0 + step)
        assert counts.wait("t", now=102.0 + step) == pytest.approx(min(1.0, 10.0 - step))
    counts.saw("t", [raw("x")], now=112.0)
    assert counts.wait("t", now=112.0) is None  # waited the cap: written although changing
    assert counts.wait("u", now=112.0) == pytest.approx(1.0)  # a tenant never seen: just now
    counts.done("u")
    counts.forget("t")
    assert counts.wait("t", now=113.0) == pytest.approx(1.0)


def annotated(kind: str, name: str, created: str, **notes: str) -> api_route.Route:
    meta = {"name": name, "namespace": "default", "annotations": notes}
    resource = {"apiVersion": "x/v1", "kind": kind, "metadata": meta}
    return api_route.Route.model_validate({
        "metadata": {"name": f"uid-{name}", "namespace": NS, "creationTimestamp": created},
        "spec": {"endpoints": [{"addresses": [{"ip": "10.0.0.1"}]}],
                 "source": {"kubernetes": {"resource": resource}}},
    })  # fmt: skip


def test_entry_annotations_from_the_routes_oldest_first() -> None:
    policy = effective.AnnotationPolicy(
        propagated={"team": "", "lb.io/*": ""}, denied=("lb.io/secret",),
        defaults={"httproute": {"route-default": "h"}, "service": {"pool": "public"},
                  "all": {"pool": "any", "every": "1"}},
    )  # fmt: skip
    newer = annotated("HTTPRoute", "new", FEBRUARY, team="red", **{"lb.io/x": "1"})
    older = annotated("Ingress", "old", JANUARY, team="blue", other="not allowed",
                      **{"lb.io/secret": "s", PROPAGATED: "team"})  # fmt: skip
    dns = {"external-dns.alpha.kubernetes.io/hostname": "a.example"}
    got = l7entry.entry_annotations(NS, [newer, older], irroutes.RouteSettings(), policy, dns,
                                    None)  # fmt: skip
    assert got.annotations == {
        **dns, "team": "blue", "lb.io/x": "1", "route-default": "h", "pool": "public",
        "every": "1", PROPAGATED: ",".join(("every", *dns, "lb.io/x", "pool", "route-default",
                                            "team")),
    }  # fmt: skip
    (problem,) = got.problems["uid-new"]
    assert problem == ("annotation team='red' is not set on the tenant's L7 entry (Service "
                       "envoy-tenant-a-l7): Route uid-old (Ingress default/old) set it to "
                       "'blue' first")  # fmt: skip
    assert "uid-old" not in got.problems

    # The Ingress disabled: it propagates nothing, and the HTTPRoute keeps the key.
    no_ingress = irroutes.RouteSettings(ingress_enabled=False)
    got = l7entry.entry_annotations(NS, [newer, older], no_ingress, policy, {}, None)
    assert got.annotations["team"] == "red"
    assert got.problems == {}

    # A Route asking kubelb's own key is told; external-dns's keys are recorded too.
    clash = annotated("HTTPRoute", "clash", JANUARY,
                      **{"external-dns.alpha.kubernetes.io/hostname": "b.example"})  # fmt: skip
    everything = effective.AnnotationPolicy(propagate_all=True)
    got = l7entry.entry_annotations(NS, [clash], irroutes.RouteSettings(), everything, dns, None)
    assert got.annotations == {**dns, PROPAGATED: "external-dns.alpha.kubernetes.io/hostname"}
    (problem,) = got.problems["uid-clash"]
    assert "KubeLB" in problem

    # Nothing to set any more (no hostname served either), but the live Service records keys:
    # an empty record, so the apply drops them; nothing set and nothing recorded: no record.
    got = l7entry.entry_annotations(NS, [], irroutes.RouteSettings(),
                                    effective.AnnotationPolicy(), {}, "team")  # fmt: skip
    assert got.annotations == {PROPAGATED: ""}
    got = l7entry.entry_annotations(NS, [], irroutes.RouteSettings(),
                                    effective.AnnotationPolicy(), {}, "")  # fmt: skip
    assert got.annotations == {}
