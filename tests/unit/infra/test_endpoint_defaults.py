"""Built-in endpoint denies per way of running Envoy: Envoy pods' own ports and loopback, link-local
and the cluster's ranges with the kubernetes deployer; local development on 127.x with the
process deployer, which still refuses link-local. The Config's and Tenant's lists come on top,
and an allowed CIDR more specific than a built-in deny admits what it names."""

from __future__ import annotations

import pytest

from kubelb.infra import kubernetes as kubernetes_infra, process as process_infra
from kubelb.manager import effective, endpoints

KUBERNETES = kubernetes_infra.endpoint_base(["10.96.0.0/12"], ["10.244.0.0/16", "fd00:10::/56"])
PROCESS = process_infra.ProcessInfra.endpoint_base
NONE = effective.EndpointCIDRs()


@pytest.mark.parametrize(
    ("address", "port", "kubernetes", "process"),
    [
        ("127.0.0.21", 30080, "denied CIDR 127.0.0.0/8", None),
        ("::1", 30080, "denied CIDR ::1/128", None),
        ("169.254.169.254", 80, "denied CIDR 169.254.0.0/16", "denied CIDR 169.254.0.0/16"),
        ("fe80::1", 30080, "denied CIDR fe80::/10", "denied CIDR fe80::/10"),
        ("0.0.0.0", 30080, "denied CIDR 0.0.0.0/8", "denied CIDR 0.0.0.0/8"),
        ("10.96.0.1", 443, "denied CIDR 10.96.0.0/12", None),  # a ClusterIP
        ("10.244.3.7", 8001, "denied CIDR 10.244.0.0/16", None),  # a pod
        ("fd00:10::5", 30080, "denied CIDR fd00:10::/56", None),
        ("192.0.2.10", 9001, "hub's own sockets", None),  # any Envoy pod's admin port
        ("192.0.2.10", 19001, "hub's own sockets", None),  # its stats listener
        ("192.0.2.10", 30080, None, None),
    ],
)
def test_defaults_per_deployer(address, port, kubernetes, process):
    for base, expected in ((KUBERNETES, kubernetes), (PROCESS, process)):
        why = endpoints.policy(base, NONE).refusal(address, port)
        if expected is None:
            assert why is None, (address, why)
        else:
            assert why is not None
            assert expected in why


def test_an_operators_allow_carves_out_of_a_builtin_deny_but_not_out_of_the_hub():
    cidrs = effective.EndpointCIDRs(allowed=("127.0.0.21/32", "0.0.0.0/0"))
    policy = endpoints.policy(KUBERNETES, cidrs)
    assert policy.refusal("127.0.0.21", 30080) is None
    assert policy.refusal("127.0.0.22", 30080) is not None  # still in 127.0.0.0/8
    assert policy.refusal("127.0.0.21", 9001) is not None  # Envoy's admin port


def test_the_operators_denies_add_to_the_builtin_ones():
    policy = endpoints.policy(PROCESS, effective.EndpointCIDRs(denied=("127.0.0.0/8",)))
    assert policy.refusal("127.0.0.21", 30080) is not None
    assert policy.refusal("169.254.169.254", 80) is not None
