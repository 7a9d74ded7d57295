"""Where a LoadBalancer's listeners bind, per infrastructure."""

from __future__ import annotations

from kubelb.api import loadbalancer as api_lb
from kubelb.infra import kubernetes, process


def lb(status_ports=()):
    return api_lb.LoadBalancer.model_validate(
        {
            "metadata": {"name": "web", "namespace": "tenant-a"},
            "spec": {
                "ports": [
                    {"name": "http", "port": 80},
                    {"name": "dns", "port": 53, "protocol": "UDP"},
                ],
                "endpoints": [
                    {
                        "addresses": [{"ip": "10.0.0.1"}],
                        "ports": [
                            {"name": "http", "port": 30080},
                            {"name": "dns", "port": 30053, "protocol": "UDP"},
                        ],
                    }
                ],
            },
            "status": {"service": {"ports": list(status_ports)}},
        }
    )


RECORDED = [
    {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 20080, "upstreamTargetPort": 1},
    {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 20053, "upstreamTargetPort": 1},
]


def test_kubernetes_placement_uses_recorded_ports_only_when_all_are_recorded():
    placement = kubernetes.placement(lb(RECORDED))
    assert placement is not None
    assert placement.address == "0.0.0.0"
    assert dict(placement.listen_ports or {}) == {("http", "TCP"): 20080, ("dns", "UDP"): 20053}
    assert kubernetes.placement(lb(RECORDED[:1])) is None
    assert kubernetes.placement(lb()) is None


def test_process_placement_takes_the_service_address_and_the_lb_ports():
    service = {"status": {"loadBalancer": {"ingress": [{"hostname": "x"}, {"ip": "127.0.0.9"}]}}}
    placement = process.placement(service)
    assert placement is not None
    assert placement.address == "127.0.0.9"
    assert placement.listen_ports is None
    assert process.placement({"status": {}}) is None
    assert process.placement(None) is None


def test_kubernetes_placement_takes_ports_just_allocated_over_the_status():
    allocated = {("http", "TCP"): 21080, ("dns", "UDP"): 21053, ("gone", "TCP"): 21000}
    placement = kubernetes.placement(lb(RECORDED), allocated)
    assert placement is not None
    assert dict(placement.listen_ports or {}) == {("http", "TCP"): 21080, ("dns", "UDP"): 21053}
    assert kubernetes.placement(lb(RECORDED), {("http", "TCP"): 21080}) is None
