"""The address pool's reading of management Services."""

from __future__ import annotations

from kubelb.infra import addresspool


def test_needs_are_unique_port_protocol_pairs():
    service = {
        "spec": {
            "ports": [
                {"port": 80},
                {"port": 80, "protocol": "UDP"},
                {"port": 80, "protocol": "TCP"},
                {"name": "broken"},
            ]
        }
    }
    assert addresspool.needs_of(service) == [(80, "TCP"), (80, "UDP")]


def test_service_ips_ignore_hostnames_and_junk():
    service = {
        "status": {
            "loadBalancer": {
                "ingress": [{"ip": "127.0.0.5", "ipMode": "VIP"}, {"hostname": "h"}, "junk"]
            }
        }
    }
    assert addresspool.service_ips(service) == ["127.0.0.5"]
    assert addresspool.service_ips({}) == []
