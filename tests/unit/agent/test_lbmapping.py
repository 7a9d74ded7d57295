"""Service -> LoadBalancer mapping (one per Service, named by its UID), scope, and the update
decision."""

from __future__ import annotations

import copy

import pytest

from kubelb.agent import lbmapping
from kubelb.api import loadbalancer, registry
from kubelb.kube import objects

NS = "tenant-shop"
UID = "6f0c1b7e-0d55-4d2c-9d35-3c1f6a1b2c3d"


def service(*ports, **spec):
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "web",
            "namespace": "prod",
            "uid": UID,
            "annotations": {
                "kubelb.k8c.io/proxy-protocol": "v2",
                "team": "blue",
                objects.LAST_APPLIED: '{"huge": "json"}',
            },
        },
        "spec": {"type": "LoadBalancer", "ports": list(ports), **spec},
    }


def port(number, node_port, *, name=None, protocol="TCP"):
    result = {"port": number, "nodePort": node_port, "protocol": protocol, "targetPort": number}
    if name:
        result["name"] = name
    return result


def test_multi_port_mapping():
    svc = service(
        port(80, 30080, name="HTTP"),
        port(53, 30053, name="dns", protocol="UDP"),
        externalTrafficPolicy="Local",
        sessionAffinity="ClientIP",
    )
    mapping = lbmapping.desired_load_balancer(svc, namespace=NS)
    assert mapping.blocker is None
    assert mapping.skipped == ()
    assert mapping.lb == {
        "apiVersion": "kubelb.k8c.io/v1alpha1",
        "kind": "LoadBalancer",
        "metadata": {
            "name": UID,
            "namespace": NS,
            "labels": {
                "kubelb.k8c.io/origin-name": "web",
                "kubelb.k8c.io/origin-ns": "prod",
                "kubelb.k8c.io/tenant": NS,
            },
            "annotations": {"kubelb.k8c.io/proxy-protocol": "v2", "team": "blue"},
            "finalizers": ["kubelb.k8c.io/cleanup"],
        },
        "spec": {
            "endpoints": [
                {
                    "name": "default",
                    "addressesReference": {"name": "default"},
                    "ports": [
                        {"name": "http", "port": 30080, "protocol": "TCP"},
                        {"name": "dns", "port": 30053, "protocol": "UDP"},
                    ],
                }
            ],
            "ports": [
                {"name": "http", "port": 80, "protocol": "TCP"},
                {"name": "dns", "port": 53, "protocol": "UDP"},
            ],
            "type": "LoadBalancer",
            "externalTrafficPolicy": "Local",
            "persistence": {"type": "SourceIP"},
        },
    }
    # The result is a valid LoadBalancer for the API models (and so for the CRD schema).
    parsed = registry.parse(mapping.lb)
    assert isinstance(parsed, loadbalancer.LoadBalancer)
    assert parsed.spec.source_ip_persistence


def test_unnamed_port_is_named_by_number_and_protocol():
    mapping = lbmapping.desired_load_balancer(service(port(8443, 31443)), namespace=NS)
    assert mapping.lb is not None
    assert mapping.lb["spec"]["ports"] == [{"name": "8443-tcp", "port": 8443, "protocol": "TCP"}]
    endpoint_ports = mapping.lb["spec"]["endpoints"][0]["ports"]
    assert endpoint_ports == [{"name": "8443-tcp", "port": 31443, "protocol": "TCP"}]


def test_no_affinity_no_policy_means_no_fields():
    mapping = lbmapping.desired_load_balancer(
        service(port(80, 30080), sessionAffinity="None"), namespace=NS
    )
    assert mapping.lb is not None
    assert "persistence" not in mapping.lb["spec"]
    assert "externalTrafficPolicy" not in mapping.lb["spec"]


def test_unsupported_and_node_portless_ports_are_skipped_with_reasons():
    svc = service(
        port(80, 30080, name="http"),
        port(3868, 30868, name="diameter", protocol="SCTP"),
        port(81, None, name="nonodeport"),
    )
    mapping = lbmapping.desired_load_balancer(svc, namespace=NS)
    assert mapping.lb is not None
    assert [p["name"] for p in mapping.lb["spec"]["ports"]] == ["http"]
    reasons = [(p.reason, p.message.split(" ")[1]) for p in mapping.skipped]
    assert reasons == [
        (lbmapping.UNSUPPORTED_PROTOCOL, "diameter"),
        (lbmapping.NO_NODE_PORT, "nonodeport"),
    ]


def test_nothing_servable_means_no_load_balancer():
    mapping = lbmapping.desired_load_balancer(
        service(port(3868, 30868, protocol="SCTP")), namespace=NS
    )
    assert mapping.lb is None
    assert mapping.blocker is not None
    assert mapping.blocker.reason == lbmapping.NO_PORTS


def test_without_cloud_provider_endpoints_are_the_service_ingress():
    svc = service(port(80, 30080, name="http"))
    svc["status"] = {
        "loadBalancer": {"ingress": [{"ip": "198.51.100.4"}, {"hostname": "lb.example"}]}
    }
    mapping = lbmapping.desired_load_balancer(svc, namespace=NS, cloud_provider=False)
    assert mapping.lb is not None
    endpoints = mapping.lb["spec"]["endpoints"]
    assert endpoints == [
        {
            "name": "default",
            "addresses": [{"ip": "198.51.100.4"}, {"hostname": "lb.example"}],
            "ports": [{"name": "http", "port": 30080, "protocol": "TCP"}],
        }
    ]
    registry.parse(mapping.lb)


def test_without_cloud_provider_and_no_ingress_yet_it_waits():
    mapping = lbmapping.desired_load_balancer(
        service(port(80, 30080)), namespace=NS, cloud_provider=False
    )
    assert mapping.lb is None
    assert mapping.blocker is not None
    assert mapping.blocker.reason == lbmapping.WAITING_FOR_ADDRESS


@pytest.mark.parametrize(
    ("spec", "use_class", "expected"),
    [
        ({"type": "LoadBalancer"}, False, True),
        ({"type": "LoadBalancer", "loadBalancerClass": "other"}, False, True),
        ({"type": "LoadBalancer"}, True, False),
        ({"type": "LoadBalancer", "loadBalancerClass": "other"}, True, False),
        ({"type": "LoadBalancer", "loadBalancerClass": "kubelb"}, True, True),
        ({"type": "NodePort"}, False, False),
        ({"type": "ClusterIP"}, False, False),
        ({"type": "ExternalName", "externalName": "x.example"}, False, False),
        ({}, False, False),
    ],
)
def test_scope(spec, use_class, expected):
    assert lbmapping.in_scope({"spec": spec}, use_loadbalancer_class=use_class) is expected


def live_copy(desired):
    live = copy.deepcopy(desired)
    live["metadata"]["resourceVersion"] = "7"
    live["metadata"]["labels"]["someone.else/label"] = "kept"
    live["status"] = {"loadBalancer": {"ingress": [{"ip": "10.9.9.9"}]}}
    return live


def test_update_only_on_real_differences():
    desired = lbmapping.desired_load_balancer(
        service(port(80, 30080, name="http"), port(443, 30443, name="https")), namespace=NS
    ).lb
    assert desired is not None
    live = live_copy(desired)
    assert not lbmapping.needs_update(live, desired)
    # List order is not a difference.
    live["spec"]["ports"].reverse()
    assert not lbmapping.needs_update(live, desired)
    # A node port change is.
    changed = live_copy(desired)
    changed["spec"]["endpoints"][0]["ports"][0]["port"] = 31111
    assert lbmapping.needs_update(changed, desired)
    # An annotation removed from the Service is removed from the LoadBalancer.
    extra = live_copy(desired)
    extra["metadata"]["annotations"]["removed"] = "from the service"
    assert lbmapping.needs_update(extra, desired)
    # A field we no longer set (persistence) is a difference.
    sticky = live_copy(desired)
    sticky["spec"]["persistence"] = {"type": "SourceIP"}
    assert lbmapping.needs_update(sticky, desired)
    # A missing origin label is.
    unlabelled = live_copy(desired)
    del unlabelled["metadata"]["labels"]["kubelb.k8c.io/origin-ns"]
    assert lbmapping.needs_update(unlabelled, desired)


def test_updated_keeps_others_labels_and_the_resource_version():
    desired = lbmapping.desired_load_balancer(service(port(80, 30080)), namespace=NS).lb
    assert desired is not None
    live = live_copy(desired)
    live["spec"]["ports"][0]["port"] = 81
    live["metadata"]["annotations"]["stale"] = "x"
    body = lbmapping.updated(live, desired)
    assert body["metadata"]["resourceVersion"] == "7"
    assert body["metadata"]["labels"]["someone.else/label"] == "kept"
    assert body["metadata"]["annotations"] == desired["metadata"]["annotations"]
    assert body["spec"] == desired["spec"]
    assert not lbmapping.needs_update(body, desired)


def test_origin_key_and_ready_condition():
    lb = {
        "metadata": {"labels": {"kubelb.k8c.io/origin-name": "web",
                                "kubelb.k8c.io/origin-ns": "prod"}},
        "status": {"conditions": [{"type": "Ready", "status": "False", "reason": "NoAddress"}]},
    }  # fmt: skip
    assert lbmapping.origin_key(lb) == ("prod", "web")
    assert lbmapping.origin_key({"metadata": {}}) is None
    condition = lbmapping.ready_condition(lb)
    assert condition is not None
    assert condition["reason"] == "NoAddress"
    assert lbmapping.ready_condition({}) is None


def test_same_status_ignores_order_and_the_default_ip_mode():
    lb = {"ingress": [{"ip": "10.0.0.2"}, {"ip": "10.0.0.1"}]}
    service = {"ingress": [{"ip": "10.0.0.1", "ipMode": "VIP"}, {"ip": "10.0.0.2"}]}
    assert lbmapping.same_status(service, lb)
    assert lbmapping.same_status({}, {"ingress": []})
    assert lbmapping.same_status(None, {})
    assert not lbmapping.same_status({"ingress": [{"ip": "10.0.0.1", "ipMode": "Proxy"}]},
                                     {"ingress": [{"ip": "10.0.0.1"}]})  # fmt: skip
    assert not lbmapping.same_status(service, {"ingress": [{"ip": "10.0.0.1"}]})
