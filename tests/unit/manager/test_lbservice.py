from kubelb.api import loadbalancer as api_lb, tenant as api_tenant
from kubelb.irbuild import loadbalancers as irbuild
from kubelb.kube import writer
from kubelb.manager import effective, lbservice, propagation

TENANT_NS = "tenant-a"


def make_lb(**spec_extra):
    return api_lb.LoadBalancer.model_validate(
        {
            "metadata": {
                "name": "0c6f3a1e-uid",
                "namespace": TENANT_NS,
                "labels": {"kubelb.k8c.io/origin-name": "web", "kubelb.k8c.io/origin-ns": "shop"},
                "annotations": {"team": "blue", "kubelb.k8c.io/proxy-protocol": "v2"},
            },
            "spec": {
                "type": "LoadBalancer",
                "ports": [
                    {"name": "https", "port": 443},
                    {"name": "http", "port": 80},
                ],
                "endpoints": [
                    {
                        "addressesReference": {"name": "default"},
                        "ports": [
                            {"name": "http", "port": 30080},
                            {"name": "https", "port": 30443},
                        ],
                    }
                ],
                **spec_extra,
            },
        }
    )


ALLOCATED = {("http", "TCP"): 20080, ("https", "TCP"): 20443}


def test_desired_service_shape():
    eff = effective.resolve(None, None)
    svc = lbservice.desired_service(make_lb(externalTrafficPolicy="Local"), ALLOCATED, eff, None)
    assert svc["metadata"]["name"] == "envoy-0c6f3a1e-uid"
    assert svc["metadata"]["labels"]["kubelb.k8c.io/origin-name"] == "web"
    assert svc["metadata"]["labels"]["app.kubernetes.io/name"] == TENANT_NS
    assert svc["metadata"]["annotations"] == {}  # nothing propagates by default
    assert svc["spec"]["selector"] == {"app.kubernetes.io/name": TENANT_NS}
    assert svc["spec"]["externalTrafficPolicy"] == "Local"
    assert [(p["name"], p["targetPort"]) for p in svc["spec"]["ports"]] == [
        ("http", 20080),
        ("https", 20443),
    ]


def test_live_node_ports_and_third_party_annotations_are_kept():
    tenant = api_tenant.Tenant.model_validate(
        {
            "metadata": {"name": "a"},
            "spec": {"propagatedAnnotations": {"team": ""}, "loadBalancer": {"class": "metallb"}},
        }
    )
    eff = effective.resolve(None, tenant)
    live = {
        "metadata": {"annotations": {"metallb.universe.tf/ip": "1.2.3.4"}, "labels": {}},
        "spec": {"ports": [{"name": "http", "protocol": "TCP", "nodePort": 31111}]},
    }
    svc = lbservice.desired_service(make_lb(), ALLOCATED, eff, live)
    assert svc["metadata"]["annotations"] == {"metallb.universe.tf/ip": "1.2.3.4", "team": "blue",
                                              propagation.RECORD: "team"}  # fmt: skip
    assert svc["spec"]["ports"][0]["nodePort"] == 31111
    assert svc["spec"]["loadBalancerClass"] == "metallb"


def test_status_ports_pair_by_name_and_round_trip_as_recorded_ports():
    lb = make_lb()
    ports = lbservice.desired_status_service_ports(lb, ALLOCATED)
    assert ports == [
        {
            "name": "http",
            "port": 80,
            "protocol": "TCP",
            "targetPort": 20080,
            "upstreamTargetPort": 30080,
        },
        {
            "name": "https",
            "port": 443,
            "protocol": "TCP",
            "targetPort": 20443,
            "upstreamTargetPort": 30443,
        },
    ]
    with_status = lb.model_copy(
        update={"status": api_lb.LoadBalancerStatus.model_validate({"service": {"ports": ports}})}
    )
    assert lbservice.recorded_ports(with_status) == ALLOCATED


def test_status_ports_pair_over_every_endpoints_entry_as_the_ir_does():
    """An entry without the port is skipped, like the IR builder skips it: the status reports the
    endpoint port the first cluster of the port's listener forwards to."""
    lb = make_lb(
        ports=[
            {"name": "https", "port": 443},
            {"name": "dns", "port": 53, "protocol": "UDP"},
            {"name": "none", "port": 9},
        ],
        endpoints=[
            {"addresses": [{"ip": "10.0.0.1"}],
             "ports": [{"name": "dns", "port": 30053}, {"name": "other", "port": 30001}]},
            {"addresses": [{"ip": "10.0.0.2"}],
             "ports": [{"name": "https", "port": 31443},
                       {"name": "dns", "port": 31053, "protocol": "UDP"}]},
        ],
    )  # fmt: skip
    allocated = {("https", "TCP"): 20443, ("dns", "UDP"): 20053, ("none", "TCP"): 20009}
    upstream = {
        (p["name"], p["protocol"]): p["upstreamTargetPort"]
        for p in lbservice.desired_status_service_ports(lb, allocated)
    }
    assert upstream == {("https", "TCP"): 31443, ("dns", "UDP"): 31053, ("none", "TCP"): 0}
    config = irbuild.build_proxy_config(
        TENANT_NS, [(lb, irbuild.Placement("0.0.0.0", allocated))], {}
    ).config
    served = {
        (li.port, li.protocol.value): config.cluster(li.clusters[0]).endpoints[0].port
        for li in config.listeners
    }
    assert served == {(20443, "TCP"): 31443, (20053, "UDP"): 31053}


def test_recorded_ports_tell_a_tcp_and_a_udp_port_of_one_name_apart():
    lb = make_lb(
        ports=[{"name": "dns", "port": 53}, {"name": "dns", "port": 53, "protocol": "UDP"}],
        endpoints=[
            {"addresses": [{"ip": "10.0.0.1"}],
             "ports": [{"name": "dns", "port": 30053},
                       {"name": "dns", "port": 30053, "protocol": "UDP"}]},
        ],
    )  # fmt: skip
    allocated = {("dns", "TCP"): 20053, ("dns", "UDP"): 21053}
    written = lbservice.desired_status_service_ports(lb, allocated)
    with_status = lb.model_copy(
        update={"status": api_lb.LoadBalancerStatus.model_validate({"service": {"ports": written}})}
    )
    assert lbservice.recorded_ports(with_status) == allocated


def test_node_ports_can_be_declined_for_load_balancer_services_only():
    eff = effective.resolve(None, None)
    default = lbservice.desired_service(make_lb(), ALLOCATED, eff, None)
    assert "allocateLoadBalancerNodePorts" not in default["spec"]
    declined = lbservice.desired_service(make_lb(), ALLOCATED, eff, None, node_ports=False)
    assert declined["spec"]["allocateLoadBalancerNodePorts"] is False
    cluster_ip = lbservice.desired_service(
        make_lb(type="ClusterIP"), ALLOCATED, eff, None, node_ports=False
    )
    assert "allocateLoadBalancerNodePorts" not in cluster_ip["spec"]


def test_no_selector_differs_from_a_live_selector_only():
    eff = effective.resolve(None, None)
    desired = lbservice.desired_service(make_lb(), ALLOCATED, eff, None, selector=False)
    assert desired["spec"]["selector"] is None
    with_selector = {"metadata": desired["metadata"], "spec": {
        **desired["spec"], "selector": lbservice.envoy_selector(TENANT_NS)}}  # fmt: skip
    without = {"metadata": desired["metadata"],
               "spec": {k: v for k, v in desired["spec"].items() if k != "selector"}}  # fmt: skip
    # The writer's comparison: the stale selector is written away, its absence is kept.
    assert not writer.covers(with_selector, desired)
    assert writer.covers(without, desired)
